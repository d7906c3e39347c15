"""A covering index for the engagement rankings' per-contact period totals (activities/analytics_sql.py)."""

from django.db import migrations

from activities.analytics_sql import INSTALL


class Migration(migrations.Migration):
    dependencies = [("activities", "0008_analytics_clustered")]

    # INSTALL is idempotent (IF NOT EXISTS / OR REPLACE): it adds the index; no rebuild needed.
    operations = [migrations.RunSQL(INSTALL, migrations.RunSQL.noop)]

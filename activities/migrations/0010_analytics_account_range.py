"""A covering (tenant, day, account) index for the account rankings (activities/analytics_sql.py)."""

from django.db import migrations

from activities.analytics_sql import INSTALL


class Migration(migrations.Migration):
    dependencies = [("activities", "0009_analytics_contact_totals")]

    # INSTALL is idempotent (IF NOT EXISTS / OR REPLACE): it adds the index; no rebuild needed.
    operations = [migrations.RunSQL(INSTALL, migrations.RunSQL.noop)]

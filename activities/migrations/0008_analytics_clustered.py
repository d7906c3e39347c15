"""Analytics aggregates rebuilt in (tenant, day) order, so a period's rows sit on few pages, and an index
for the most-engaged ranking (see activities/analytics_sql.py and activities/analytics.py)."""

from django.db import migrations

from activities.analytics_sql import INSTALL


class Migration(migrations.Migration):
    dependencies = [("activities", "0007_analytics_buffered")]

    # INSTALL is idempotent (IF NOT EXISTS / OR REPLACE): it adds the index and the ordered rebuild.
    operations = [
        migrations.RunSQL(INSTALL, migrations.RunSQL.noop),
        migrations.RunSQL("SELECT analytics_rebuild();", migrations.RunSQL.noop),
    ]

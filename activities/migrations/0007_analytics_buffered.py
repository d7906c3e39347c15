"""Analytics aggregates take buffered increments: triggers append deltas, readers use base + deltas,
analytics_fold() moves them into the base tables (see activities/analytics_sql.py)."""

from django.db import migrations

from activities.analytics_sql import INSTALL


class Migration(migrations.Migration):
    dependencies = [("activities", "0006_analytics")]

    # INSTALL is idempotent (IF NOT EXISTS / OR REPLACE); 0006 keeps the tables it created.
    operations = [migrations.RunSQL(INSTALL, migrations.RunSQL.noop)]

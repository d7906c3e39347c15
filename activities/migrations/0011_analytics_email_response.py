"""Email response samples kept per inbound email (analytics_email_response, activities/analytics_sql.py):
the dashboard reads a period's samples as an index range instead of a window over the period's emails."""

from django.db import migrations

from activities.analytics_sql import INSTALL


class Migration(migrations.Migration):
    dependencies = [("activities", "0010_analytics_account_range")]

    # INSTALL is idempotent (IF NOT EXISTS / OR REPLACE); the fill computes every contact's samples once.
    operations = [
        migrations.RunSQL(INSTALL, migrations.RunSQL.noop),
        migrations.RunSQL("SELECT analytics_email_fill(NULL, NULL);", migrations.RunSQL.noop),
        migrations.RunSQL("ANALYZE analytics_email_response;", migrations.RunSQL.noop),
    ]

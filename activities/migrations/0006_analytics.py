"""Daily aggregates for communication analytics, maintained by triggers (see activities/analytics_sql.py)."""

from django.db import migrations

from activities.analytics_sql import INSTALL, UNINSTALL


class Migration(migrations.Migration):
    dependencies = [
        ("activities", "0005_feed_view_mergeable"),
        ("contactcenter", "0001_initial"),
    ]

    operations = [
        migrations.RunSQL(INSTALL, UNINSTALL),
        # Existing rows (an upgrade, or the demo data) are counted once here; triggers keep it exact after.
        migrations.RunSQL("SELECT analytics_rebuild();", migrations.RunSQL.noop),
    ]

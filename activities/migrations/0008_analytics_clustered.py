"""Analytics aggregates for a fast dashboard (see activities/analytics_sql.py and activities/analytics.py):
per-team and per-agent daily tables (with their delta tables and *_all views), an index on the daily table
by agent, the contact summary's gap bucket column and ranking indexes; then every aggregate is rebuilt, in
(tenant, day) order so a period's rows sit on few pages."""

from django.db import migrations

from activities.analytics_sql import INSTALL


class Migration(migrations.Migration):
    dependencies = [("activities", "0007_analytics_buffered")]

    # INSTALL is idempotent (IF NOT EXISTS / OR REPLACE); the rebuild fills the new tables.
    operations = [
        migrations.RunSQL(INSTALL, migrations.RunSQL.noop),
        migrations.RunSQL("SELECT analytics_rebuild();", migrations.RunSQL.noop),
        # Statistics for the planner right away (autovacuum would get there later).
        migrations.RunSQL(
            "ANALYZE analytics_daily, analytics_team_daily, analytics_agent_daily, analytics_contact_daily,"
            " analytics_contact_summary, analytics_interaction_response;",
            migrations.RunSQL.noop,
        ),
    ]

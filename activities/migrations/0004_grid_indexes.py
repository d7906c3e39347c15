"""Indexes the activity grid's measured queries need (see bench/ and the README's figures).

The tenant-first time indexes, per-contact/lead/account/agent/team indexes and the summary FTS indexes
already exist (0001 and contactcenter 0001). Added here:

- ``(tenant, type, time desc, id desc)`` on both branches: a single-type filter walks this index in
  order instead of filtering the tenant's time index (sparse types: many ms -> under one);
- ``(tenant, source, time desc, id desc)`` on crm_activities (the interaction branch's source is a
  constant, so the planner drops that branch for other sources);
- extended statistics on the columns the grid filters together, so estimates stay sane per tenant.
"""

from django.db import migrations

FORWARD = """
CREATE INDEX IF NOT EXISTS act_tenant_type_time
    ON crm_activities (tenant_id, type, occurred_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS act_tenant_source_time
    ON crm_activities (tenant_id, source, occurred_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS ci_tenant_type_time
    ON closed_interactions (tenant_id, type, started_at DESC, id DESC) WHERE NOT activity_logged;
CREATE STATISTICS IF NOT EXISTS act_grid_stats (dependencies, mcv)
    ON tenant_id, user_id, type, source, direction FROM crm_activities;
CREATE STATISTICS IF NOT EXISTS ci_grid_stats (dependencies, mcv)
    ON tenant_id, agent_id, type, direction FROM closed_interactions;
"""

BACKWARD = """
DROP STATISTICS IF EXISTS ci_grid_stats;
DROP STATISTICS IF EXISTS act_grid_stats;
DROP INDEX IF EXISTS ci_tenant_type_time;
DROP INDEX IF EXISTS act_tenant_source_time;
DROP INDEX IF EXISTS act_tenant_type_time;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("activities", "0003_saved_views"),
        ("contactcenter", "0001_initial"),
    ]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]

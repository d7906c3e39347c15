"""PostgreSQL row-level security: the database's backstop behind the tenant-scoped querysets.

Every tenant-owned table gets RLS enabled and FORCED (so the table owner is subject to it too) and one
policy: a row is visible and writable only when its tenant_id equals the session's ``app.tenant_id``.
Memberships are also visible by ``app.user_id`` (the middleware must find a user's tenants before it
knows which one is active). ``app.rls_bypass = on`` is the explicit, narrow bypass for deliberately
cross-tenant code (beat fan-out, platform superuser), and superusers bypass RLS as PostgreSQL always does.

The policies are (re)installed after every ``migrate`` (post_migrate), so new tenant tables are covered
as soon as they exist; ``tests/crm/test_rls.py`` fails when a tenant table has no policy.
The restricted role ``crm_app`` (NOSUPERUSER, NOBYPASSRLS, not an owner) is what the application's
connections act as when RLS enforcement is on (see README: DATABASE_RLS_ROLE).
"""

import logging
from contextlib import contextmanager

from django.apps import apps
from django.db import DatabaseError, connections, transaction

logger = logging.getLogger(__name__)

APP_ROLE = "crm_app"
POLICY = "tenant_isolation"
# Tables maintained by SQL (not Django models) that carry tenant rows.
EXTRA_TABLES = [
    "analytics_daily",
    "analytics_contact_daily",
    "analytics_contact_summary",
    "analytics_interaction_response",
    "analytics_daily_delta",
    "analytics_contact_daily_delta",
    "analytics_contact_summary_delta",
]
# Views that must read their tables with the querying role's rights.
INVOKER_VIEWS = [
    "activity_feed",
    "analytics_daily_all",
    "analytics_contact_daily_all",
    "analytics_contact_summary_all",
]

FUNCTIONS = r"""
CREATE OR REPLACE FUNCTION app_tenant_id() RETURNS bigint LANGUAGE sql STABLE AS
$$ SELECT NULLIF(current_setting('app.tenant_id', true), '')::bigint $$;
CREATE OR REPLACE FUNCTION app_user_id() RETURNS bigint LANGUAGE sql STABLE AS
$$ SELECT NULLIF(current_setting('app.user_id', true), '')::bigint $$;
CREATE OR REPLACE FUNCTION app_rls_bypass() RETURNS boolean LANGUAGE sql STABLE AS
$$ SELECT COALESCE(current_setting('app.rls_bypass', true), '') = 'on' $$;
"""


def tenant_tables(using: str = "default") -> list[str]:
    tables = sorted(
        m._meta.db_table
        for m in apps.get_models()
        if m._meta.managed and not m._meta.proxy and any(f.name == "tenant" for f in m._meta.concrete_fields)
    )
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        existing = {row[0] for row in cursor.fetchall()}
    return [t for t in tables + EXTRA_TABLES if t in existing]


def install(using: str = "default") -> list[str]:
    """Enable, force and (re)create the tenant policy on every tenant table. Idempotent."""
    tables = tenant_tables(using)
    with connections[using].cursor() as cursor, transaction.atomic(using=using):
        cursor.execute(FUNCTIONS)
        for table in tables:
            extra = " OR user_id = app_user_id()" if table == "crm_membership" else ""
            rule = f"app_rls_bypass() OR tenant_id = app_tenant_id(){extra}"
            cursor.execute(f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY')
            cursor.execute(f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY')
            cursor.execute(f'DROP POLICY IF EXISTS {POLICY} ON "{table}"')
            cursor.execute(f'CREATE POLICY {POLICY} ON "{table}" USING ({rule}) WITH CHECK ({rule})')
        # The views read their tables with the querying role's rights, so the tables' policies apply.
        cursor.execute("SELECT viewname FROM pg_views WHERE schemaname = current_schema()")
        existing_views = {row[0] for row in cursor.fetchall()}
        for view in INVOKER_VIEWS:
            if view in existing_views:
                cursor.execute(f'ALTER VIEW "{view}" SET (security_invoker = true)')
    return tables


def ensure_app_role(using: str = "default", role: str = APP_ROLE) -> bool:
    """Create the restricted role and grant it DML on the schema; the connecting user may SET ROLE to it.

    Needs CREATEROLE (CI's and docker compose's users have it); returns False, with a warning, without."""
    statements = [
        f"""DO $$ BEGIN
              IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
                  CREATE ROLE {role} NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
              END IF;
            END $$""",
        f"GRANT USAGE ON SCHEMA public TO {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
        f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {role}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {role}",
        f"GRANT {role} TO CURRENT_USER",
    ]
    try:
        with connections[using].cursor() as cursor, transaction.atomic(using=using):
            for sql in statements:
                cursor.execute(sql)
    except DatabaseError as exc:
        logger.warning("could not set up the row-level-security role %s: %s", role, exc)
        return False
    return True


def on_post_migrate(sender, using="default", **kwargs):
    if sender.name != "crm":
        return
    install(using)
    ensure_app_role(using)


def on_connection_created(sender, connection, **kwargs):
    """Until every entry point sets its tenant (DATABASE_RLS_ENFORCE), connections carry the explicit
    bypass, so a deployment whose user owns the tables without being a superuser keeps working."""
    from django.conf import settings

    if connection.vendor == "postgresql" and not settings.DATABASE_RLS_ENFORCE:
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('app.rls_bypass', 'on', false)")


@contextmanager
def tenant_session(*, tenant_id: int | None, user_id: int | None = None, using: str = "default"):
    """Run the block with the session's tenant (and user) set; always reset afterwards."""
    conn = connections[using]
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('app.tenant_id', %s, false), set_config('app.user_id', %s, false)",
            [str(tenant_id or ""), str(user_id or "")],
        )
    try:
        yield
    finally:
        if conn.connection is not None:
            with conn.cursor() as cursor:
                cursor.execute("RESET app.tenant_id; RESET app.user_id")


@contextmanager
def bypass(using: str = "default"):
    """Deliberately cross-tenant work (beat fan-out, platform superuser): say so where it is used.
    Restores the connection's previous setting afterwards (off: the connection-level bypass stays)."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('app.rls_bypass', true), set_config('app.rls_bypass', 'on', false)"
        )
        previous = cursor.fetchone()[0] or ""
    try:
        yield
    finally:
        with connections[using].cursor() as cursor:
            cursor.execute("SELECT set_config('app.rls_bypass', %s, false)", [previous])

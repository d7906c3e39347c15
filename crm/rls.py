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
import re
from contextlib import contextmanager
from functools import wraps

from django.apps import apps
from django.db import DatabaseError, connections, transaction
from psycopg.pq import TransactionStatus

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
    "analytics_team_daily",
    "analytics_team_daily_delta",
    "analytics_agent_daily",
    "analytics_agent_daily_delta",
    "analytics_email_response",
    "analytics_email_dirty",
]
# Views that must read their tables with the querying role's rights.
INVOKER_VIEWS = [
    "activity_feed",
    "analytics_daily_all",
    "analytics_contact_daily_all",
    "analytics_contact_summary_all",
    "analytics_team_daily_all",
    "analytics_agent_daily_all",
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
            # Each setting read once per statement, as an InitPlan parameter: a bare function call in the
            # policy is evaluated for every row (it made a 90k-row index-only scan 2.4 times slower).
            extra = " OR user_id = (SELECT app_user_id())" if table == "crm_membership" else ""
            rule = f"(SELECT app_rls_bypass()) OR tenant_id = (SELECT app_tenant_id()){extra}"
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


# Under row-level security PostgreSQL evaluates a query's own conditions after the policy's unless they
# are LEAKPROOF, so an index can serve only leakproof conditions: without these, the grid's full-text
# filter read every row of the tenant (11 s for a rare word at 10M rows) and the name filters could not use
# their trigram indexes. Each only compares its arguments; none raises an error that depends on a row's
# value (to_tsvector may emit a notice about a word over 2,047 characters). Marking built-in functions
# needs a superuser: without one, a warning, and the filters stay correct but scan.
LEAKPROOF_FUNCTIONS = (
    "pg_catalog.ts_match_vq(tsvector, tsquery)",  # tsvector @@ tsquery
    "pg_catalog.to_tsvector(regconfig, text)",  # the indexed expression of the summary filter
    "pg_catalog.texticlike(text, text)",  # ILIKE (the name filters' trigram indexes)
)


def mark_leakproof(using: str = "default") -> bool:
    """Mark LEAKPROOF_FUNCTIONS leakproof when connected as a superuser; False (with a warning) otherwise."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        row = cursor.fetchone()
        if not (row and row[0]):
            logger.warning(
                "not a superuser: %s not marked LEAKPROOF; full-text and name filters cannot use their "
                "indexes under row-level security",
                ", ".join(LEAKPROOF_FUNCTIONS),
            )
            return False
        for function in LEAKPROOF_FUNCTIONS:
            cursor.execute(f"ALTER FUNCTION {function} LEAKPROOF")
    return True


def ensure_app_role(using: str = "default", role: str | None = None) -> bool:
    """Create the restricted role and grant it DML on the schema; the connecting user (the owner, who runs
    migrations) may act as it. With DATABASE_APP_PASSWORD the role may also log in, for deployments whose
    web and workers connect as it. Needs CREATEROLE; returns False, with a warning, without."""
    from django.conf import settings

    role = role or settings.DATABASE_RLS_ROLE
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", role):
        raise ValueError(f"DATABASE_RLS_ROLE must be a plain lower-case identifier, not {role!r}")
    statements = [
        f"""DO $$ BEGIN
              IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
                  CREATE ROLE {role} NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
              END IF;
            END $$""",
        f"GRANT USAGE ON SCHEMA public TO {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
        f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {role}",
        f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {role}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {role}",
        f"GRANT {role} TO CURRENT_USER",
    ]
    if settings.DATABASE_APP_PASSWORD:
        # Passed through format('%L') so the password is quoted by PostgreSQL, never by string pasting.
        statements.append(
            f"DO $$ BEGIN EXECUTE format('ALTER ROLE {role} LOGIN PASSWORD %L', "
            f"current_setting('app.new_password')); END $$"
        )
    try:
        with connections[using].cursor() as cursor, transaction.atomic(using=using):
            if settings.DATABASE_APP_PASSWORD:
                cursor.execute(
                    "SELECT set_config('app.new_password', %s, true)", [settings.DATABASE_APP_PASSWORD]
                )
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
    mark_leakproof(using)


def on_connection_created(sender, connection, **kwargs):
    """With enforcement off (DATABASE_RLS_ENFORCE=0, an escape hatch, never the default) connections carry
    the explicit bypass. With it on (the default) nothing is set here: a connection outside a request or
    task scope has no tenant, so the application role sees no tenant rows at all."""
    from django.conf import settings

    if connection.vendor == "postgresql" and not settings.DATABASE_RLS_ENFORCE:
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('app.rls_bypass', 'on', false)")


def enforced() -> bool:
    from django.conf import settings

    return settings.DATABASE_RLS_ENFORCE


def _role() -> str:
    from django.conf import settings

    return settings.DATABASE_RLS_ROLE


_READ = (
    "current_setting('role'), current_setting('app.tenant_id', true), current_setting('app.user_id', true),"
    " current_setting('app.rls_bypass', true)"
)
_WRITE = (
    "set_config('role', %s, {local}), set_config('app.tenant_id', %s, {local}),"
    " set_config('app.user_id', %s, {local}), set_config('app.rls_bypass', %s, {local})"
)


def _values(tenant_id, user_id, bypass) -> list[str]:
    return [_role(), str(tenant_id or ""), str(user_id or ""), "on" if bypass else ""]


def _apply(
    cursor, values: list[str], *, local: bool, read_previous: bool, read_only: bool = False
) -> list[str] | None:
    flag = "true" if local else "false"
    sql = "SELECT " + (_READ + ", " if read_previous else "") + _WRITE.format(local=flag)
    if read_only:
        # SET TRANSACTION READ ONLY, in the same statement.
        sql += ", set_config('transaction_read_only', 'on', true)"
    cursor.execute(sql, values)
    return list(cursor.fetchone()[:4]) if read_previous else None


@contextmanager
def tenant_transaction(
    *,
    tenant_id: int | None = None,
    user_id: int | None = None,
    bypass: bool = False,
    using: str = "default",
    read_only: bool = False,
):
    """One transaction acting as the application role with this tenant (and user) set, transaction-local:
    the settings end with the transaction, so a pooled connection never carries them into the next one.

    Every request runs in one (``crm.middleware.TenantMiddleware``), and so does a streamed export. When
    nested (a test's transaction, an eager task inside a request) the previous settings are restored on the
    way out; on an error the savepoint's rollback undoes them.

    ``using`` names the connection: a page that reads the replica runs a second one there, for the same
    tenant and user (``crm.db_router.replica_reads``). ``read_only`` makes an outermost transaction
    READ ONLY (a nested one cannot be switched once its transaction has read)."""
    conn = connections[using]
    nested = conn.in_atomic_block
    if not enforced():
        with transaction.atomic(using=using):
            if read_only and not nested:
                with conn.cursor() as cursor:
                    cursor.execute("SET TRANSACTION READ ONLY")
            yield
        return
    with transaction.atomic(using=using):
        with conn.cursor() as cursor:
            values = _values(tenant_id, user_id, bypass)
            previous = _apply(
                cursor, values, local=True, read_previous=nested, read_only=read_only and not nested
            )
        yield
        if nested and not conn.needs_rollback:
            with conn.cursor() as cursor:
                _apply(cursor, previous, local=True, read_previous=False)


def set_tenant(tenant_id: int | None, *, using: str = "default") -> None:
    """Inside a tenant_transaction: switch its tenant (the request's tenant is known only after its
    membership, API key, widget key or channel key is found). Ends with the transaction."""
    conn = connections[using]
    if not enforced():
        return
    if not conn.in_atomic_block:
        raise RuntimeError("set_tenant() belongs inside rls.tenant_transaction()")
    with conn.cursor() as cursor:
        cursor.execute("SELECT set_config('app.tenant_id', %s, true)", [str(tenant_id or "")])


@contextmanager
def tenant_session(
    *, tenant_id: int | None = None, user_id: int | None = None, bypass: bool = False, using: str = "default"
):
    """A Celery task's scope: every transaction of the task acts as the application role with this tenant.

    A mail sync commits batch by batch (and its lease in transactions of their own), so one transaction
    around the task will not do. Instead an execute wrapper makes each of the task's transactions carry the
    settings, transaction-local like a request's: a statement that opens a transaction is preceded by the
    ``set_config(..., true)`` in that transaction, and a statement outside any ``atomic()`` block gets a
    transaction of its own that does the same. Nothing is ever set for the session, so a pooled connection
    (a persistent one, or a transaction-mode pooler's) never carries the tenant past the transaction. Inside
    a transaction already (an eager task run by a request or a test) this is a tenant_transaction."""
    conn = connections[using]
    if conn.in_atomic_block or not enforced():
        with tenant_transaction(tenant_id=tenant_id, user_id=user_id, bypass=bypass, using=using):
            yield
        return
    values = _values(tenant_id, user_id, bypass)
    setting = False

    def scoped(execute, sql, params, many, context):
        nonlocal setting
        if setting:
            return execute(sql, params, many, context)
        if not conn.in_atomic_block:
            with transaction.atomic(using=using):
                return scoped(execute, sql, params, many, context)
        if conn.connection.info.transaction_status == TransactionStatus.IDLE:
            # This statement opens the transaction: the settings go first, in the same transaction.
            setting = True
            try:
                with conn.cursor() as cursor:
                    _apply(cursor, values, local=True, read_previous=False)
            finally:
                setting = False
        return execute(sql, params, many, context)

    with conn.execute_wrapper(scoped):
        yield


@contextmanager
def bypass(using: str = "default"):
    """Deliberately cross-tenant work (the key lookups that name a caller's tenant, the benchmarks' set-up):
    say so where it is used. Inside a transaction it is transaction-local in a savepoint of its own (an
    error rolls it back with the savepoint); outside one it is ``tenant_session(bypass=True)``: nothing is
    ever set for the session."""
    conn = connections[using]
    if not conn.in_atomic_block:
        with tenant_session(bypass=True, using=using):
            yield
        return
    with transaction.atomic(using=using):
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT current_setting('app.rls_bypass', true), set_config('app.rls_bypass', 'on', true)"
            )
            previous = cursor.fetchone()[0] or ""
        yield
        with conn.cursor() as cursor:
            cursor.execute("SELECT set_config('app.rls_bypass', %s, true)", [previous])


def tenant_id_of(model, pk) -> int | None:
    """The tenant of the row a task was given by id. Deliberately cross-tenant: the id is all a task
    receives, and the tenant it finds is the only one the task then acts for."""
    with tenant_transaction(bypass=True):
        return model.objects.filter(pk=pk).values_list("tenant_id", flat=True).first()


def operator_command(handle):
    """Decorates a management command's ``handle``: an operator's command (seed, key rotation, setup,
    a manual sync) is deliberately cross-tenant, and works the same when the connection's user is the
    restricted role."""

    @wraps(handle)
    def wrapper(*args, **kwargs):
        with tenant_session(bypass=True):
            return handle(*args, **kwargs)

    return wrapper

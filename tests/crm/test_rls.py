"""Row-level security is the database's backstop: a session acting as the application role sees no
tenant's rows until a tenant is set, and then only that tenant's (issue 8)."""

from contextlib import contextmanager

import pytest
from django.apps import apps
from django.db import DatabaseError, connection, transaction

from crm import rls
from tests.factories import (
    ActivityFactory,
    ClosedInteractionFactory,
    ContactFactory,
    EmailLocationFactory,
    MembershipFactory,
    TicketFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@contextmanager
def app_role(*, tenant_id=None, user_id=None, bypass=False):
    """A cursor acting as the application role with the given session settings; all reset afterwards."""
    with connection.cursor() as cursor:
        cursor.execute(f"SET ROLE {rls.APP_ROLE}")
        cursor.execute(
            "SELECT set_config('app.rls_bypass', %s, false), set_config('app.tenant_id', %s, false),"
            " set_config('app.user_id', %s, false)",
            ["on" if bypass else "", str(tenant_id or ""), str(user_id or "")],
        )
        try:
            yield cursor
        finally:
            cursor.execute("RESET ROLE; RESET app.tenant_id; RESET app.user_id")
            cursor.execute("SELECT set_config('app.rls_bypass', 'on', false)")


def _count(cursor, table, tenant_id=None):
    # table names come from the model registry, not from input
    if tenant_id is None:
        cursor.execute(f'SELECT count(*) FROM "{table}"')  # noqa: S608
    else:
        cursor.execute(f'SELECT count(*) FROM "{table}" WHERE tenant_id <> %s', [tenant_id])  # noqa: S608
    return cursor.fetchone()[0]


def test_every_tenant_table_has_rls_enabled_forced_and_a_policy():
    models = [
        m._meta.db_table
        for m in apps.get_models()
        if m._meta.managed and any(f.name == "tenant" for f in m._meta.concrete_fields)
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
                      EXISTS (SELECT 1 FROM pg_policies p WHERE p.tablename = c.relname AND p.policyname = %s)
                 FROM pg_class c WHERE c.relname = ANY(%s)""",
            [rls.POLICY, models + rls.EXTRA_TABLES],
        )
        state = {name: flags for name, *flags in cursor.fetchall()}
    missing = [t for t in models if t not in state]
    assert not missing, f"tables not found: {missing}"
    unprotected = {t: flags for t, flags in state.items() if flags != [True, True, True]}
    assert not unprotected, f"tables without enabled+forced RLS and a policy: {unprotected}"


def test_the_application_role_is_restricted():
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s", [rls.APP_ROLE])
        assert cursor.fetchone() == (False, False)
        cursor.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tableowner = %s",
            [rls.APP_ROLE],
        )
        assert cursor.fetchone()[0] == 0


def test_no_tenant_set_sees_every_tenant_table_empty(tenant, other_tenant):
    # given rows in both tenants in many tables
    for t in (tenant, other_tenant):
        ActivityFactory(tenant=t, contact=ContactFactory(tenant=t))
        ClosedInteractionFactory(tenant=t)
        TicketFactory(tenant=t)
        EmailLocationFactory(tenant=t)
        MembershipFactory(tenant=t)
    tables = rls.tenant_tables()
    with app_role() as cursor:
        # when the application role asks with no tenant set
        counts = {table: _count(cursor, table) for table in tables}
        cursor.execute("SELECT count(*) FROM activity_feed")
        counts["activity_feed"] = cursor.fetchone()[0]
    # then it sees nothing anywhere
    assert counts and not any(counts.values()), {t: n for t, n in counts.items() if n}


def test_a_tenant_sees_only_its_rows(tenant, other_tenant):
    mine = ActivityFactory(tenant=tenant, summary="mine")
    ActivityFactory(tenant=other_tenant, summary="theirs")
    ClosedInteractionFactory(tenant=other_tenant)
    with app_role(tenant_id=tenant.pk) as cursor:
        cursor.execute("SELECT id FROM crm_activities")
        assert [r[0] for r in cursor.fetchall()] == [mine.pk]
        cursor.execute("SELECT count(*) FROM activity_feed WHERE tenant_id <> %s", [tenant.pk])
        assert cursor.fetchone()[0] == 0
        for table in rls.tenant_tables():
            assert _count(cursor, table, tenant.pk) == 0, table


def test_writing_another_tenants_row_is_refused(tenant, other_tenant):
    theirs = ContactFactory(tenant=other_tenant, name="Theirs")
    with app_role(tenant_id=tenant.pk) as cursor:
        cursor.execute("UPDATE crm_contact SET name = 'hijacked' WHERE id = %s", [theirs.pk])
        assert cursor.rowcount == 0  # invisible, so untouched
        with pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
            cursor.execute(
                "INSERT INTO crm_team (tenant_id, name, created_at, updated_at)"
                " VALUES (%s, 'x', now(), now())",
                [other_tenant.pk],
            )
    theirs.refresh_from_db()
    assert theirs.name == "Theirs"


def test_memberships_are_visible_by_user_before_a_tenant_is_chosen(tenant, other_tenant):
    user = UserFactory()
    MembershipFactory(tenant=tenant, user=user)
    MembershipFactory(tenant=other_tenant, user=user)
    MembershipFactory(tenant=tenant)  # someone else's
    with app_role(user_id=user.pk) as cursor:
        cursor.execute("SELECT tenant_id FROM crm_membership ORDER BY tenant_id")
        assert [r[0] for r in cursor.fetchall()] == sorted([tenant.pk, other_tenant.pk])


def test_explicit_bypass_sees_all_tenants(tenant, other_tenant):
    ActivityFactory(tenant=tenant)
    ActivityFactory(tenant=other_tenant)
    with app_role(bypass=True) as cursor:
        cursor.execute("SELECT count(DISTINCT tenant_id) FROM crm_activities")
        assert cursor.fetchone()[0] == 2


def test_analytics_triggers_work_under_the_application_role(tenant):
    """The aggregates written by triggers obey the same policy as the rows that cause them."""
    contact = ContactFactory(tenant=tenant)
    with app_role(tenant_id=tenant.pk) as cursor:
        cursor.execute(
            """INSERT INTO crm_activities (tenant_id, contact_id, type, source, direction, summary, body,
                   first_message, changes, done, occurred_at, created_at, updated_at)
               VALUES (%s, %s, 'call', 'manual', 'inbound', 's', '', '', '{}', false, now(), now(), now())""",
            [tenant.pk, contact.pk],
        )
        cursor.execute("SELECT sum(n) FROM analytics_daily_all")
        assert cursor.fetchone()[0] == 1


def test_bypass_restores_the_previous_setting():
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('app.rls_bypass', 'on', false)")
        with rls.bypass():
            pass
        cursor.execute("SELECT current_setting('app.rls_bypass', true)")
        assert cursor.fetchone()[0] == "on"  # the connection-level bypass survives
        cursor.execute("SELECT set_config('app.rls_bypass', '', false)")
        with rls.bypass():
            cursor.execute("SELECT current_setting('app.rls_bypass', true)")
            assert cursor.fetchone()[0] == "on"
        cursor.execute("SELECT current_setting('app.rls_bypass', true)")
        assert cursor.fetchone()[0] == ""
        cursor.execute("SELECT set_config('app.rls_bypass', 'on', false)")

"""Row-level security at run time (issue 8): every request and task acts as the restricted role with its
tenant set, transaction-local, so even a query that forgets ``for_tenant()`` sees one tenant only, and a
pooled connection never carries one request's tenant into the next.

The probe views below run raw, unscoped SQL inside the real middleware stack: what they count is what
the database itself lets the request see."""

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.test import override_settings
from django.urls import path

from crm import rls
from crm.urls import urlpatterns as project_urls
from emailsync import tasks as email_tasks
from tests.factories import (
    ActivityFactory,
    ApiKeyFactory,
    ContactFactory,
    MailboxFactory,
    MembershipFactory,
    OutgoingEmailFactory,
)

SETTINGS_SQL = (
    "SELECT current_user, current_setting('app.tenant_id', true), current_setting('app.rls_bypass', true)"
)


def _state() -> dict:
    with connection.cursor() as cursor:
        cursor.execute(SETTINGS_SQL)
        role, tenant_id, bypass = cursor.fetchone()
        # No WHERE tenant_id: only the database's policy narrows these counts.
        cursor.execute("SELECT count(*), count(DISTINCT tenant_id) FROM crm_contact")
        contacts, tenants = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM activity_feed")
        feed = cursor.fetchone()[0]
    return {
        "role": role,
        "tenant_id": tenant_id or None,
        "bypass": bypass or "",
        "contacts": contacts,
        "tenants": tenants,
        "feed": feed,
    }


def probe(request):
    return JsonResponse(_state())


def probe_write_then_fail(request):
    ContactFactory(tenant=request.tenant, name="Written by a failing view")
    return HttpResponse("boom", status=500)


def probe_api_key(request):
    from crm import services

    key = services.api_key_authenticate(request.headers.get("Authorization", "").removeprefix("Bearer "))
    return JsonResponse({"key": key.pk if key else None, **_state()})


def probe_orm(request):
    from crm.models import Contact

    # Deliberately unfiltered: only the database's policy narrows this.
    return JsonResponse({"tenants": sorted(set(Contact.objects.values_list("tenant_id", flat=True)))})


def probe_smuggle(request):
    from django.db import DatabaseError, transaction

    from crm.models import Team

    try:
        with transaction.atomic():
            Team.objects.create(tenant_id=int(request.GET["tenant"]), name="Smuggled")
    except DatabaseError as exc:
        return JsonResponse({"error": str(exc)})
    return JsonResponse({"error": None})


urlpatterns = [
    path("rls-probe/", probe),
    path("rls-probe/orm/", probe_orm),
    path("rls-probe/smuggle/", probe_smuggle),
    path("rls-probe/fail/", probe_write_then_fail),
    path("admin/rls-probe/", probe),
    path("api/rls-probe/", probe_api_key),
    *project_urls,
]

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]


@pytest.fixture
def two_tenants(tenant, other_tenant):
    for t, n in ((tenant, 2), (other_tenant, 3)):
        for _ in range(n):
            ActivityFactory(tenant=t, contact=ContactFactory(tenant=t))
    return tenant, other_tenant


def test_rls_is_enforced_by_default():
    assert settings.DATABASE_RLS_ENFORCE is True
    assert settings.DATABASE_RLS_ROLE == rls.APP_ROLE


def test_a_signed_in_request_sees_only_its_tenant_even_without_a_filter(
    two_tenants, agent_member, client_for
):
    tenant, _ = two_tenants
    data = client_for(agent_member).get("/rls-probe/").json()
    assert data["role"] == rls.APP_ROLE
    assert data["tenant_id"] == str(tenant.pk)
    assert data["bypass"] == ""
    assert (data["contacts"], data["tenants"], data["feed"]) == (2, 1, 2)


def test_an_anonymous_request_sees_no_tenant_rows(two_tenants, client):
    data = client.get("/rls-probe/").json()
    assert data["role"] == rls.APP_ROLE
    assert (data["tenant_id"], data["contacts"], data["feed"]) == (None, 0, 0)


def test_a_member_of_no_tenant_sees_nothing_even_as_platform_superuser_outside_admin(
    two_tenants, client, django_user_model
):
    root = django_user_model.objects.create_superuser("root@example.test", "root@example.test", "x-pw-12345")
    client.force_login(root)
    assert client.get("/rls-probe/").json()["contacts"] == 0
    # Django admin is the platform superuser's one deliberately cross-tenant door.
    data = client.get("/admin/rls-probe/").json()
    assert (data["bypass"], data["contacts"], data["tenants"]) == ("on", 5, 2)


def test_a_tenant_admin_gets_no_bypass_in_admin(two_tenants, admin_member, client_for):
    admin_member.user.is_staff = True
    admin_member.user.save()
    data = client_for(admin_member).get("/admin/rls-probe/").json()
    assert (data["bypass"], data["contacts"], data["tenants"]) == ("", 2, 1)


def test_switching_tenant_switches_what_the_database_shows(two_tenants, make_member, team, client):
    tenant, other = two_tenants
    member = make_member(tenant, teams=[team])
    MembershipFactory(tenant=other, user=member.user)
    client.force_login(member.user)
    first = client.get("/rls-probe/").json()
    client.post("/tenant/switch/", {"tenant": other.pk})
    second = client.get("/rls-probe/").json()
    assert {first["tenant_id"], second["tenant_id"]} == {str(tenant.pk), str(other.pk)}
    assert sorted([first["contacts"], second["contacts"]]) == [2, 3]


def test_the_request_settings_do_not_outlive_the_request(two_tenants, agent_member, client_for):
    client_for(agent_member).get("/rls-probe/")
    after = _state()
    assert (after["role"], after["tenant_id"], after["bypass"]) == ("postgres", None, "")
    assert after["contacts"] == 5  # the test harness (superuser) again, not the request's role


@pytest.mark.django_db(transaction=True)
def test_settings_are_transaction_local_on_a_reused_connection(two_tenants, agent_member, client_for):
    """Outside any test transaction (like a production request on a persistent connection), the
    request's COMMIT ends its tenant: the next use of the same connection carries nothing."""
    client = client_for(agent_member)
    assert client.get("/rls-probe/").json()["contacts"] == 2
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('role'), current_setting('app.tenant_id', true),"
            " current_setting('app.user_id', true)"
        )
        assert cursor.fetchone() in {("none", "", ""), ("none", None, None)}


def test_a_failing_view_leaves_no_partial_write(tenant, agent_member, client_for):
    client = client_for(agent_member)
    client.raise_request_exception = False
    assert client.get("/rls-probe/fail/").status_code == 500
    from crm.models import Contact

    assert not Contact.objects.filter(name="Written by a failing view").exists()


def test_an_api_key_names_the_only_tenant_the_request_may_see(two_tenants, client):
    from crm import services

    tenant, _ = two_tenants
    key, raw = services.api_key_create(tenant=tenant, actor=None, name="probe")
    data = client.get("/api/rls-probe/", HTTP_AUTHORIZATION=f"Bearer {raw}").json()
    assert data["key"] == key.pk
    assert (data["tenant_id"], data["contacts"], data["tenants"]) == (str(tenant.pk), 2, 1)
    # A wrong key leaves the request with no tenant at all.
    data = client.get("/api/rls-probe/", HTTP_AUTHORIZATION="Bearer crm_nope").json()
    assert (data["key"], data["contacts"]) == (None, 0)
    assert ApiKeyFactory._meta.model.objects.filter(pk=key.pk).exists()


def test_a_forgotten_tenant_filter_in_a_request_is_caught_by_the_database(
    two_tenants, agent_member, client_for
):
    """The backstop in action: even the default manager, unfiltered, returns this tenant's rows only."""
    data = client_for(agent_member).get("/rls-probe/orm/").json()
    assert data["tenants"] == [two_tenants[0].pk]


@pytest.mark.django_db(transaction=True)
def test_a_mail_task_acts_for_its_mailboxs_tenant_only(two_tenants, monkeypatch):
    """Celery tasks get ids; the task finds the row's tenant (a narrow bypass) and acts for it alone,
    and its worker connection carries nothing afterwards."""
    tenant, other = two_tenants
    mailbox = MailboxFactory(tenant=tenant)
    seen = {}

    def fake_sync(mailbox_id, **kwargs):
        seen.update(_state())
        return email_tasks.services.SyncResult()

    monkeypatch.setattr(email_tasks.services, "sync_mailbox", fake_sync)
    email_tasks.sync_mailbox_task.run(mailbox.pk)
    assert (seen["role"], seen["tenant_id"], seen["contacts"], seen["tenants"]) == (
        rls.APP_ROLE,
        str(tenant.pk),
        2,
        1,
    )
    after = _state()
    assert (after["role"], after["tenant_id"], after["bypass"]) == ("postgres", None, "")
    # A mailbox that no longer exists is not synced under anybody's tenant.
    assert email_tasks.sync_mailbox_task.run(10**9) == "gone"


@pytest.mark.django_db(transaction=True)
def test_the_outgoing_mail_task_acts_for_its_tenant_only(two_tenants, monkeypatch):
    tenant, _ = two_tenants
    outgoing = OutgoingEmailFactory(tenant=tenant)
    seen = {}

    def fake_deliver(outgoing_id, **kwargs):
        seen.update(_state())
        return "sent"

    monkeypatch.setattr(email_tasks.services, "outgoing_deliver", fake_deliver)
    assert email_tasks.send_outgoing_email_task.run(outgoing.pk) == "sent"
    assert (seen["tenant_id"], seen["contacts"], seen["tenants"]) == (str(tenant.pk), 2, 1)


def test_the_beat_fan_out_is_the_explicit_cross_tenant_path(tenant, other_tenant):
    due = [MailboxFactory(tenant=t) for t in (tenant, other_tenant)]
    with rls.tenant_session(tenant_id=None):  # as the role with no tenant: nothing is due
        assert email_tasks.claim_due_mailboxes() == []
    with rls.tenant_session(bypass=True):
        assert sorted(email_tasks.claim_due_mailboxes()) == sorted(m.pk for m in due)


def test_the_streamed_export_reads_in_its_own_tenant_transaction(two_tenants, admin_member, client_for):
    response = client_for(admin_member).get("/activities/export.csv")
    assert response.status_code == 200
    lines = b"".join(response.streaming_content).decode().strip().splitlines()
    assert len(lines) == 1 + 2  # header + this tenant's two activities, not the other tenant's three
    assert _state()["role"] == "postgres"  # and the export's transaction left nothing behind


@pytest.mark.django_db(transaction=True)
def test_the_application_role_can_log_in_and_sees_nothing_without_a_tenant(two_tenants):
    """Deployments connect web and workers as the role itself (DATABASE_APP_PASSWORD): a raw connection
    as that role, outside any request, sees no tenant rows."""
    with override_settings(DATABASE_APP_PASSWORD="app-role-pw-for-tests"):
        assert rls.ensure_app_role()
    params = connection.get_connection_params()
    params.update(user=rls.APP_ROLE, password="app-role-pw-for-tests")
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params.pop("prepare_threshold", None)
    with psycopg.connect(**params) as conn:
        row = conn.execute("SELECT current_user, (SELECT count(*) FROM crm_contact)").fetchone()
        assert row == (rls.APP_ROLE, 0)
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", [str(two_tenants[0].pk)])
        assert conn.execute("SELECT count(*) FROM crm_contact").fetchone()[0] == 2
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("ALTER TABLE crm_contact DISABLE ROW LEVEL SECURITY")


def test_writing_another_tenants_row_in_a_request_is_refused(tenant, other_tenant, admin_member, client_for):
    """The policy's WITH CHECK refuses a row for another tenant, whatever the code asked for."""
    from crm.models import Team

    data = client_for(admin_member).get(f"/rls-probe/smuggle/?tenant={other_tenant.pk}").json()
    assert "row-level security" in data["error"]
    assert not Team.objects.filter(name="Smuggled").exists()
    # The same write for the request's own tenant goes through: the refusal is the policy's, not a bug.
    assert client_for(admin_member).get(f"/rls-probe/smuggle/?tenant={tenant.pk}").json()["error"] is None


@pytest.mark.django_db(transaction=True)
def test_a_task_scope_is_transaction_local_too(two_tenants):
    """A task commits many transactions (a mail sync, batch by batch): each carries the tenant, and the
    session between them carries nothing, so a pooled connection (a transaction-mode pooler's included)
    never hands the tenant to someone else's transaction."""
    tenant, _ = two_tenants
    with rls.tenant_session(tenant_id=tenant.pk):
        first = _state()  # several autocommit statements: each gets a transaction with the tenant
        from django.db import transaction

        with transaction.atomic():
            inside = _state()
        raw = connection.connection.execute(  # straight to psycopg: no wrapper, between transactions
            "SELECT current_user, current_setting('app.tenant_id', true)"
        ).fetchone()
    assert (first["role"], first["tenant_id"], first["contacts"]) == (rls.APP_ROLE, str(tenant.pk), 2)
    assert (inside["tenant_id"], inside["contacts"]) == (str(tenant.pk), 2)
    assert raw[0] == "postgres" and not raw[1]
    assert _state()["contacts"] == 5  # after the scope: the harness again


@pytest.mark.django_db(transaction=True)
def test_a_bypass_outside_a_transaction_sets_nothing_for_the_session(two_tenants):
    with rls.bypass():
        inside = _state()
        raw = connection.connection.execute("SELECT current_setting('app.rls_bypass', true)").fetchone()
    assert (inside["bypass"], inside["tenants"]) == ("on", 2)
    assert not raw[0]
    assert _state()["bypass"] == ""


def _copies(table: str, pk: int, n: int) -> None:
    """n copies of one row (a fresh id each), enough for the planner to prefer a selective index."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT string_agg(quote_ident(attname), ', ') FROM pg_attribute WHERE attrelid = %s::regclass"
            " AND attnum > 0 AND NOT attisdropped AND attname <> 'id' AND attgenerated = ''",
            [table],
        )
        columns = cursor.fetchone()[0]
        cursor.execute(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {table}, generate_series(1, %s)"  # noqa: S608
            " WHERE id = %s",
            [n, pk],
        )
        cursor.execute(f"ANALYZE {table}")


def _plan(sql: str, params, tenant_id: int, *, seqscan: bool = True) -> str:
    with rls.tenant_transaction(tenant_id=tenant_id), connection.cursor() as cursor:
        if not seqscan:  # a small table is cheaper to read whole; the question is whether the index may serve
            cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_text_filters_use_their_indexes_under_row_level_security(tenant, admin_member):
    """Under RLS only leakproof conditions may use an index; the summary filter (GIN full text) and the
    name filters (trigram ILIKE) are, so a rare word is an index lookup, not a read of every row of the
    tenant (11 s at 10M rows before: the COALESCE in the indexed expression and the built-in functions
    counted as able to leak)."""
    from activities import selectors
    from activities.models import FeedEntry

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT bool_and(proleakproof) FROM pg_proc WHERE oid = ANY(%s::regprocedure[])",
            [list(rls.LEAKPROOF_FUNCTIONS)],
        )
        assert cursor.fetchone()[0] is True, "post_migrate marks them (the test database user is a superuser)"
    filler = ActivityFactory(tenant=tenant, summary="an ordinary call about the weather")
    _copies("crm_activities", filler.pk, 3000)
    ActivityFactory(tenant=tenant, summary="a zephyrine call")
    queryset = selectors.feed_filtered(
        membership=admin_member, q=selectors.GridQuery(summary="zephyrine")
    ).queryset
    sql, params = queryset.order_by("-occurred_at", "-id").values("id")[:51].query.sql_with_params()
    assert "act_summary_tsv" in _plan(sql, params, tenant.pk)
    with rls.tenant_transaction(tenant_id=tenant.pk):
        assert [row["id"] for row in queryset.values("id")] == [
            FeedEntry.objects.for_tenant(tenant).get(summary="a zephyrine call").id
        ]

    contact = ContactFactory(tenant=tenant, name="Ordinary Person")
    _copies("crm_contact", contact.pk, 3000)
    plan = _plan(
        "SELECT id FROM crm_contact WHERE name ILIKE %s", ["%quillfeather%"], tenant.pk, seqscan=False
    )
    assert "contact_name_trgm" in plan

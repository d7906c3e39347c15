"""The read replica (crm/db_router.py, issue 10): only the grid, its count and analytics read it; writes,
the request after a write and auth/session/membership reads stay on the primary; row-level security holds
on the replica connection; an unreachable or lost replica falls back to the primary; without
DATABASE_REPLICA_URL nothing changes.

The ``replica`` fixture adds the alias the way DATABASE_REPLICA_URL does (crm.settings.replica_database),
pointed at the test database through a second, real connection named ``replica`` in pg_stat_activity, so
every test can tell which connection served a query. A second connection cannot see the test's open
transaction: these tests commit (transaction=True)."""

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import time

import psycopg
import pytest
from django.conf import settings as django_settings
from django.contrib.auth.decorators import login_required
from django.db import DatabaseError, connection, connections, transaction
from django.http import JsonResponse
from django.test.utils import CaptureQueriesContext
from django.urls import path, reverse

from activities.models import FeedEntry, SavedView
from crm import db_router, rls
from crm.db_router import PIN_COOKIE, REPLICA, replica_reads
from crm.models import ApiKey, Contact, Membership, Tenant
from crm.settings import replica_database
from crm.urls import urlpatterns as project_urls
from tests.factories import ActivityFactory, ContactFactory

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _probe(request):
    """Raw, unfiltered SQL on the connection raw reads use inside a replica view: only the database's
    policy narrows these counts."""
    with db_router.read_connection().cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('application_name'), current_user,"
            " current_setting('app.tenant_id', true), current_setting('transaction_read_only')"
        )
        app, role, tenant_id, read_only = cursor.fetchone()
        cursor.execute("SELECT count(*), count(DISTINCT tenant_id) FROM crm_activities")
        rows, tenants = cursor.fetchone()
    try:
        with transaction.atomic(using=db_router.read_alias()), db_router.read_connection().cursor() as cursor:
            cursor.execute("UPDATE crm_contact SET name = name")
        write_error = ""
    except DatabaseError as exc:
        write_error = str(exc)
    return JsonResponse(
        {
            "alias": db_router.read_alias(),
            "application_name": app,
            "role": role,
            "tenant_id": tenant_id,
            "read_only": read_only,
            "rows": rows,
            "tenants": tenants,
            "write_error": write_error,
        }
    )


def _write_then_read(request):
    """A replica view that writes: the write and every read after it use the primary."""
    before = db_router.read_alias(Contact)
    Contact.objects.create(tenant_id=request.tenant.pk, name="Written in a replica view")
    names = list(Contact.objects.filter(name="Written in a replica view").values_list("name", flat=True))
    return JsonResponse({"before": before, "after": db_router.read_alias(Contact), "names": names})


def _read_then_lose_replica(request):
    """Reads the replica in full, then the replica goes away before its read-only transaction ends."""
    names = sorted(Contact.objects.values_list("name", flat=True))
    pid = db_router.read_connection().connection.info.backend_pid
    with psycopg.connect(**_libpq(connection.settings_dict), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])
    return JsonResponse({"alias": db_router.read_alias(Contact), "names": names})


urlpatterns = [
    path("replica-probe/", login_required(replica_reads(_probe))),
    path("replica-probe/lose/", login_required(replica_reads(_read_then_lose_replica))),
    path("replica-probe/write/", login_required(replica_reads(_write_then_read))),
    *project_urls,
]

pytestmark = pytest.mark.urls(__name__)
# Committed data (the replica is another connection), and the alias allowed; as a mirror of the test
# database it is never created or flushed on its own.
WITH_REPLICA = pytest.mark.django_db(transaction=True, databases=["default", REPLICA])


@pytest.fixture(scope="class")
def replica_alias():
    """DATABASE_REPLICA_URL pointing at the test database through its own connection, as
    crm.settings.replica_database makes it. Class-scoped, so the alias exists before the test's database
    access (WITH_REPLICA) is set up; tests outside the class run without it."""
    base = connections["default"].settings_dict
    entry = replica_database("postgres://replica.invalid/replica")
    for key in ("NAME", "USER", "PASSWORD", "HOST", "PORT"):
        entry[key] = base[key]
    entry = connections.configure_settings({"default": dict(base), REPLICA: entry})[REPLICA]
    django_settings.DATABASES[REPLICA] = entry
    connections.settings[REPLICA] = entry
    yield entry
    connections.settings.pop(REPLICA, None)
    django_settings.DATABASES.pop(REPLICA, None)
    with contextlib.suppress(AttributeError):
        del connections[REPLICA]


@pytest.fixture
def replica(replica_alias, settings):
    settings.DATABASE_ROUTERS = ["crm.db_router.ReplicaRouter"]
    db_router._down_until = 0.0
    yield connections[REPLICA]
    connections[REPLICA].close()
    del connections[REPLICA]
    db_router._down_until = 0.0


@pytest.fixture
def dead_replica(replica):
    """The replica's address a closed port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    entry = connections.settings[REPLICA]
    saved = entry["HOST"], entry["PORT"]
    replica.close()
    del connections[REPLICA]
    entry["HOST"], entry["PORT"] = "127.0.0.1", port
    yield
    entry["HOST"], entry["PORT"] = saved


@pytest.fixture
def feed(tenant, other_tenant):
    for t, n in ((tenant, 2), (other_tenant, 3)):
        for i in range(n):
            ActivityFactory(tenant=t, contact=ContactFactory(tenant=t), summary=f"{t.name} call {i}")
    return tenant, other_tenant


def _libpq(db: dict) -> dict:
    return {
        "host": db["HOST"],
        "port": db["PORT"],
        "user": db["USER"],
        "password": db["PASSWORD"] or None,
        "dbname": db["NAME"],
    }


def _sql(queries) -> str:
    return "\n".join(q["sql"] for q in queries)


def _get(client, url, **extra):
    with CaptureQueriesContext(connection) as primary, CaptureQueriesContext(connections[REPLICA]) as copy:
        response = client.get(url, **extra)
    return response, _sql(primary.captured_queries), _sql(copy.captured_queries)


@WITH_REPLICA
@pytest.mark.usefixtures("replica_alias")
class TestWithReplica:
    # --- what reads the replica ---------------------------------------------------------------------------

    def test_the_grid_and_its_count_read_the_replica(self, replica, feed, admin_member, client_for):
        client = client_for(admin_member)
        response, primary, copy = _get(client, reverse("activities:grid"))
        assert response.status_code == 200
        html = response.content.decode()
        assert "Acme Test call 0" in html and "Acme Test call 1" in html
        assert "Other Test" not in html
        assert "activity_feed" in copy and "activity_feed" not in primary
        # Users, sessions and memberships always come from the primary.
        for table in ("auth_user", "django_session", "crm_membership", "crm_tenant"):
            assert table not in copy
        assert "crm_membership" in primary

        response, primary, copy = _get(client, reverse("activities:grid-count"))
        assert "2 activities" in response.content.decode()
        assert "statement_timeout" in copy and "count(*)" in copy
        assert "activity_feed" not in primary

        # A selective filter walks under a statement timeout on the replica too.
        response, primary, copy = _get(client, reverse("activities:grid") + "?q=call")
        assert response.status_code == 200
        assert "activity_feed" in copy and "activity_feed" not in primary

    def test_the_replica_is_a_connection_of_its_own(self, replica, feed, admin_member, client_for):
        client_for(admin_member).get(reverse("activities:grid"))
        with replica.cursor() as cursor:
            cursor.execute("SELECT current_setting('application_name'), pg_backend_pid()")
            name, pid = cursor.fetchone()
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('application_name'), pg_backend_pid()")
            primary_name, primary_pid = cursor.fetchone()
            cursor.execute("SELECT application_name FROM pg_stat_activity WHERE pid = %s", [pid])
            assert cursor.fetchone()[0] == "replica"
        assert name == "replica" and primary_name != "replica" and pid != primary_pid

    def test_analytics_and_its_csv_read_the_replica(self, replica, tenant, team, admin_member, client_for):
        from django.utils import timezone

        ActivityFactory(
            tenant=tenant, team=team, type="call", direction="inbound", occurred_at=timezone.now()
        )
        client = client_for(admin_member)
        response, primary, copy = _get(client, reverse("activities:analytics") + "?range=7")
        assert response.status_code == 200
        assert "Inbound <strong>1</strong>" in response.content.decode()
        assert "analytics_" in copy and "analytics_" not in primary

        response, primary, copy = _get(
            client, reverse("activities:analytics-export") + "?range=7&section=volume"
        )
        assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
        assert "analytics_" in copy and "analytics_" not in primary

    def test_other_pages_never_read_the_replica(self, replica, feed, admin_member, client_for):
        client = client_for(admin_member)
        for url in (reverse("crm:contact-list"), reverse("activities:export"), "/"):
            response, _, copy = _get(client, url)
            assert response.status_code in (200, 302), url
            assert copy == "", url

    # --- row-level security on the replica -----------------------------------------------------------------

    def test_rls_confines_raw_sql_on_the_replica_to_the_request_tenant(
        self, replica, feed, agent_member, foreign_member, client_for, client
    ):
        tenant, other = feed
        data = client_for(agent_member).get("/replica-probe/").json()
        assert data["alias"] == REPLICA and data["application_name"] == "replica"
        assert (data["role"], data["tenant_id"], data["read_only"]) == (rls.APP_ROLE, str(tenant.pk), "on")
        # SELECT count(*) FROM crm_activities, no WHERE: the policy alone narrows it to the tenant's 2 rows.
        assert (data["rows"], data["tenants"]) == (2, 1)
        assert "read-only transaction" in data["write_error"]

        client.logout()
        data = client_for(foreign_member).get("/replica-probe/").json()
        assert data["alias"] == REPLICA
        assert (data["tenant_id"], data["rows"], data["tenants"]) == (str(other.pk), 3, 1)

    def test_the_replica_connection_sees_no_tenant_rows_outside_a_request(
        self, replica, feed, agent_member, client_for
    ):
        client_for(agent_member).get("/replica-probe/")  # the connection exists and has served a request
        with replica.cursor() as cursor:
            cursor.execute("SELECT current_user, current_setting('app.tenant_id', true)")
            assert cursor.fetchone() in {(rls.APP_ROLE, ""), (rls.APP_ROLE, None)}
            cursor.execute("SELECT count(*) FROM crm_activities")
            assert cursor.fetchone()[0] == 0
            cursor.execute("SELECT count(*) FROM activity_feed")
            assert cursor.fetchone()[0] == 0
        with connection.cursor() as cursor:  # the test harness (a superuser) sees all 5: there are rows
            cursor.execute("SELECT count(*) FROM crm_activities")
            assert cursor.fetchone()[0] == 5

    # --- writes and read-your-writes ----------------------------------------------------------------------

    def test_a_post_and_the_pages_after_it_read_the_primary(self, replica, feed, admin_member, client_for):
        client = client_for(admin_member)
        with CaptureQueriesContext(replica) as during_post:
            response = client.post(reverse("activities:saved-view-create"), {"name": "Mine", "query": ""})
        assert response.status_code == 302
        assert during_post.captured_queries == []
        assert PIN_COOKIE in response.cookies
        assert response.cookies[PIN_COOKIE]["max-age"] == django_settings.DATABASE_REPLICA_PIN_SECONDS
        assert response.cookies[PIN_COOKIE]["httponly"]

        # The redirect target: the user just wrote, so it reads the primary, and shows the new view.
        response, primary, copy = _get(client, response["Location"])
        assert "Mine" in response.content.decode()
        assert copy == ""
        assert "activity_feed" in primary and "activities_savedview" in primary

        # Once the pin is older than DATABASE_REPLICA_PIN_SECONDS the grid reads the replica again.
        client.cookies[PIN_COOKIE] = str(int(time.time()) - django_settings.DATABASE_REPLICA_PIN_SECONDS - 1)
        response, primary, copy = _get(client, reverse("activities:grid"))
        assert "Mine" in response.content.decode()
        assert "activity_feed" in copy and "activities_savedview" in copy
        assert "activity_feed" not in primary
        # A cookie that is not a time pins nothing.
        client.cookies[PIN_COOKIE] = "soon"
        assert "activity_feed" in _get(client, reverse("activities:grid"))[2]

    def test_a_write_inside_a_replica_view_sends_the_reads_after_it_to_the_primary(
        self, replica, feed, agent_member, client_for
    ):
        with CaptureQueriesContext(replica) as copy:
            data = client_for(agent_member).get("/replica-probe/write/").json()
        assert (data["before"], data["after"]) == (REPLICA, "default")
        # Read-your-writes within the request: the replica could not have shown this row yet.
        assert data["names"] == ["Written in a replica view"]
        assert "crm_contact" not in _sql(copy.captured_queries)
        assert Contact.objects.filter(name="Written in a replica view").count() == 1

    def test_the_router_sends_only_listed_models_to_the_replica(self, replica):
        from django.contrib.auth import get_user_model
        from django.contrib.sessions.models import Session

        router = db_router.ReplicaRouter()
        assert router.db_for_read(FeedEntry) == "default"  # no replica view running
        token = db_router._active.set(db_router._Reads())
        try:
            assert router.db_for_read(FeedEntry) == REPLICA
            assert router.db_for_read(SavedView) == REPLICA
            for model in (get_user_model(), Session, Membership, Tenant, ApiKey, Membership.teams.through):
                assert router.db_for_read(model) == "default", model
            assert router.db_for_write(FeedEntry) == "default"
            assert router.db_for_read(FeedEntry) == "default"  # it wrote
        finally:
            db_router._active.reset(token)
        assert router.allow_migrate(REPLICA, "crm") is False
        assert router.allow_migrate("default", "crm") is None

    # --- an unreachable or lost replica --------------------------------------------------------------------

    def test_an_unreachable_replica_falls_back_to_the_primary(
        self, dead_replica, feed, admin_member, client_for, caplog
    ):
        client = client_for(admin_member)
        with (
            caplog.at_level(logging.WARNING, logger="crm.db_router"),
            CaptureQueriesContext(connection) as primary,
        ):
            response = client.get(reverse("activities:grid"))
        assert response.status_code == 200
        assert "Acme Test call 0" in response.content.decode()
        assert "activity_feed" in _sql(primary.captured_queries)
        assert [r.message for r in caplog.records if "read replica unavailable" in r.message]

        # For RETRY_SECONDS the process does not try again: no second warning, the page still answers.
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="crm.db_router"):
            assert client.get(reverse("activities:grid-count")).status_code == 200
            assert client.get(reverse("activities:analytics")).status_code == 200
        assert not [r for r in caplog.records if "read replica unavailable" in r.message]

        # After it, one more try (and a warning, the replica still being down).
        db_router._down_until = 0.0
        with caplog.at_level(logging.WARNING, logger="crm.db_router"):
            assert client.get(reverse("activities:grid")).status_code == 200
        assert [r for r in caplog.records if "read replica unavailable" in r.message]

    def test_a_replica_lost_in_the_middle_of_a_page_is_read_again_from_the_primary(
        self, replica, feed, admin_member, client_for, caplog
    ):
        client = client_for(admin_member)
        client.get(reverse("activities:grid"))  # the replica connection is open
        replica_pid = replica.connection.info.backend_pid

        def kill_before_feed(execute, sql, params, many, context):
            if "activity_feed" in sql:
                # From a connection of its own: the request's acts as the restricted role.
                with psycopg.connect(**_libpq(connection.settings_dict), autocommit=True) as admin:
                    admin.execute("SELECT pg_terminate_backend(%s, 5000)", [replica_pid])
            return execute(sql, params, many, context)

        with (
            caplog.at_level(logging.WARNING, logger="crm.db_router"),
            replica.execute_wrapper(kill_before_feed),
            CaptureQueriesContext(connection) as primary,
        ):
            response = client.get(reverse("activities:grid"))
        assert response.status_code == 200
        assert "Acme Test call 0" in response.content.decode()
        assert "activity_feed" in _sql(primary.captured_queries)
        assert [r for r in caplog.records if "read replica unavailable" in r.message]

    def test_a_replica_lost_after_the_page_was_read_keeps_the_page(
        self, replica, feed, agent_member, client_for, caplog
    ):
        with caplog.at_level(logging.WARNING, logger="crm.db_router"):
            response = client_for(agent_member).get("/replica-probe/lose/")
        assert response.status_code == 200
        data = response.json()
        assert data["alias"] == REPLICA and len(data["names"]) == 2
        assert [r for r in caplog.records if "read replica unavailable" in r.message]
        assert db_router._down_until > time.monotonic()


# --- rls.tenant_transaction(read_only=True) -----------------------------------------------------------


def _read_only_state(**kwargs) -> tuple[str, str]:
    with rls.tenant_transaction(tenant_id=1, user_id=1, **kwargs), connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('transaction_read_only'), current_user")
        state = cursor.fetchone()
        try:
            with transaction.atomic():
                cursor.execute("UPDATE crm_tenant SET name = name")
        except DatabaseError as exc:
            return (*state, str(exc))
        return (*state, "")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("enforce", [True, False])
def test_a_read_only_tenant_transaction_refuses_writes(enforce, settings):
    """On any alias (the middleware's own on the primary has read_only off, unchanged)."""
    settings.DATABASE_RLS_ENFORCE = enforce
    read_only, role, error = _read_only_state(read_only=True)
    assert read_only == "on" and "read-only transaction" in error
    assert role == (rls.APP_ROLE if enforce else connection.settings_dict["USER"])
    read_only, role, error = _read_only_state()
    assert (read_only, error) == ("off", "")


# --- without DATABASE_REPLICA_URL ----------------------------------------------------------------------


def _settings_in_subprocess(**env) -> dict:
    code = (
        "import json, crm.settings as s;"
        "print(json.dumps({'aliases': sorted(s.DATABASES), 'routers': s.DATABASE_ROUTERS,"
        " 'replica': s.DATABASES.get('replica'), 'default': s.DATABASES['default']}))"
    )
    environ = {k: v for k, v in os.environ.items() if k != "DATABASE_REPLICA_URL"}
    environ.update(env)
    out = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], cwd=REPO, env=environ, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def test_settings_without_a_replica_url_have_one_database_and_no_router():
    data = _settings_in_subprocess()
    assert data["aliases"] == ["default"] and data["routers"] == [] and data["replica"] is None


def test_settings_with_a_replica_url_add_the_alias_with_the_primary_options():
    data = _settings_in_subprocess(DATABASE_REPLICA_URL="postgres://reader:pw@replica.example:5433/crm")
    replica, default = data["replica"], data["default"]
    assert data["aliases"] == ["default", "replica"]
    assert data["routers"] == ["crm.db_router.ReplicaRouter"]
    assert (replica["HOST"], replica["PORT"], replica["USER"]) == ("replica.example", 5433, "reader")
    assert replica["CONN_HEALTH_CHECKS"] is True and replica["CONN_MAX_AGE"] == default["CONN_MAX_AGE"]
    assert replica["OPTIONS"]["options"].startswith(default["OPTIONS"]["options"])  # jit off too
    assert "-c default_transaction_read_only=on" in replica["OPTIONS"]["options"]
    assert f"-c role={rls.APP_ROLE}" in replica["OPTIONS"]["options"]
    assert replica["OPTIONS"]["application_name"] == "replica"
    assert replica["TEST"] == {"MIRROR": "default"}


@pytest.mark.django_db
def test_without_a_replica_everything_reads_and_writes_the_primary(feed, admin_member, client_for):
    assert REPLICA not in django_settings.DATABASES and not db_router.configured()
    client = client_for(admin_member)
    with CaptureQueriesContext(connection) as primary:
        response = client.get(reverse("activities:grid"))
    assert "activity_feed" in _sql(primary.captured_queries)
    assert "Acme Test call 0" in response.content.decode()
    assert db_router.read_alias(FeedEntry) == "default"
    response = client.post(reverse("activities:saved-view-create"), {"name": "Mine", "query": ""})
    assert response.status_code == 302 and PIN_COOKIE not in response.cookies
    assert client.get("/replica-probe/").json()["alias"] == "default"

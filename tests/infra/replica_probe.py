"""Run by tests/infra/test_replica_standby.py in a process of its own, with DATABASE_URL a private primary
and DATABASE_REPLICA_URL its streaming standby: ``python -m tests.infra.replica_probe PHASE``. Prints one
JSON object on its last line.

- ``setup``: two tenants with activities (the primary's owner writes them, as seed commands do), waits
  until the standby has replayed them and reports the replay lag of a few commits;
- ``pages``: the grid, its count, analytics and its CSV as a tenant admin, recording which connection
  served what, the replica connection's own state, and a POST followed by its redirect;
- ``fallback``: the grid with the standby stopped.
"""

import json
import statistics
import sys
import time

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connections  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.urls import reverse  # noqa: E402
from django.utils import timezone  # noqa: E402

from crm import rls  # noqa: E402
from crm.models import Role  # noqa: E402

ADMIN = "replica-admin@acme.test"


def _wait_replayed() -> float:
    """Seconds until the standby has replayed everything the primary committed so far."""
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn()")
        lsn = cursor.fetchone()[0]
    started = time.perf_counter()
    deadline = time.monotonic() + 30
    with connections["replica"].cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [lsn])
            if cursor.fetchone()[0]:
                return time.perf_counter() - started
            time.sleep(0.001)
    raise AssertionError("the standby did not replay within 30 s")


def setup() -> dict:
    from tests.factories import ActivityFactory, ContactFactory, MembershipFactory, TeamFactory, TenantFactory

    with rls.tenant_session(bypass=True):
        acme, other = TenantFactory(name="Acme Replica"), TenantFactory(name="Other Replica")
        acme_team = TeamFactory(tenant=acme)
        for tenant, team, n in ((acme, acme_team, 3), (other, TeamFactory(tenant=other), 4)):
            for i in range(n):
                ActivityFactory(
                    tenant=tenant,
                    team=team,
                    contact=ContactFactory(tenant=tenant, team=team),
                    type="call",
                    direction="inbound",
                    occurred_at=timezone.now(),
                    summary=f"{tenant.name} call {i}",
                )
        MembershipFactory(
            tenant=acme, role=Role.ADMIN, user__username=ADMIN, user__email=ADMIN, teams=[acme_team]
        )
    lags = []
    for _ in range(20):
        with connections["default"].cursor() as cursor:
            cursor.execute("UPDATE crm_tenant SET name = name WHERE id = %s", [acme.pk])
        lags.append(_wait_replayed() * 1000)
    return {"lag_ms_median": statistics.median(lags), "lag_ms_max": max(lags)}


def _client() -> Client:
    client = Client()
    with rls.tenant_session(bypass=True):
        client.force_login(get_user_model().objects.get(username=ADMIN))
    return client


def _get(client: Client, url: str) -> dict:
    copy = []

    def record(execute, sql, params, many, context):
        copy.append(sql)
        return execute(sql, params, many, context)

    # An execute wrapper, not CaptureQueriesContext (which connects first): the standby may be down.
    with (
        CaptureQueriesContext(connections["default"]) as primary,
        connections["replica"].execute_wrapper(record),
    ):
        response = client.get(url)
    body = response.content.decode()
    return {
        "status": response.status_code,
        "primary": "\n".join(q["sql"] for q in primary.captured_queries),
        "replica": "\n".join(copy),
        "own": "Acme Replica call" in body,
        "foreign": "Other Replica" in body,
        "body": body[:2000] if response.status_code != 200 else "",
    }


def pages() -> dict:
    client = _client()
    out = {
        "grid": _get(client, reverse("activities:grid")),
        "count": _get(client, reverse("activities:grid-count")),
        "analytics": _get(client, reverse("activities:analytics") + "?range=7"),
        "csv": _get(client, reverse("activities:analytics-export") + "?range=7&section=volume"),
    }
    out["count"]["text"] = "3 activities" in client.get(reverse("activities:grid-count")).content.decode()
    with connections["replica"].cursor() as cursor:
        cursor.execute(
            "SELECT pg_is_in_recovery(), current_user, current_setting('application_name'),"
            " (SELECT count(*) FROM crm_activities)"
        )
        out["replica_session"] = list(cursor.fetchone())
    response = client.post(reverse("activities:saved-view-create"), {"name": "On the primary", "query": ""})
    out["post_status"] = response.status_code
    out["after_post"] = _get(client, response["Location"])
    out["after_post"]["saved_view_shown"] = (
        "On the primary" in client.get(response["Location"]).content.decode()
    )
    return out


def fallback() -> dict:
    return {"grid": _get(_client(), reverse("activities:grid"))}


if __name__ == "__main__":
    phase = sys.argv[1]
    print(json.dumps({"setup": setup, "pages": pages, "fallback": fallback}[phase]()))

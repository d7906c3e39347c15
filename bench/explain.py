"""`python -m bench.explain` (`make explain`): is every hot query tenant-first, and does partitioning by time
keep the grid and timeline plans? On the bench data (bench/generate.py; BENCH_SCALE as for `make bench`).

1. Renders the hot pages in-process as the largest tenant's admin (the grid with its common filters, a
   timeline window, the contacts grid with badges, the message viewer, the analytics dashboard), captures
   every SQL statement they run, and EXPLAINs each one that reads a tenant table, as the application role
   with the tenant set (as at run time). For every scan of a tenant table it records the node, the index
   and whether the index condition starts from ``tenant_id``; a sequential scan of a tenant table, or an
   index scan without ``tenant_id`` in its condition, is flagged.
2. Copies ``crm_activities`` into a table partitioned by month of ``occurred_at`` with the same tenant-first
   indexes, points a copy of ``activity_feed`` at it, and EXPLAIN ANALYZEs the grid's first page, a deep
   keyset page and the heaviest contact's timeline on both, side by side (plan shape and time).
Writes bench/results/explain.md. The partitioned copy is dropped at the end; EXPLAIN_PARTITIONED=0 skips it
(copying 10 million rows and their indexes takes a while).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from . import generate
from .db import bench_url, db_name, scale_name, setup_django

RESULTS = Path(__file__).resolve().parent / "results"
SKIP = re.compile(r"^\s*(SAVEPOINT|RELEASE|ROLLBACK|SELECT current_setting|SELECT set_config)", re.I)
# The query's own tenant predicate (a literal id), not the policy's tenant_id = (SELECT app_tenant_id()).
TENANT_LITERAL = re.compile(r"tenant_id\)? = '?\d+")
SCANS = {"Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Index Scan", "Bitmap Heap Scan"}


def _walk(node: dict, out: list[dict]) -> None:
    out.append(node)
    for child in node.get("Plans", []):
        _walk(child, out)


# A sequential scan of a table this small (the tenant's teams, a user's memberships) is the planner's
# cheapest plan whatever its indexes; it is reported as such, not as a tenant-first seek nor flagged.
SMALL_TABLE_ROWS = 1000
USER_LITERAL = re.compile(r"user_id\)? = '?\d+")


def _scans(
    plan: dict, tables: set[str], indexes: dict[str, str], sizes: dict[str, float] | None = None
) -> list[dict]:
    nodes: list[dict] = []
    _walk(plan["Plan"], nodes)
    found = []
    for node in nodes:
        kind = node["Node Type"]
        if kind not in SCANS or kind == "Bitmap Heap Scan":
            continue
        relation = node.get("Relation Name") or indexes.get(node.get("Index Name", ""), "")
        if relation not in tables:
            continue
        cond = node.get("Index Cond", "")
        literal = TENANT_LITERAL.search(node.get("Filter", "")) or TENANT_LITERAL.search(
            node.get("Recheck Cond", "")
        )
        if "tenant_id" in cond:
            how = "index"
        elif literal:
            how = "filter"  # e.g. names by primary key after the LIMIT: id = ANY(...) AND tenant_id = t
        elif relation == "crm_membership" and (
            "user_id" in cond or USER_LITERAL.search(node.get("Filter", ""))
        ):
            how = "by user"  # the middleware finds a user's memberships before it knows the tenant
        # reltuples is -1 for a table never analysed: not taken for a small one
        elif kind == "Seq Scan" and 0 <= (sizes or {}).get(relation, -1) < SMALL_TABLE_ROWS:
            how = "small table"
        else:
            how = "policy only"
        found.append(
            {
                "relation": relation,
                "node": kind,
                "index": node.get("Index Name", ""),
                "how": how,
                "rows": node.get("Plan Rows", 0),
            }
        )
    return found


def _shape(plan: dict) -> str:
    """The plan's node types, depth-first, e.g. Limit > Merge Append > Index Scan x2."""
    nodes: list[dict] = []
    _walk(plan["Plan"], nodes)
    names: list[str] = []
    for node in nodes:
        name = node["Node Type"]
        if names and names[-1].split(" x")[0] == name:
            count = int(names[-1].split(" x")[1]) + 1 if " x" in names[-1] else 2
            names[-1] = f"{name} x{count}"
        else:
            names.append(name)
    return " > ".join(names)


def capture(client, url: str, htmx: bool) -> list[str]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url, **headers)
    if response.status_code != 200:
        raise RuntimeError(f"{url}: HTTP {response.status_code}")
    if hasattr(response, "streaming_content"):
        b"".join(response.streaming_content)
    return [q["sql"] for q in ctx.captured_queries if not SKIP.match(q["sql"])]


def explain(sql: str, tenant_id: int, analyze: bool = False) -> dict:
    from django.db import connection

    from crm import rls

    option = "ANALYZE, BUFFERS, " if analyze else ""
    with rls.tenant_transaction(tenant_id=tenant_id), connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN ({option}FORMAT JSON) {sql}")  # noqa: S608 - the app's own captured SQL
        return cursor.fetchone()[0][0]


def hot_pages(tid: int) -> list[tuple[str, str, bool]]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT user_id FROM crm_activities WHERE tenant_id = %s"
            " GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
            [tid],
        )
        agent = cursor.fetchone()[0]
        cursor.execute(
            "SELECT contact_id FROM crm_activities WHERE tenant_id = %s AND contact_id IS NOT NULL "
            "GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
            [tid],
        )
        contact = cursor.fetchone()[0]
        cursor.execute("SELECT max(id) FROM closed_interactions WHERE tenant_id = %s", [tid])
        interaction = cursor.fetchone()[0]
        cursor.execute(
            "SELECT to_char(max(occurred_at) - interval '89 days', 'YYYY-MM-DD'),"
            " to_char(max(occurred_at), 'YYYY-MM-DD') FROM crm_activities WHERE tenant_id = %s",
            [tid],
        )
        first, last = cursor.fetchone()
    return [
        ("grid, first page", "/activities/", False),
        ("grid, type", "/activities/?type=call", True),
        ("grid, agent", f"/activities/?agent={agent}", True),
        ("grid, contact name", "/activities/?contact=Smith", True),
        ("grid, summary search", "/activities/?summary=invoice", True),
        ("grid, lazy count", "/activities/count/", True),
        ("timeline, heaviest contact", f"/contacts/{contact}/timeline/", True),
        ("contacts grid with badges", "/contacts/", False),
        ("message viewer", f"/interactions/{interaction}/messages/", True),
        ("analytics, 90 days", f"/analytics/?range=custom&start={first}&end={last}", False),
        ("export (first batch)", "/activities/export.csv?type=note", False),
    ]


PARTITIONED = "bench_part_activities"
PART_FEED = "bench_part_feed"


def build_partitioned() -> float:
    """crm_activities copied into monthly partitions with the same tenant-first indexes; returns seconds."""
    from django.db import connection

    t0 = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(f"DROP VIEW IF EXISTS {PART_FEED}; DROP TABLE IF EXISTS {PARTITIONED} CASCADE")
        cursor.execute(
            f"CREATE TABLE {PARTITIONED} (LIKE crm_activities INCLUDING DEFAULTS)"
            " PARTITION BY RANGE (occurred_at)"
        )
        cursor.execute(
            "SELECT date_trunc('month', min(occurred_at)), date_trunc('month', max(occurred_at)) "
            "FROM crm_activities"
        )
        lo, hi = cursor.fetchone()
        cursor.execute(
            "SELECT m, m + interval '1 month' FROM generate_series(%s::timestamptz, %s::timestamptz, "
            "interval '1 month') AS m",
            [lo, hi],
        )
        for start, end in cursor.fetchall():
            name = f"{PARTITIONED}_{start:%Y%m}"
            cursor.execute(
                f"CREATE TABLE {name} PARTITION OF {PARTITIONED} FOR VALUES FROM (%s) TO (%s)", [start, end]
            )
        cursor.execute(f"INSERT INTO {PARTITIONED} SELECT * FROM crm_activities")  # noqa: S608
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'crm_activities'"
            " AND indexname NOT LIKE '%%pkey' AND indexdef NOT LIKE 'CREATE UNIQUE%%'"
        )
        for (indexdef,) in cursor.fetchall():
            # Same columns, same predicate; a partitioned index is created on every partition.
            ddl = re.sub(r"INDEX \S+ ON (ONLY )?\S*crm_activities", f"INDEX ON {PARTITIONED}", indexdef)
            cursor.execute(ddl)
        cursor.execute("SELECT pg_get_viewdef('activity_feed'::regclass)")
        viewdef = cursor.fetchone()[0]
        cursor.execute(
            f"CREATE VIEW {PART_FEED} WITH (security_invoker = true) AS "
            + re.sub(r"\bcrm_activities\b", PARTITIONED, viewdef)
        )
        cursor.execute(f"ANALYZE {PARTITIONED}")
        cursor.execute(f"SELECT count(*) FROM pg_inherits WHERE inhparent = '{PARTITIONED}'::regclass")
        partitions = cursor.fetchone()[0]
    print(f"partitioned copy: {partitions} monthly partitions", flush=True)
    return time.monotonic() - t0


def drop_partitioned() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"DROP VIEW IF EXISTS {PART_FEED}; DROP TABLE IF EXISTS {PARTITIONED} CASCADE")


def main() -> None:
    generate.main([])
    setup_django()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from crm import rls
    from crm.models import Tenant

    with rls.bypass():  # deliberately cross-tenant: the benchmark's own set-up
        tenant = Tenant.objects.get(slug="bench-0")
    admin = get_user_model().objects.get(email="admin@bench0.test")
    client = Client()
    client.force_login(admin)
    tid = tenant.pk
    tables = set(rls.tenant_tables()) | set(rls.INVOKER_VIEWS)
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, tablename FROM pg_indexes WHERE schemaname = current_schema()")
        indexes = dict(cursor.fetchall())
        cursor.execute(
            "SELECT relname, reltuples FROM pg_class WHERE relkind = 'r'"
            " AND relnamespace = current_schema()::regnamespace"
        )
        sizes = dict(cursor.fetchall())

    lines = [
        f"# EXPLAIN of the hot pages ({scale_name()}, database {db_name(bench_url())}, tenant {tid})",
        "",
        "Every statement the page runs that reads a tenant table, EXPLAINed as the application role with the "
        "tenant set. Tenant restriction: `index` = `tenant_id` is in the index condition (every index "
        "starts with it); `filter` = the query's own `tenant_id = <id>` filters a primary-key lookup "
        "(names fetched for the rows shown, after the LIMIT); `by user` = memberships found by user before "
        "the tenant is known; `small table` = a sequential scan of a table under "
        f"{SMALL_TABLE_ROWS:,} rows (the planner's cheapest plan there); `policy only` = nothing but the "
        "row-level-security policy restricts the scan (flagged).",
        "",
        "| page | statement | table | scan | index | tenant restriction | est. rows |",
        "|---|---|---|---|---|---|---|",
    ]
    flagged = 0
    captured: dict[str, list[str]] = {}
    flagged_sql: dict[tuple[str, int], str] = {}
    for name, url, htmx in hot_pages(tid):
        try:
            statements = capture(client, url, htmx)
        except Exception as exc:  # noqa: BLE001 - reported, the other pages still run
            lines.append(f"| {name} | - | - | failed: {str(exc).splitlines()[0][:80]} | - | - | - |")
            flagged += 1
            continue
        captured[name] = statements
        for n, sql in enumerate(statements, 1):
            if not any(re.search(rf'"?\b{re.escape(t)}\b"?', sql) for t in tables):
                continue
            for scan in _scans(explain(sql, tid), tables, indexes, sizes):
                bad = scan["how"] == "policy only"
                flagged += bad
                if bad:
                    flagged_sql[(name, n)] = " ".join(sql.split())
                how = f"**{scan['how']}**" if bad else scan["how"]
                lines.append(
                    f"| {name} | {n} | {scan['relation']} | {scan['node']} | {scan['index'] or '-'} | "
                    f"{how} | {scan['rows']} |"
                )
    lines += ["", f"Scans restricted by the policy only: {flagged}.", ""]
    if flagged_sql:
        lines += ["Statements with such scans:", ""]
        lines += [f"- {name} #{n}: `{sql[:160]}`" for (name, n), sql in sorted(flagged_sql.items())]
        lines.append("")
    print(f"hot queries explained; scans restricted by the policy only: {flagged}", flush=True)

    if os.environ.get("EXPLAIN_PARTITIONED", "1") == "0":
        _finish(lines, flagged)
        return
    seconds = build_partitioned()
    try:
        lines += [
            "## Partitioning crm_activities by month",
            "",
            f"A copy of `crm_activities` partitioned by month of `occurred_at`, with the same tenant-first "
            f"indexes on every partition, and a copy of `activity_feed` over it (built in {seconds:.0f} s). "
            "The same statements the pages ran, EXPLAIN ANALYZEd on both (one run each, warm cache):",
            "",
            "| query | table | plan | ms |",
            "|---|---|---|---|",
        ]
        probes = {
            "grid, first page": captured["grid, first page"],
            "grid, agent": captured["grid, agent"],
            "timeline, heaviest contact": captured["timeline, heaviest contact"],
        }
        for name, statements in probes.items():
            feed_sql = [s for s in statements if "activity_feed" in s and "LIMIT" in s.upper()]
            if not feed_sql:
                continue
            sql = feed_sql[0]
            for label, text in (
                ("plain", sql),
                ("partitioned", re.sub(r"\bactivity_feed\b", PART_FEED, sql)),
            ):
                explain(text, tid, analyze=True)  # warm
                plan = explain(text, tid, analyze=True)
                lines.append(f"| {name} | {label} | {_shape(plan)} | {plan['Execution Time']:.2f} |")
    finally:
        drop_partitioned()
    _finish(lines, flagged)


def _finish(lines: list[str], flagged: int) -> None:
    report = "\n".join(lines) + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "explain.md").write_text(report)
    print(report)
    if flagged:
        raise SystemExit(f"{flagged} scans of tenant tables are restricted by the policy only")


if __name__ == "__main__":
    main()

"""`make load`: the sustained request rate of the app served as in production, on the benchmark data.

    BENCH_SCALE=10m|1m  LOAD_STEPS=4,8,16  LOAD_SECONDS=60  LOAD_WORKERS=3  python -m bench.load

1. The bench data (bench/generate.py; reused when loaded) plus what the scenario needs: a channel signing
   secret for the two tenants whose users take part, and per user a sample of visible contacts and
   interactions.
2. gunicorn (``crm.wsgi``, LOAD_WORKERS sync workers, DEBUG off, row-level security on) on a free loopback
   port, against the bench database.
3. locust, headless, once per step of LOAD_STEPS concurrent users for LOAD_SECONDS each (bench/locustfile.py:
   grid with filters, timeline windows, contacts grid with badges, message viewer, manual logging, signed
   channel events). Closed loops without think time: the rate is what the server sustains.
4. The report (bench/results/load.md): per step the request rate, p50/p95/max and errors, the highest rate
   at p95 <= 200 ms with no error, and the isolation check: every contact link shown to a user in the
   sampled responses belongs to that user's tenant.
Only loopback traffic; every step is bounded in time; gunicorn is stopped at the end.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess  # nosec B404  # starts gunicorn and locust with fixed argv
import sys
import tempfile
import time
from pathlib import Path

from . import generate
from .db import bench_url, db_name, scale_name, setup_django

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
P95_TARGET_MS = 200.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not listen on {port} within {timeout:.0f} s")


def prepare() -> dict:
    """The admins of two tenants (largest and second) with samples of their tenant's contacts and
    interactions. Admins see their whole tenant, so every sampled id is one they may open; the bench data
    gives managers and agents no contacts of their own teams to sample."""
    from django.db import connection

    from contactcenter import services as cc_services
    from crm import rls
    from crm.models import Membership, Role, Tenant

    with rls.bypass():  # deliberately cross-tenant: the benchmark's own set-up
        tenants = list(Tenant.objects.filter(slug__startswith="bench").order_by("id")[:2])
        identities = []
        for tenant in tenants:
            row, secret = cc_services.channel_secret_create(tenant=tenant, label="load test")
            members = list(Membership.objects.filter(tenant=tenant, role=Role.ADMIN).select_related("user"))
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT contact_id FROM crm_activities WHERE tenant_id = %s AND contact_id IS NOT NULL "
                    "ORDER BY occurred_at DESC, id DESC LIMIT 400",
                    [tenant.pk],
                )
                contacts = sorted({r[0] for r in cursor.fetchall()})
                cursor.execute(
                    "SELECT name FROM crm_contact WHERE tenant_id = %s ORDER BY id LIMIT 20", [tenant.pk]
                )
                words = sorted({r[0].split()[-1] for r in cursor.fetchall() if r[0]})
                cursor.execute(
                    "SELECT id FROM closed_interactions WHERE tenant_id = %s"
                    " ORDER BY closed_at DESC LIMIT 200",
                    [tenant.pk],
                )
                interactions = [r[0] for r in cursor.fetchall()]
                cursor.execute(
                    "SELECT user_id FROM crm_membership WHERE tenant_id = %s AND is_active"
                    " ORDER BY id LIMIT 10",
                    [tenant.pk],
                )
                agents = [r[0] for r in cursor.fetchall()]
                cursor.execute(
                    "SELECT to_char(max(occurred_at) - interval '30 days', 'YYYY-MM-DD'),"
                    " to_char(max(occurred_at), 'YYYY-MM-DD') FROM crm_activities WHERE tenant_id = %s",
                    [tenant.pk],
                )
                month = list(cursor.fetchone())
            for member in members:
                identities.append(
                    {
                        "email": member.user.email,
                        "tenant_id": tenant.pk,
                        "contacts": contacts,
                        "interactions": interactions,
                        "agents": agents,
                        "contact_words": words or ["Smith"],
                        "month": month,
                        "key_id": row.key_id,
                        "secret": secret,
                    }
                )
    return {"identities": identities, "password": "bench", "summary_words": ["invoice", "renewal", "refund"]}


def run_step(users: int, seconds: int, host: str, env: dict, out: Path) -> dict:
    prefix = out / f"step{users}"
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(ROOT / "bench" / "locustfile.py"),
        "--headless",
        "--only-summary",
        "-u",
        str(users),
        "-r",
        str(users),
        "-t",
        f"{seconds}s",
        "--stop-timeout",
        "10",
        "--host",
        host,
        "--csv",
        str(prefix),
        "--exit-code-on-error",
        "0",
    ]
    subprocess.run(cmd, env=env, check=True, timeout=seconds + 120)  # noqa: S603  # nosec B603  # fixed argv
    with open(f"{prefix}_stats.csv") as f:
        rows = list(csv.DictReader(f))
    per_name = {r["Name"]: r for r in rows}
    total = per_name["Aggregated"]
    return {
        "users": users,
        "requests": int(total["Request Count"]),
        "failures": int(total["Failure Count"]),
        "rps": float(total["Requests/s"]),
        "p50": float(total["50%"]),
        "p95": float(total["95%"]),
        "max": float(total["Max Response Time"]),
        "names": {
            n: (int(r["Request Count"]), float(r["50%"]), float(r["95%"])) for n, r in per_name.items()
        },
    }


def isolation_check(seen_path: Path) -> tuple[int, int]:
    """(contact links checked, links of another tenant)."""
    from django.db import connection

    from crm import rls

    pairs: set[tuple[int, int]] = set()
    if seen_path.exists():
        for line in seen_path.read_text().splitlines():
            tenant_id, contact_id = line.split()
            pairs.add((int(tenant_id), int(contact_id)))
    if not pairs:
        return 0, 0
    with rls.bypass(), connection.cursor() as cursor:  # deliberately cross-tenant: the check itself
        cursor.execute(
            "SELECT count(*) FROM unnest(%s::bigint[], %s::bigint[]) AS s(tenant_id, contact_id) "
            "JOIN crm_contact c ON c.id = s.contact_id WHERE c.tenant_id <> s.tenant_id",
            [[p[0] for p in pairs], [p[1] for p in pairs]],
        )
        return len(pairs), cursor.fetchone()[0]


def main() -> None:
    generate.main([])
    setup_django()
    config = prepare()
    steps = [int(s) for s in os.environ.get("LOAD_STEPS", "4,8,16").split(",")]
    seconds = int(os.environ.get("LOAD_SECONDS", "60"))
    workers = os.environ.get("LOAD_WORKERS", "3")
    out = Path(tempfile.mkdtemp(prefix="crm-load-"))
    config_path = out / "config.json"
    config_path.write_text(json.dumps(config))
    seen_path = out / "seen.txt"
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": bench_url(),
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
        "LOAD_CONFIG": str(config_path),
        "LOAD_SEEN": str(seen_path),
    }
    env.pop("REDIS_URL", None)  # tasks in-process: the load measures the web tier and the database
    server = subprocess.Popen(  # noqa: S603  # nosec B603  # our interpreter, fixed argv
        [sys.executable, "-m", "gunicorn", "crm.wsgi", "-b", f"127.0.0.1:{port}", "-w", workers, "-t", "60"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    results = []
    try:
        _wait_for_port(port)
        for users in steps:
            print(f"load: {users} users for {seconds} s ...", flush=True)
            results.append(run_step(users, seconds, f"http://127.0.0.1:{port}", env, out))
            r = results[-1]
            print(
                f"  {r['rps']:.1f} req/s, p50 {r['p50']:.0f} ms, p95 {r['p95']:.0f} ms, "
                f"{r['failures']} failures of {r['requests']}",
                flush=True,
            )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    checked, leaked = isolation_check(seen_path)
    report = _markdown(results, checked, leaked, workers, seconds)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "load.md").write_text(report)
    print(report)
    if leaked:
        raise SystemExit(f"{leaked} contact links of another tenant were shown")


def _markdown(results: list[dict], checked: int, leaked: int, workers: str, seconds: int) -> str:
    ok = [r for r in results if r["p95"] <= P95_TARGET_MS and r["failures"] == 0]
    best = max(ok, key=lambda r: r["rps"]) if ok else None
    lines = [
        f"# Load ({scale_name()}, database {db_name(bench_url())}, "
        f"gunicorn {workers} workers, {seconds} s a step)",
        "",
        "| users | req/s | p50 ms | p95 ms | max ms | errors |",
        "|---|---|---|---|---|---|",
        *(
            f"| {r['users']} | {r['rps']:.1f} | {r['p50']:.0f} | {r['p95']:.0f} | {r['max']:.0f} | "
            f"{r['failures']} / {r['requests']} |"
            for r in results
        ),
        "",
        (
            f"Sustained at p95 <= {P95_TARGET_MS:.0f} ms with no error: **{best['rps']:.1f} req/s** "
            f"({best['users']} users)."
            if best
            else f"No step held p95 <= {P95_TARGET_MS:.0f} ms with no error."
        ),
        f"Isolation: {checked} (user tenant, contact) links sampled, {leaked} of another tenant.",
        "",
        "Per request kind at the last step (count, p50 / p95 ms):",
        "",
        *(
            f"- {name}: {n}, {p50:.0f} / {p95:.0f}"
            for name, (n, p50, p95) in sorted((results[-1]["names"] if results else {}).items())
            if name != "Aggregated"
        ),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

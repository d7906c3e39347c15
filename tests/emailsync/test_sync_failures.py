"""Failures with real processes: a worker SIGKILLed mid-batch, a connection cut mid-fetch, two workers
racing for one mailbox, and the Celery task path through a real worker and Redis."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from django.db import connection, connections
from django.utils import timezone

from activities.models import Activity
from crm.devtools.services import with_database_name
from emailsync import services
from emailsync.models import EmailLocation, IncomingEmail, Mailbox, MailboxFolder

from .conftest import make_raw

pytestmark = [pytest.mark.imap, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


def _counts(tenant):
    return (
        IncomingEmail.objects.for_tenant(tenant).count(),
        EmailLocation.objects.for_tenant(tenant).count(),
        Activity.objects.for_tenant(tenant).count(),
    )


def test_worker_sigkilled_mid_batch_then_retried_imports_each_message_once(
    mail_env, customer, tenant, tmp_path
):
    """A worker killed after some batches committed: the retry resumes from the committed position
    and nothing is duplicated (zammad/zammad#78 re-imported processed mail after an interrupted fetch)."""
    env = mail_env()
    for i in range(30):
        env.append(make_raw(subject=f"m{i}"))
    script = tmp_path / "sync_slowly.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys, time, django
        django.setup()
        from django.conf import settings
        settings.EMAILSYNC_BATCH_SIZE = 5
        from emailsync.services import sync_mailbox

        def hook(chunk):
            print("batch", chunk[-1], flush=True)
            time.sleep(0.4)

        sync_mailbox({env.mailbox.pk}, batch_hook=hook)
        print("done", flush=True)
        """)
    )
    env_vars = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="crm.settings",
        DATABASE_URL=with_database_name(os.environ["DATABASE_URL"], connection.settings_dict["NAME"]),
        PYTHONPATH=str(ROOT),
        EMAILSYNC_ALLOW_PRIVATE_HOSTS="1",
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=ROOT,
        env=env_vars,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        seen = 0
        while seen < 2:
            line = proc.stdout.readline().decode()
            assert line, "sync process ended early"
            seen += line.startswith("batch")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    committed = IncomingEmail.objects.for_tenant(tenant).count()
    assert 10 <= committed < 30
    # The dead worker still holds the lease: a retry waits for it to expire instead of running twice.
    assert services.sync_mailbox(env.mailbox.pk).status == "busy"
    Mailbox.objects.filter(pk=env.mailbox.pk).update(lease_until=timezone.now())

    assert env.sync_all() == 30 - committed
    assert _counts(tenant) == (30, 30, 30)


class CuttingProxy:
    """TCP proxy to Dovecot that drops the connection after `limit` bytes from the server."""

    def __init__(self, target_port: int, limit: int | None):
        self.limit = limit
        self.target_port = target_port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.port = self.sock.getsockname()[1]
        self.cuts = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pipe, args=(client, upstream, None), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, self.limit), daemon=True).start()

    def _pipe(self, src, dst, limit):
        sent = 0
        try:
            while True:
                data = src.recv(4096)
                if not data:
                    break
                if limit is not None and sent + len(data) > limit:
                    dst.sendall(data[: limit - sent])
                    self.cuts += 1
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def close(self):
        self.sock.close()


def test_connection_cut_mid_fetch_is_retried_without_loss_or_duplicates(mail_env, customer, tenant, dovecot):
    """The server connection dies in the middle of a body FETCH: the batch rolls back, the mailbox
    backs off, and the next run imports everything once (hermes-agent PR #85113 lost a partial batch)."""
    env = mail_env()
    for i in range(20):
        env.append(make_raw(subject=f"m{i}", body="y" * 3000 + "\n"))
    proxy = CuttingProxy(dovecot.port, limit=30_000)
    Mailbox.objects.filter(pk=env.mailbox.pk).update(port=proxy.port)
    try:
        result = env.sync()
    finally:
        proxy.close()

    assert result.status == "error" and proxy.cuts == 1
    env.mailbox.refresh_from_db()
    assert env.mailbox.status == "error" and env.mailbox.next_sync_at > timezone.now()
    assert MailboxFolder.objects.get(mailbox=env.mailbox, name="INBOX").last_uid == 0
    assert IncomingEmail.objects.for_tenant(tenant).count() == 0

    Mailbox.objects.filter(pk=env.mailbox.pk).update(port=dovecot.port)
    assert env.sync_all() == 20
    assert _counts(tenant) == (20, 20, 20)


def test_two_workers_racing_for_one_mailbox_run_it_once(mail_env, customer, tenant):
    """Two syncs of one mailbox started together: one runs, the other returns at once (odoo#7380,
    tpitale/mail_room#46: N pollers processed each message N times)."""
    env = mail_env()
    for i in range(15):
        env.append(make_raw(subject=f"m{i}"))
    barrier = threading.Barrier(2)
    results = []

    def worker():
        try:
            barrier.wait()
            results.append(services.sync_mailbox(env.mailbox.pk))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    assert sorted(r.status for r in results) == ["busy", "ok"]
    assert _counts(tenant) == (15, 15, 15)


@pytest.mark.celery
def test_repeated_sync_now_through_a_real_worker_imports_once(mail_env, customer, tenant, celery_real):
    """Many "Sync now" clicks and a beat fan-out through Redis to a real Celery worker: every message
    imported exactly once, the lease makes the extra tasks no-ops."""
    from emailsync.tasks import dispatch_due_mailboxes, sync_mailbox_task

    env = mail_env()
    for i in range(12):
        env.append(make_raw(subject=f"m{i}"))
    Mailbox.objects.filter(pk=env.mailbox.pk).update(next_sync_at=timezone.now())

    for _ in range(4):
        sync_mailbox_task.delay(env.mailbox.pk)
    dispatch_due_mailboxes.delay()

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and IncomingEmail.objects.for_tenant(tenant).count() < 12:
        time.sleep(0.3)
    time.sleep(2)  # let the remaining queued tasks run too
    assert _counts(tenant) == (12, 12, 12)
    env.mailbox.refresh_from_db()
    assert env.mailbox.messages_imported == 12 and env.mailbox.status == "active"

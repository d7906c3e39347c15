"""Per-queue Celery routing (issue 10): mailbox syncs go to `sync`, outgoing mail to `mail`, everything else
to `default` (crm/settings.py), so each kind can get workers of its own.

The Redis tests use queue names unique to the test (through the CELERY_*_QUEUE variables, as a deployment
would rename them) on the shared Redis, and delete them afterwards; nothing touches the real `sync`,
`mail` or `default` queues.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.db import connections
from django.utils import timezone

from crm.devtools.services import free_port, stop_process, with_database_name
from emailsync.models import Mailbox, OutgoingEmail, SmtpSettings
from tests.factories import ContactFactory, MailboxFactory
from tests.plugins.services import (
    _purge_queue,
    _require_redis,
    _set_eager,
    queue_env,
    queues_named,
    start_celery_worker,
)

ROOT = Path(__file__).resolve().parents[2]
SYNC = "emailsync.tasks.sync_mailbox_task"
SEND = "emailsync.tasks.send_outgoing_email_task"
# Every task of the project and where it has to go; a new task fails the first test until it is listed.
EXPECTED_QUEUE = {
    SYNC: "sync",
    SEND: "mail",
    "emailsync.tasks.dispatch_due_mailboxes": "default",
    "emailsync.tasks.redispatch_queued_outgoing": "default",
    "activities.tasks.analytics_fold": "default",
    "crm.tasks.ping": "default",
}

ROUTING_REPORT = """
import json, django
django.setup()
from django.conf import settings
from crm.celery import app
app.loader.import_default_modules()
route = lambda name: app.amqp.router.route({}, name)["queue"].name
print(json.dumps({
    "eager": app.conf.task_always_eager,
    "broker": app.conf.broker_url.split(":", 1)[0],
    "routes": {name: route(name) for name in app.tasks if name.split(".")[0] in ("crm", "activities",
               "contactcenter", "emailsync")},
    "beat": {entry["task"]: route(entry["task"]) for entry in settings.CELERY_BEAT_SCHEDULE.values()},
    "consume_without_q": sorted(app.amqp.queues.consume_from),
}))
"""


def _python(code: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - this interpreter and a constant program
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def _clean_env(**extra: str) -> dict[str, str]:
    """This environment without Redis, the session's queue names or the test database override: a
    process as `make run` or a deployment starts it, plus ``extra``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("REDIS_URL", "TEST_DATABASE_NAME", "DJANGO_ALLOW_ASYNC_UNSAFE")
        and not (key.startswith("CELERY_") and key.endswith("_QUEUE"))
    }
    env.update(DJANGO_SETTINGS_MODULE="crm.settings", PYTHONUNBUFFERED="1", **extra)
    return env


def _report(env: dict[str, str]) -> dict:
    done = _python(ROUTING_REPORT, env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _received(worker) -> set[str]:
    """The names of the tasks a worker received (its log's "Task <name>[<id>] received" lines)."""
    return set(re.findall(r"Task (\S+)\[[0-9a-f-]+\] received", worker.log_text()))


def _unique_names() -> dict[str, str]:
    base = f"crm-routing-{uuid.uuid4().hex[:8]}"
    return {kind: f"{base}-{kind}" for kind in ("default", "sync", "mail")}


def test_settings_route_syncs_to_sync_mail_to_mail_and_the_rest_to_default():
    """Given the settings as deployed (no queue variables), each task resolves to its queue, the beat
    entries all go to `default`, and a worker started without -Q consumes all three."""
    report = _report(_clean_env())

    assert report["routes"] == EXPECTED_QUEUE
    assert set(report["beat"].values()) == {"default"}, report["beat"]
    assert report["consume_without_q"] == ["default", "mail", "sync"]


def test_queue_names_come_from_the_environment():
    report = _report(_clean_env(CELERY_SYNC_QUEUE="crm-sync", CELERY_MAIL_QUEUE="crm-mail"))

    assert report["routes"][SYNC] == "crm-sync"
    assert report["routes"][SEND] == "crm-mail"
    assert report["routes"]["crm.tasks.ping"] == "default"
    assert report["consume_without_q"] == ["crm-mail", "crm-sync", "default"]


def test_the_test_session_routes_every_kind_to_private_queues():
    """The plugin keeps the routes of the settings but renames every queue (so a session's tasks never
    reach the shared queues), and passes the names on to the processes it starts."""
    from crm.celery import app
    from tests.plugins.services import _queue_names

    names = _queue_names()
    for task, kind in EXPECTED_QUEUE.items():
        assert app.amqp.router.route({}, task)["queue"].name == names[kind]
    assert set(names.values()).isdisjoint({"default", "sync", "mail", "celery"})
    assert all(os.environ[f"CELERY_{kind.upper()}_QUEUE"] == name for kind, name in names.items())


@pytest.mark.celery
def test_published_tasks_land_in_the_redis_list_of_their_queue():
    """Given a process publishing as a web server does (the settings' routes, names from the environment),
    each message is in the Redis list of its own queue and nowhere else."""
    redis_url = _require_redis()
    import redis

    names = _unique_names()
    publish = """
import django
django.setup()
from activities.tasks import analytics_fold
from crm.tasks import ping
from emailsync.services import enqueue
from emailsync.tasks import dispatch_due_mailboxes, send_outgoing_email_task, sync_mailbox_task
assert enqueue(sync_mailbox_task, 101) and enqueue(send_outgoing_email_task, 202)
ping.delay(); analytics_fold.delay(); dispatch_due_mailboxes.delay()
"""
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        done = _python(publish, _clean_env(REDIS_URL=redis_url, **queue_env(names)))
        assert done.returncode == 0, done.stderr

        def tasks_in(queue: str) -> list[tuple[str, str]]:
            messages = [json.loads(raw) for raw in client.lrange(queue, 0, -1)]
            return sorted((m["headers"]["task"], m["headers"]["argsrepr"]) for m in messages)

        assert tasks_in(names["sync"]) == [(SYNC, "(101,)")]
        assert tasks_in(names["mail"]) == [(SEND, "(202,)")]
        assert tasks_in(names["default"]) == [
            ("activities.tasks.analytics_fold", "()"),
            ("crm.tasks.ping", "()"),
            ("emailsync.tasks.dispatch_due_mailboxes", "()"),
        ]
    finally:
        for queue in names.values():
            _purge_queue(redis_url, queue)


@pytest.mark.celery
@pytest.mark.django_db(transaction=True)
def test_a_worker_consumes_only_its_queues(tmp_path, settings, smtp_server, tenant, manager_member, team):
    """Given a worker on `sync` only and one on `default,mail`, when the beat fan-out, a send and a ping
    are published: the fan-out, the send and the ping run on the second worker, the sync the fan-out
    enqueued runs on the first, and neither worker ever receives a task of the other's queues."""
    redis_url = _require_redis()
    names = _unique_names()
    test_db = connections["default"].settings_dict["NAME"]
    SmtpSettings.objects.create(tenant=tenant, host=smtp_server.host, port=smtp_server.port, security="none")
    contact = ContactFactory(tenant=tenant, team=team, emails=["buyer@customer.test"])
    outgoing = OutgoingEmail.objects.create(
        tenant=tenant, author=manager_member.user, contact=contact, to=[contact.email], subject="Offer",
        body="Hi", status="queued", queued_at=timezone.now(),
    )  # fmt: skip
    # Due, on a port nobody listens on: its sync fails fast and records the failure on the row.
    mailbox = MailboxFactory(tenant=tenant, owner=manager_member.user, port=free_port())
    Mailbox.objects.filter(pk=mailbox.pk).update(next_sync_at=timezone.now())
    workers = []
    try:
        common = dict(redis_url=redis_url, test_db=test_db, names=names)
        sync_worker = start_celery_worker(
            queues=names["sync"], log_path=tmp_path / "sync.log", node=f"{names['sync']}-w", **common
        )
        workers.append(sync_worker)
        rest_worker = start_celery_worker(
            queues=f"{names['default']},{names['mail']}", log_path=tmp_path / "rest.log",
            node=f"{names['default']}-w", **common,
        )  # fmt: skip
        workers.append(rest_worker)
        from crm.tasks import ping
        from emailsync.tasks import dispatch_due_mailboxes, send_outgoing_email_task

        _set_eager(settings, False)
        with queues_named(names):
            dispatch = dispatch_due_mailboxes.delay()
            send = send_outgoing_email_task.delay(outgoing.pk)
            pong = ping.delay()

        for task_id in (dispatch.id, send.id, pong.id):
            rest_worker.wait_for_log(rf"\[{task_id}\] succeeded")
        sync_run = sync_worker.wait_for_log(rf"Task {SYNC}\[([0-9a-f-]+)\] succeeded.*'error'")
        smtp_server.wait_for(1)
    finally:
        for worker in workers:
            stop_process(worker.proc, timeout=15)
        for queue in names.values():
            _purge_queue(redis_url, queue)

    assert f"mailbox {mailbox.pk} sync: error" in sync_worker.log_text()
    mailbox.refresh_from_db()
    assert mailbox.failure_count == 1 and mailbox.last_error
    outgoing.refresh_from_db()
    assert outgoing.status == "sent"
    assert len(smtp_server.messages) == 1
    assert _received(sync_worker) == {SYNC}
    assert _received(rest_worker) == {"emailsync.tasks.dispatch_due_mailboxes", SEND, "crm.tasks.ping"}
    assert sync_run.group(1) not in rest_worker.log_text()


@pytest.mark.django_db(transaction=True)
def test_make_run_without_redis_runs_routed_tasks_in_process(smtp_server, tenant, manager_member, team):
    """Given `make run` on a bare machine (no REDIS_URL: eager tasks, an in-memory broker), a routed task
    (the outgoing mail on `mail`) and a default one run in the calling process at once, as before routing."""
    test_db = connections["default"].settings_dict["NAME"]
    SmtpSettings.objects.create(tenant=tenant, host=smtp_server.host, port=smtp_server.port, security="none")
    contact = ContactFactory(tenant=tenant, team=team, emails=["buyer@customer.test"])
    outgoing = OutgoingEmail.objects.create(
        tenant=tenant, author=manager_member.user, contact=contact, to=[contact.email], subject="Offer",
        body="Hi", status="queued", queued_at=timezone.now(),
    )  # fmt: skip
    code = f"""
import django
django.setup()
from crm.celery import app
from crm.tasks import ping
from emailsync.tasks import send_outgoing_email_task
assert app.conf.task_always_eager and app.conf.broker_url == "memory://", app.conf.broker_url
print(send_outgoing_email_task.delay({outgoing.pk}).get(), ping.delay().get())
"""
    env = _clean_env(DATABASE_URL=with_database_name(os.environ["DATABASE_URL"], test_db), CONN_MAX_AGE="0")
    done = _python(code, env)

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["sent", "pong"]
    outgoing.refresh_from_db()
    assert outgoing.status == "sent"
    assert len(smtp_server.wait_for(1)) == 1

"""The operations page for tenant admins (/settings/operations/): mail sync, outbox and workers, with
"Sync now" and "Retry". Admins only; only the tenant's own rows; no secret in an error text."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import redis
from django.conf import settings as django_settings
from django.urls import reverse
from django.utils import timezone

from crm import operations
from crm.celery import app as celery_app
from crm.models import Role
from emailsync.models import Mailbox, MailboxStatus, OutgoingEmail, OutgoingStatus
from tests.factories import MailboxFactory, OutgoingEmailFactory, SmtpSettingsFactory, UserFactory

pytestmark = pytest.mark.django_db

PAGE = "/settings/operations/"


@pytest.fixture(autouse=True)
def _fresh_worker_state():
    operations.clear_worker_cache()
    yield
    operations.clear_worker_cache()


def _outgoing(tenant, status, **kwargs):
    return OutgoingEmailFactory(tenant=tenant, status=status, **kwargs)


def _sync_url(pk):
    return reverse("crm:operations-mailbox-sync", args=[pk])


def _retry_url(pk):
    return reverse("crm:operations-outgoing-retry", args=[pk])


# --- who sees it --------------------------------------------------------------------------------------


def test_the_url_is_the_settings_page():
    assert reverse("crm:operations") == PAGE


def test_admin_sees_the_page_and_the_nav_link(client_for, admin_member):
    client = client_for(admin_member)
    response = client.get(PAGE)
    assert response.status_code == 200
    assert b'data-testid="ops-panel"' in response.content
    assert b'data-testid="nav-operations"' in client.get("/").content


@pytest.mark.parametrize("role", [Role.MANAGER, Role.AGENT])
def test_managers_and_agents_get_403_everywhere(role, client_for, tenant, team, make_member):
    member = make_member(tenant, role, teams=[team], email=True)
    mailbox = MailboxFactory(tenant=tenant, owner=member.user, port=9)
    failed = _outgoing(tenant, OutgoingStatus.FAILED, author=member.user, error="x")
    SmtpSettingsFactory(tenant=tenant)
    client = client_for(member)
    assert client.get(PAGE).status_code == 403
    assert client.get(PAGE, HTTP_HX_REQUEST="true").status_code == 403
    assert client.post(_sync_url(mailbox.pk)).status_code == 403
    assert client.post(_retry_url(failed.pk)).status_code == 403
    failed.refresh_from_db()
    assert failed.status == OutgoingStatus.FAILED
    assert b'data-testid="nav-operations"' not in client.get("/").content


def test_anonymous_is_sent_to_login(client):
    response = client.get(PAGE)
    assert response.status_code == 302 and "/login/" in response["Location"]


# --- what it shows ------------------------------------------------------------------------------------


def test_mailboxes_and_outbox_of_this_tenant_only(
    client_for, admin_member, tenant, other_tenant, team, make_member
):
    # given two mailboxes of the tenant (one synced 10 minutes ago, one failing) and one of another tenant
    now = timezone.now()
    agent = make_member(tenant, Role.AGENT, teams=[team], first_name="Ada", last_name="Agent")
    synced = MailboxFactory(
        tenant=tenant, owner=agent.user, email_address="ada@acme.test",
        last_sync_at=now - timedelta(minutes=10), next_sync_at=now + timedelta(minutes=2),
    )  # fmt: skip
    failing = MailboxFactory(
        tenant=tenant, owner=admin_member.user, email_address="boss@acme.test", status=MailboxStatus.ERROR,
        failure_count=3, last_error="Could not connect to 127.0.0.1:9: connection refused",
        next_sync_at=now - timedelta(seconds=5),
    )  # fmt: skip
    foreign_owner = UserFactory()
    MailboxFactory(tenant=other_tenant, owner=foreign_owner, email_address="spy@other.test", failure_count=7)
    # and outgoing mail: 2 queued (one retrying, the oldest 30 min), 1 failed, 1 sent today, 1 sent 2 days
    # ago, a draft; the other tenant has more of each
    _outgoing(tenant, OutgoingStatus.QUEUED, queued_at=now - timedelta(minutes=30), attempts=1)
    _outgoing(tenant, OutgoingStatus.QUEUED, queued_at=now - timedelta(minutes=1))
    _outgoing(tenant, OutgoingStatus.FAILED, subject="Quote for Acme", error="The mail server refused it")
    _outgoing(tenant, OutgoingStatus.SENT, sent_at=now - timedelta(hours=3))
    _outgoing(tenant, OutgoingStatus.SENT, sent_at=now - timedelta(days=2))
    _outgoing(tenant, OutgoingStatus.DRAFT)
    for status in (OutgoingStatus.QUEUED, OutgoingStatus.FAILED, OutgoingStatus.SENT):
        for _ in range(3):
            _outgoing(
                other_tenant, status, subject="Foreign secret deal", error="foreign failure",
                queued_at=now - timedelta(days=3), sent_at=now,
            )  # fmt: skip

    # when the admin opens the page
    response = client_for(admin_member).get(PAGE)

    # then the tenant's two mailboxes are listed with their state, lag and failures
    assert response.status_code == 200
    state = response.context["ops"]
    rows = {row.mailbox.pk: row for row in state.mailboxes}
    assert set(rows) == {synced.pk, failing.pk}
    assert rows[synced.pk].state == "scheduled"
    assert 595 <= rows[synced.pk].lag_seconds <= 700
    assert rows[failing.pk].state == "due"
    assert rows[failing.pk].lag_seconds is None
    assert state.mailbox_summary.failing == 1
    html = response.content.decode()
    assert "ada@acme.test" in html and "Ada Agent" in html and "boss@acme.test" in html
    assert "10 min" in html and "connection refused" in html
    assert "spy@other.test" not in html
    # and the outbox counts only the tenant's rows
    outbox = state.outbox
    assert (outbox.queued, outbox.retrying, outbox.failed, outbox.sent_24h) == (2, 1, 1, 1)
    assert 29 * 60 <= outbox.oldest_queued_seconds <= 31 * 60
    assert [f.outgoing.subject for f in outbox.failures] == ["Quote for Acme"]
    assert "Quote for Acme" in html and "30 min" in html
    assert "Foreign secret deal" not in html and "foreign failure" not in html
    # and in the tests' eager mode (no broker in use) the page says tasks run in-process
    assert 'data-testid="ops-in-process"' in html


def test_selectors_scope_by_tenant_themselves(tenant, other_tenant):
    """The selectors filter by tenant on their own, not only through row-level security (this test's
    connection is not restricted by it)."""
    MailboxFactory(tenant=tenant, owner=UserFactory(), email_address="mine@acme.test")
    MailboxFactory(tenant=other_tenant, owner=UserFactory(), email_address="theirs@other.test")
    _outgoing(tenant, OutgoingStatus.FAILED, error="mine")
    for status in (OutgoingStatus.QUEUED, OutgoingStatus.FAILED, OutgoingStatus.SENT):
        _outgoing(other_tenant, status, error="theirs", queued_at=timezone.now(), sent_at=timezone.now())
    assert [s.mailbox.email_address for s in operations.mailbox_states(tenant=tenant)] == ["mine@acme.test"]
    outbox = operations.outbox_state(tenant=tenant)
    assert (outbox.queued, outbox.failed, outbox.sent_24h) == (0, 1, 0)
    assert [f.error for f in outbox.failures] == ["mine"]


def test_a_running_and_a_paused_mailbox(client_for, admin_member, tenant):
    now = timezone.now()
    running = MailboxFactory(tenant=tenant, owner=admin_member.user, lease_until=now + timedelta(minutes=4))
    paused = MailboxFactory(
        tenant=tenant, owner=UserFactory(), status=MailboxStatus.NEEDS_ATTENTION, next_sync_at=None
    )
    rows = {r.mailbox.pk: r for r in client_for(admin_member).get(PAGE).context["ops"].mailboxes}
    assert rows[running.pk].state == "running" and rows[running.pk].state_label == "Syncing now"
    assert rows[paused.pk].state == "paused"


def test_htmx_refresh_answers_the_panel_only(client_for, admin_member, tenant):
    MailboxFactory(tenant=tenant, owner=admin_member.user, email_address="me@acme.test")
    response = client_for(admin_member).get(PAGE, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="ops-panel"')
    assert "<html" not in html and "me@acme.test" in html
    assert 'hx-trigger="every 15s"' in html
    assert "HX-Request" in response["Vary"]
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


def test_page_query_count_does_not_grow_with_rows(
    client_for, admin_member, tenant, django_assert_max_num_queries
):
    client = client_for(admin_member)
    SmtpSettingsFactory(tenant=tenant)
    for _ in range(2):
        MailboxFactory(tenant=tenant, owner=UserFactory())
        _outgoing(tenant, OutgoingStatus.FAILED, author=UserFactory(), error="x")
    client.get(PAGE)  # warm (session, membership)
    with django_assert_max_num_queries(20) as few:
        client.get(PAGE)
    for _ in range(8):
        MailboxFactory(tenant=tenant, owner=UserFactory())
        _outgoing(tenant, OutgoingStatus.FAILED, author=UserFactory(), error="x")
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get(PAGE)


# --- secrets in errors --------------------------------------------------------------------------------

MAILBOX_SECRET = "Hunter2-Mailbox-Pw"  # noqa: S105 - a test value
SMTP_SECRET = "Smtp-Secret-77"  # noqa: S105 - a test value
TOKEN = "ya29.a0AfH6SMBx3kLq9vZp2WcT7yRnJd5sQe8uHo1iGf4"  # noqa: S105 - looks like an OAuth2 token


def test_secret_looking_errors_are_not_shown(client_for, admin_member, tenant):
    # given a mailbox whose server echoed the password, a token and a URL with credentials into the error
    mailbox = MailboxFactory(tenant=tenant, owner=admin_member.user)
    mailbox.set_secret(MAILBOX_SECRET)
    mailbox.last_error = (
        f"The server rejected the login for bob@acme.test: LOGIN bob {MAILBOX_SECRET} failed; "
        f"auth=Bearer {TOKEN}; proxy https://bob:pr0xy-pass@proxy.acme.test/ said password=letmein99"
    )
    mailbox.failure_count = 1
    mailbox.save()
    # and a failed email whose SMTP error carries the SMTP password and an API key
    smtp = SmtpSettingsFactory(tenant=tenant)
    smtp.set_secret(SMTP_SECRET)
    smtp.save()
    _outgoing(
        tenant, OutgoingStatus.FAILED, subject="Leaky",
        error=f"Could not send: 535 auth failed for user smtp ({SMTP_SECRET}) api_key: sk_live_51Habc",
    )  # fmt: skip

    # when the admin opens the page (and its htmx refresh)
    client = client_for(admin_member)
    for response in (client.get(PAGE), client.get(PAGE, HTTP_HX_REQUEST="true")):
        html = response.content.decode()
        # then none of the secrets appear, while the explanation around them does
        for secret in (MAILBOX_SECRET, SMTP_SECRET, TOKEN, "pr0xy-pass", "letmein99", "sk_live_51Habc"):
            assert secret not in html
        assert "The server rejected the login for bob@acme.test" in html
        assert "proxy.acme.test" in html and "535 auth failed" in html
        assert "[redacted]" in html


@pytest.mark.parametrize(
    "text, hidden, kept",
    [
        ("password=abc123 refused", "abc123", "refused"),
        ('token: "two words" then', "two words", "then"),
        ("Authorization: Bearer abcdefgh12345678", "abcdefgh12345678", "Authorization"),
        ("imap://user:pw1234@host/INBOX", "pw1234", "host/INBOX"),
        ("lease token 12 is no longer current", None, "lease token 12 is no longer current"),
        ("Could not connect to mail.acme.test:993: timed out", None, "mail.acme.test:993: timed out"),
    ],
)
def test_redact(text, hidden, kept):
    redacted = operations.redact(text)
    if hidden:
        assert hidden not in redacted
    assert kept in redacted


def test_redact_known_secret_only_when_long_enough():
    assert operations.redact("login failed for pw s3cr3t-value", ("s3cr3t-value",)) == (
        "login failed for pw [redacted]"
    )
    assert operations.redact("the mail server", ("mail",)) == "the mail server"


# --- background work: no Redis, Redis unreachable -----------------------------------------------------


def test_queue_names_come_from_the_celery_configuration():
    from kombu import Queue

    conf = celery_app.conf
    saved = (conf.task_queues, conf.task_routes)
    try:
        conf.task_queues = [Queue("mail-sync")]
        conf.task_routes = [{"emailsync.tasks.send_outgoing_email_task": {"queue": "outgoing"}}, {"x": "y"}]
        assert operations.queue_names() == sorted({conf.task_default_queue, "mail-sync", "outgoing"})
        conf.task_routes = {"emailsync.*": {"queue": "sync"}}
        assert "sync" in operations.queue_names()
    finally:
        conf.task_queues, conf.task_routes = saved


def test_without_redis_the_page_says_tasks_run_in_process(client_for, admin_member, settings):
    settings.REDIS_URL = ""
    settings.CELERY_BROKER_URL = "memory://"
    html = client_for(admin_member).get(PAGE).content.decode()
    assert "Tasks run in-process (no REDIS_URL is configured)" in html
    assert 'data-testid="ops-queues"' not in html and 'data-testid="ops-broker-error"' not in html


def test_unreachable_broker_is_reported_without_its_url(client_for, admin_member, settings):
    # given a broker URL (with a password) nothing listens on, and tasks not eager
    url = "redis://:broker-pw-123@127.0.0.1:1/0"
    settings.REDIS_URL = url
    settings.CELERY_BROKER_URL = url
    celery_app.conf.task_always_eager = False  # restored by the _celery_mode fixture
    started = time.monotonic()
    html = client_for(admin_member).get(PAGE).content.decode()
    # then the page answers at once with the reason, not the URL
    assert time.monotonic() - started < 5
    assert 'data-testid="ops-broker-error"' in html and "cannot be reached" in html
    assert "broker-pw-123" not in html


# --- actions ------------------------------------------------------------------------------------------


def test_sync_now_makes_the_mailbox_due_and_queues_it(
    client_for, admin_member, tenant, other_tenant, django_capture_on_commit_callbacks
):
    later = timezone.now() + timedelta(hours=1)
    mailbox = MailboxFactory(tenant=tenant, owner=UserFactory(), port=9, next_sync_at=later)
    foreign = MailboxFactory(tenant=other_tenant, owner=UserFactory(), port=9, next_sync_at=later)
    client = client_for(admin_member)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(_sync_url(mailbox.pk))
    assert response.status_code == 302 and response["Location"] == PAGE
    mailbox.refresh_from_db()
    assert mailbox.next_sync_at <= timezone.now()
    assert len(callbacks) == 1  # the task is published after commit
    assert "queued" in client.get(PAGE).content.decode()

    # the htmx variant answers the refreshed panel with a notice
    response = client.post(_sync_url(mailbox.pk), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert 'data-testid="ops-notice"' in response.content.decode()

    # another tenant's mailbox (and a missing one): 404, the same body, nothing changed
    missing = client.post(_sync_url(999_999_999))
    response = client.post(_sync_url(foreign.pk))
    assert response.status_code == missing.status_code == 404
    assert response.content == missing.content
    foreign.refresh_from_db()
    assert foreign.next_sync_at == later

    # GET is not allowed on an action
    assert client.get(_sync_url(mailbox.pk)).status_code == 405


def test_sync_now_requires_csrf(admin_member, tenant):
    from django.test import Client

    mailbox = MailboxFactory(tenant=tenant, owner=UserFactory(), port=9)
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_member.user)
    assert client.post(_sync_url(mailbox.pk)).status_code == 403


def test_retry_requeues_a_failed_email_once(
    client_for, admin_member, tenant, other_tenant, django_capture_on_commit_callbacks
):
    SmtpSettingsFactory(tenant=tenant)
    failed = _outgoing(
        tenant, OutgoingStatus.FAILED, subject="Offer", error="refused", attempts=6,
        queued_at=timezone.now() - timedelta(days=1),
    )  # fmt: skip
    foreign = _outgoing(other_tenant, OutgoingStatus.FAILED, error="foreign refused")
    client = client_for(admin_member)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(_retry_url(failed.pk), follow=True)
    assert response.status_code == 200
    assert "is queued for sending again" in response.content.decode()
    failed.refresh_from_db()
    assert (failed.status, failed.attempts, failed.error) == (OutgoingStatus.QUEUED, 0, "")
    assert failed.queued_at > timezone.now() - timedelta(minutes=1)
    assert len(callbacks) == 1

    # a second click changes nothing and sends nothing more
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(_retry_url(failed.pk), HTTP_HX_REQUEST="true")
    assert "nothing to retry" in response.content.decode()
    assert len(callbacks) == 0
    assert OutgoingEmail.objects.get(pk=failed.pk).status == OutgoingStatus.QUEUED

    # another tenant's email: 404 like a missing one, untouched
    missing = client.post(_retry_url(999_999_999))
    response = client.post(_retry_url(foreign.pk))
    assert response.status_code == missing.status_code == 404
    assert response.content == missing.content
    foreign.refresh_from_db()
    assert (foreign.status, foreign.error) == (OutgoingStatus.FAILED, "foreign refused")


def test_retry_without_smtp_settings_says_why(client_for, admin_member, tenant):
    failed = _outgoing(tenant, OutgoingStatus.FAILED, error="Outgoing mail is not configured")
    response = client_for(admin_member).post(_retry_url(failed.pk), follow=True)
    assert "Outgoing mail is not configured for this workspace" in response.content.decode()
    failed.refresh_from_db()
    assert failed.status == OutgoingStatus.FAILED


def test_retry_sends_through_the_smtp_server(
    client_for, admin_member, tenant, smtp_server, django_capture_on_commit_callbacks
):
    SmtpSettingsFactory(tenant=tenant, host=smtp_server.host, port=smtp_server.port, security="none")
    failed = _outgoing(tenant, OutgoingStatus.FAILED, subject="Second try", to=["buyer@customer.test"])
    with django_capture_on_commit_callbacks(execute=True):
        client_for(admin_member).post(_retry_url(failed.pk))
    smtp_server.wait_for(1)
    failed.refresh_from_db()
    assert failed.status == OutgoingStatus.SENT


# --- real Redis and Celery ----------------------------------------------------------------------------


@pytest.mark.celery
@pytest.mark.django_db(transaction=True)
def test_workers_queues_and_sync_now_with_a_real_worker(celery_real, client_for, tenant, make_member):
    # given an admin, a mailbox whose server refuses connections, and a queue nobody consumes with one
    # message waiting in it
    admin = make_member(tenant, Role.ADMIN)
    mailbox = MailboxFactory(tenant=tenant, owner=admin.user, port=9, next_sync_at=timezone.now())
    idle = f"{celery_real.queue}-ops-idle"
    previous_routes = celery_app.conf.task_routes
    celery_app.conf.task_routes = {"crm.tests.never_consumed": {"queue": idle}}
    broker = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    try:
        celery_app.send_task("crm.tests.never_consumed", queue=idle)
        client = client_for(admin)

        # when the admin opens the page
        response = client.get(PAGE)
        workers = response.context["ops"].workers

        # then the worker answered the ping and the queues have their lengths
        assert not workers.in_process and workers.broker_ok, workers.broker_error
        assert any(name.startswith(f"{celery_real.queue}@") for name in workers.workers), workers.workers
        lengths = dict(workers.queues)
        assert lengths[idle] == 1
        assert celery_real.queue in lengths  # the default queue (the session's own in tests)
        assert f"{celery_real.queue}@" in response.content.decode()

        # when the admin presses "Sync now": the real worker runs the sync, which fails to connect
        client.post(_sync_url(mailbox.pk))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            mailbox.refresh_from_db()
            if mailbox.failure_count:
                break
            time.sleep(0.2)
        # then the page shows the failure the worker recorded
        assert mailbox.failure_count == 1 and mailbox.status == MailboxStatus.ERROR
        operations.clear_worker_cache()
        html = client.get(PAGE, HTTP_HX_REQUEST="true").content.decode()
        assert "Could not connect to 127.0.0.1:9" in html
        assert Mailbox.objects.get(pk=mailbox.pk).lease_until is None
    finally:
        celery_app.conf.task_routes = previous_routes
        broker.delete(idle, *[f"{idle}\x06\x16{p}" for p in range(10)])
        for key in broker.scan_iter(match="_kombu.binding.*"):
            for member in broker.smembers(key):
                if idle.encode() in member:
                    broker.srem(key, member)

"""Reads of the operations page (``/settings/operations/``, tenant admins): the state of this tenant's
mail sync and outbox, and of the background workers.

Mailboxes and outgoing emails are read through ``for_tenant`` (and row-level security) only: another
tenant's rows never reach the page. The worker and queue figures are the platform's (global counts and
worker names, no tenant data). Error texts are shown through ``redact`` so a server that echoes a
credential into its error message does not put it on the page.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Min, Q
from django.utils import timezone

from crm.crypto import SecretError
from crm.models import Tenant
from emailsync.models import Mailbox, MailboxStatus, OutgoingEmail, OutgoingStatus, SmtpSettings

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 15  # OPERATIONS_REFRESH_SECONDS in settings overrides it
RECENT_FAILURES = 10
WORKER_PING_TIMEOUT = 1.0  # seconds a ping waits for replies (the page waits that long, once per cache)
WORKER_CACHE_SECONDS = 10  # per process: an admin's refreshes do not ping the workers every time
PRIORITY_SEPARATOR = "\x06\x16"  # kombu's Redis transport keeps priorities 1..9 in "<queue>\x06\x16<n>"

# --- redaction ---------------------------------------------------------------------------------------

REDACTED = "[redacted]"
_SECRET_PATTERNS = (
    # user:password@ in a URL
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^\s/@:]+:[^\s/@]+@", re.I), r"\1" + REDACTED + "@"),
    # password=..., token: ..., api_key=..., secret=..., "auth=Bearer ..." (XOAUTH2 strings)
    (
        re.compile(
            r"\b(pass(?:word|wd)?|pwd|secret|token|access[_-]?token|refresh[_-]?token|api[_-]?key|auth)"
            r"(\s*[=:]\s*)(?:bearer\s+)?(\"[^\"]*\"|'[^']*'|[^\s,;&]+)",
            re.I,
        ),
        r"\1\2" + REDACTED,
    ),
    (re.compile(r"\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}", re.I), r"\1 " + REDACTED),
    # long opaque strings: access tokens, base64 blobs (an XOAUTH2 string), keys
    (re.compile(r"[A-Za-z0-9+/_-]{32,}={0,2}"), REDACTED),
)
MIN_KNOWN_SECRET = 6  # shorter stored secrets are not searched for (they would mangle ordinary words)


def redact(text: str, known: tuple[str, ...] = ()) -> str:
    """``text`` without anything that looks like a credential, nor any of the ``known`` secrets."""
    if not text:
        return ""
    for secret in known:
        if secret and len(secret) >= MIN_KNOWN_SECRET:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _secret_of(row) -> tuple[str, ...]:
    try:
        secret = row.get_secret()
    except SecretError:
        return ()
    return (secret,) if secret else ()


# --- mailboxes ---------------------------------------------------------------------------------------


@dataclass
class MailboxState:
    mailbox: Mailbox
    state: str  # running | due | scheduled | paused
    lag_seconds: float | None  # since the last successful sync; None: never synced
    error: str  # redacted

    @property
    def state_label(self) -> str:
        return {
            "running": "Syncing now",
            "due": "Queued",
            "scheduled": "Scheduled",
            "paused": "Paused",
        }[self.state]


def _mailbox_state(mailbox: Mailbox, now: datetime) -> str:
    if mailbox.lease_until is not None and mailbox.lease_until > now:
        return "running"
    if mailbox.status not in (MailboxStatus.ACTIVE, MailboxStatus.ERROR):
        return "paused"  # needs attention or disabled: the fan-out skips it until it is fixed
    if mailbox.next_sync_at is None or mailbox.next_sync_at <= now:
        return "due"
    return "scheduled"


def mailbox_states(*, tenant: Tenant, now: datetime | None = None) -> list[MailboxState]:
    """Every mailbox of the tenant (one query), with its sync state, lag and redacted last error."""
    now = now or timezone.now()
    mailboxes = (
        Mailbox.objects.for_tenant(tenant)
        .select_related("owner")
        .only(
            "id", "tenant_id", "email_address", "status", "last_error", "failure_count", "last_sync_at",
            "next_sync_at", "lease_until", "messages_imported", "secret_encrypted", "created_at",
            "owner__id", "owner__email", "owner__first_name", "owner__last_name",
        )
        .order_by("email_address", "id")
    )  # fmt: skip
    states = []
    for mailbox in mailboxes:
        lag = (now - mailbox.last_sync_at).total_seconds() if mailbox.last_sync_at else None
        error = redact(mailbox.last_error, _secret_of(mailbox)) if mailbox.last_error else ""
        states.append(
            MailboxState(mailbox=mailbox, state=_mailbox_state(mailbox, now), lag_seconds=lag, error=error)
        )
    return states


@dataclass
class MailboxSummary:
    total: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    max_lag_seconds: float | None = None  # the least recently synced active mailbox (as /metrics does)
    failing: int = 0  # mailboxes with consecutive failures


def mailbox_summary(states: list[MailboxState]) -> MailboxSummary:
    summary = MailboxSummary(total=len(states))
    for s in states:
        label = s.mailbox.get_status_display()
        summary.by_status[label] = summary.by_status.get(label, 0) + 1
        if s.mailbox.failure_count:
            summary.failing += 1
        if s.mailbox.status == MailboxStatus.ACTIVE and s.lag_seconds is not None:
            summary.max_lag_seconds = max(summary.max_lag_seconds or 0, s.lag_seconds)
    return summary


# --- outbox ------------------------------------------------------------------------------------------


@dataclass
class OutboxFailure:
    outgoing: OutgoingEmail
    error: str  # redacted


@dataclass
class OutboxState:
    queued: int
    retrying: int  # queued again after a temporary failure (attempts > 0)
    failed: int
    sent_24h: int
    oldest_queued_at: datetime | None
    oldest_queued_seconds: float | None
    failures: list[OutboxFailure]
    smtp_configured: bool


def outbox_state(*, tenant: Tenant, now: datetime | None = None) -> OutboxState:
    """Counts by status (queued, failed, sent in the last 24 h), the oldest queued age and the latest
    failures of the tenant's outgoing emails: one aggregate over queued, failed and recent sent rows."""
    now = now or timezone.now()
    since = now - timedelta(hours=24)
    rows = OutgoingEmail.objects.for_tenant(tenant)
    figures = rows.filter(
        Q(status__in=[OutgoingStatus.QUEUED, OutgoingStatus.FAILED])
        | Q(status=OutgoingStatus.SENT, sent_at__gte=since)
    ).aggregate(
        queued=Count("id", filter=Q(status=OutgoingStatus.QUEUED)),
        retrying=Count("id", filter=Q(status=OutgoingStatus.QUEUED, attempts__gt=0)),
        failed=Count("id", filter=Q(status=OutgoingStatus.FAILED)),
        sent_24h=Count("id", filter=Q(status=OutgoingStatus.SENT)),
        oldest=Min("queued_at", filter=Q(status=OutgoingStatus.QUEUED)),
    )
    smtp = SmtpSettings.objects.for_tenant(tenant).first()
    known = _secret_of(smtp) if smtp is not None else ()
    failed = (
        rows.filter(status=OutgoingStatus.FAILED)
        .select_related("author")
        .only(
            "id", "tenant_id", "to", "subject", "error", "attempts", "updated_at", "queued_at",
            "author__id", "author__email", "author__first_name", "author__last_name",
        )
        .order_by("-updated_at", "-id")[:RECENT_FAILURES]
    )  # fmt: skip
    oldest = figures["oldest"]
    return OutboxState(
        queued=figures["queued"],
        retrying=figures["retrying"],
        failed=figures["failed"],
        sent_24h=figures["sent_24h"],
        oldest_queued_at=oldest,
        oldest_queued_seconds=(now - oldest).total_seconds() if oldest else None,
        failures=[OutboxFailure(outgoing=o, error=redact(o.error, known)) for o in failed],
        smtp_configured=smtp is not None,
    )


# --- background workers (global, no tenant data) -----------------------------------------------------


@dataclass
class WorkerState:
    in_process: bool  # no broker: tasks run inside the request (make run without REDIS_URL)
    in_process_reason: str = ""
    broker_ok: bool = False
    broker_error: str = ""
    workers: list[str] = field(default_factory=list)
    queues: list[tuple[str, int]] = field(default_factory=list)
    unacked: int | None = None  # taken by a worker, not yet acknowledged (running or prefetched)
    checked_at: datetime | None = None


_worker_cache: dict[str, tuple[float, WorkerState]] = {}
_worker_lock = threading.Lock()


def _celery_app():
    from crm.celery import app

    return app


def queue_names() -> list[str]:
    """The broker queues the project routes tasks to: the default queue, any declared queue and any
    queue named in the task routes."""
    conf = _celery_app().conf
    names = [conf.task_default_queue]
    for queue in conf.task_queues or ():
        names.append(getattr(queue, "name", queue))
    routes = conf.task_routes or ()
    # task_routes is a dict of task name (or glob) -> route, or a sequence of such dicts (routers given as
    # functions cannot be listed)
    for table in [routes] if isinstance(routes, dict) else routes:
        for route in table.values() if isinstance(table, dict) else ():
            queue = route.get("queue") if isinstance(route, dict) else None
            if queue:
                names.append(getattr(queue, "name", queue))
    return sorted({str(n) for n in names if n})


def _broker_client():
    import redis

    return redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=1, socket_timeout=1)


def queue_lengths(client, names: list[str]) -> list[tuple[str, int]]:
    """Messages waiting in each queue (all priorities), one round trip."""
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.llen(name)
        for priority in range(1, 10):
            pipe.llen(f"{name}{PRIORITY_SEPARATOR}{priority}")
    counts = pipe.execute()
    return [(name, sum(counts[i * 10 : i * 10 + 10])) for i, name in enumerate(names)]


def _ping_workers() -> list[str]:
    replies = _celery_app().control.ping(timeout=WORKER_PING_TIMEOUT) or []
    return sorted(name for reply in replies for name in reply)


def _in_process_reason() -> str:
    """Why tasks run in-process, or "" when they go through the broker to workers."""
    if not settings.REDIS_URL:
        return "no REDIS_URL is configured"
    if _celery_app().conf.task_always_eager:
        return "tasks are set to run eagerly"
    return ""


def worker_state(*, use_cache: bool = True) -> WorkerState:
    """Whether workers answer a ping, and the queue lengths. Without a broker (``make run`` without
    ``REDIS_URL``) tasks run in-process: that is the answer, not an error. A broker that cannot be
    reached is reported with the exception's class, never its text (a URL may carry a password)."""
    reason = _in_process_reason()
    if reason:
        return WorkerState(in_process=True, in_process_reason=reason, checked_at=timezone.now())
    key = settings.CELERY_BROKER_URL
    if use_cache:
        with _worker_lock:
            hit = _worker_cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < WORKER_CACHE_SECONDS:
            return hit[1]
    state = WorkerState(in_process=False, checked_at=timezone.now())
    try:
        client = _broker_client()
        state.queues = queue_lengths(client, queue_names())
        state.unacked = int(client.hlen("unacked"))
        state.broker_ok = True
    except Exception as exc:  # noqa: BLE001 - reported on the page, not raised
        state.broker_error = f"the broker (Redis) cannot be reached ({exc.__class__.__name__})"
        logger.warning("operations page: %s", state.broker_error)
    if state.broker_ok:
        try:
            state.workers = _ping_workers()
        except Exception as exc:  # noqa: BLE001 - reported on the page, not raised
            state.broker_error = f"pinging the workers failed ({exc.__class__.__name__})"
    with _worker_lock:
        _worker_cache[key] = (time.monotonic(), state)
    return state


def clear_worker_cache() -> None:
    with _worker_lock:
        _worker_cache.clear()


# --- the page ----------------------------------------------------------------------------------------


@dataclass
class OperationsState:
    mailboxes: list[MailboxState]
    mailbox_summary: MailboxSummary
    outbox: OutboxState
    workers: WorkerState
    now: datetime
    refresh_seconds: int = REFRESH_SECONDS


def operations_state(*, tenant: Tenant) -> OperationsState:
    now = timezone.now()
    mailboxes = mailbox_states(tenant=tenant, now=now)
    return OperationsState(
        mailboxes=mailboxes,
        mailbox_summary=mailbox_summary(mailboxes),
        outbox=outbox_state(tenant=tenant, now=now),
        workers=worker_state(),
        now=now,
        refresh_seconds=int(getattr(settings, "OPERATIONS_REFRESH_SECONDS", REFRESH_SECONDS)),
    )

"""Writes of the email app: mailboxes, the sync itself, outgoing mail.

Sync invariants (docs: DESIGN.md "Email sync", reference/email_sync.md §4):
- the database's unique constraints are the correctness guarantee: one ``incoming_emails`` row per
  (tenant, message_key), one ``EmailLocation`` per (mailbox, folder, uidvalidity, uid), one activity per
  ``email:<id>`` dedup key; locks only avoid wasted work;
- the folder position is a cache: rows and the advanced position commit in one transaction per batch,
  fenced by the mailbox lease token, so a crash re-scans and never duplicates, and a worker whose lease
  expired cannot move the position;
- every listed message ends recorded (parsed, partial, failed or truncated): nothing blocks the rest.
"""

from __future__ import annotations

import email as email_lib
import logging
import smtplib
import ssl
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from email.utils import formataddr, make_msgid
from functools import cached_property

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError

from activities.models import ActivitySource, ActivityType, Direction
from activities.services import activity_log, activity_log_many
from crm.crypto import SecretError
from crm.models import Contact, Membership, Team, Tenant

from . import parsing
from .client import AuthError, FolderMissing, HostNotAllowed, ImapConnection, SyncError, TransientError
from .models import (
    AuthMethod,
    EmailLocation,
    IncomingEmail,
    Mailbox,
    MailboxFolder,
    MailboxStatus,
    OutgoingEmail,
    OutgoingStatus,
    Security,
    SmtpSettings,
)

logger = logging.getLogger(__name__)

SENT_FOLDER_NAMES = {"sent", "sent items", "sent mail", "sent messages", "inbox.sent", "[gmail]/sent mail"}


def _setting(name: str, default):
    return getattr(settings, name, default)


def lease_seconds() -> int:
    return _setting("EMAILSYNC_LEASE_SECONDS", 300)


def batch_size() -> int:
    return _setting("EMAILSYNC_BATCH_SIZE", 200)


def max_messages_per_run() -> int:
    return _setting("EMAILSYNC_MAX_MESSAGES_PER_RUN", 2000)


def max_message_bytes() -> int:
    return _setting("EMAILSYNC_MAX_MESSAGE_BYTES", 25 * 1024 * 1024)


def poll_interval() -> timedelta:
    return timedelta(seconds=_setting("EMAILSYNC_POLL_SECONDS", 120))


def auth_max_attempts() -> int:
    return _setting("EMAILSYNC_AUTH_MAX_ATTEMPTS", 3)


def backoff_delay(failures: int) -> timedelta:
    """Growing, capped: base, 2*base, 4*base ... up to the cap (defaults 60 s .. 1 h)."""
    base = _setting("EMAILSYNC_BACKOFF_BASE_SECONDS", 60)
    cap = _setting("EMAILSYNC_BACKOFF_MAX_SECONDS", 3600)
    return timedelta(seconds=min(cap, base * (2 ** max(0, failures - 1))))


class LeaseLost(Exception):
    """Another worker holds the mailbox now; this worker must stop without writing."""


# --- Mailboxes -------------------------------------------------------------------------------------


def owner_team(*, tenant: Tenant, user) -> Team | None:
    membership = Membership.objects.for_tenant(tenant).filter(user=user).first()
    if membership is None:
        return None
    return membership.teams.order_by("name", "id").first()


@transaction.atomic
def mailbox_create(*, tenant: Tenant, actor, secret: str, **fields) -> Mailbox:
    mailbox = Mailbox(tenant=tenant, owner=actor, **fields)
    mailbox.email_address = mailbox.email_address.strip().lower()
    if mailbox.team_id is None:
        mailbox.team = owner_team(tenant=tenant, user=actor)
    mailbox.set_secret(secret)
    mailbox.next_sync_at = timezone.now()
    mailbox.full_clean(exclude=["tenant", "owner", "team", "secret_encrypted"])
    mailbox.save()
    return mailbox


@transaction.atomic
def mailbox_update(*, mailbox: Mailbox, actor, secret: str = "", **fields) -> Mailbox:
    for name, value in fields.items():
        setattr(mailbox, name, value)
    if secret:
        mailbox.set_secret(secret)
    # A fixed configuration deserves a fresh start: clear the error state and sync soon.
    mailbox.status = MailboxStatus.ACTIVE
    mailbox.failure_count = 0
    mailbox.last_error = ""
    mailbox.next_sync_at = timezone.now()
    mailbox.full_clean(exclude=["tenant", "owner", "team", "secret_encrypted"])
    mailbox.save()
    return mailbox


def open_mailbox_connection(mailbox: Mailbox) -> ImapConnection:
    try:
        secret = mailbox.get_secret()
    except SecretError as exc:
        raise AuthError("The stored password can no longer be decrypted: enter it again.") from exc
    return ImapConnection.open(
        host=mailbox.host,
        port=mailbox.port,
        security=mailbox.security,
        username=mailbox.username,
        secret=secret,
        auth_method=mailbox.auth_method,
    )


def connection_test(
    *, host: str, port: int, security: str, username: str, secret: str, auth_method: str, folders: list[str]
) -> tuple[bool, str]:
    """Try to log in and look at each folder; a sentence for the user either way (never the secret)."""
    try:
        with ImapConnection.open(
            host=host,
            port=port,
            security=security,
            username=username,
            secret=secret,
            auth_method=auth_method,
            connect_timeout=10,
            read_timeout=20,
        ) as conn:
            counts, missing = [], []
            for folder in folders:
                try:
                    counts.append(f"{folder}: {conn.folder_status(folder).messages}")
                except FolderMissing:
                    missing.append(folder)
    except SyncError as exc:
        return False, str(exc)
    if missing:
        return False, f"Logged in, but these folders do not exist: {', '.join(missing)}."
    return True, "Connected. Messages per folder: " + ", ".join(counts) + "."


def mailbox_test(*, mailbox: Mailbox) -> tuple[bool, str]:
    try:
        secret = mailbox.get_secret()
    except SecretError:
        return False, "The stored password can no longer be decrypted: enter it again."
    return connection_test(
        host=mailbox.host,
        port=mailbox.port,
        security=mailbox.security,
        username=mailbox.username,
        secret=secret,
        auth_method=mailbox.auth_method,
        folders=list(mailbox.folders),
    )


def mailbox_sync_now(*, mailbox: Mailbox) -> None:
    """Make the mailbox due now and enqueue its task; repeated clicks are harmless (the lease)."""
    from .tasks import sync_mailbox_task

    Mailbox.objects.filter(pk=mailbox.pk).update(next_sync_at=timezone.now())
    # If Redis is down the click still succeeds: the mailbox is due now, so the beat fan-out enqueues it.
    enqueue_on_commit(sync_mailbox_task, mailbox.pk)


# --- Enqueueing ------------------------------------------------------------------------------------

# What publishing to an unreachable broker raises (kombu wraps connection errors in OperationalError).
ENQUEUE_ERRORS: tuple[type[BaseException], ...] = (KombuOperationalError, ConnectionError, OSError)


def enqueue(task, *args) -> bool:
    """Publish ``task(*args)``; False (logged, never raised) when the broker cannot be reached.

    Every enqueue has a row behind it that says the work is still to do (a queued OutgoingEmail, a due
    Mailbox), so a lost publish is repaired by a beat task that scans those rows, never by the caller.
    The publish retry policy in settings (CELERY_TASK_PUBLISH_RETRY_POLICY) bounds how long this blocks.
    """
    try:
        task.delay(*args)
    except ENQUEUE_ERRORS as exc:
        logger.warning("could not enqueue %s%r (%s); the rows stay due and the beat will re-dispatch them",
                       task.name, tuple(args), exc)  # fmt: skip
        return False
    return True


def enqueue_on_commit(task, *args) -> None:
    transaction.on_commit(lambda: enqueue(task, *args))


# --- Lease -----------------------------------------------------------------------------------------


def lease_acquire(mailbox_id: int, seconds: int | None = None) -> int | None:
    """Take the mailbox lease if it is free or expired; returns the new fencing token or None."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE emailsync_mailbox SET lease_until = now() + make_interval(secs => %s), "
            "lease_token = lease_token + 1 "
            "WHERE id = %s AND (lease_until IS NULL OR lease_until < now()) RETURNING lease_token",
            [seconds or lease_seconds(), mailbox_id],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def lease_release(mailbox_id: int, token: int) -> None:
    Mailbox.objects.filter(pk=mailbox_id, lease_token=token).update(lease_until=None)


def _heartbeat(mailbox_id: int, token: int, imported: int = 0) -> None:
    """Extend the lease (and count imports) only while we still hold it: the fencing check."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE emailsync_mailbox SET lease_until = now() + make_interval(secs => %s), "
            "messages_imported = messages_imported + %s WHERE id = %s AND lease_token = %s",
            [lease_seconds(), imported, mailbox_id, token],
        )
        if cursor.rowcount != 1:
            raise LeaseLost(f"mailbox {mailbox_id}: lease token {token} is no longer current")


# --- Sync ------------------------------------------------------------------------------------------


@dataclass
class SyncResult:
    status: str = "ok"  # ok | busy | auth_error | error | skipped | lease_lost
    imported: int = 0  # new incoming_emails rows
    locations: int = 0
    activities: int = 0
    more: bool = False  # stopped at the per-run cap: run again right away
    error: str = ""
    warnings: list[str] = field(default_factory=list)
    commands: Counter = field(default_factory=Counter)


class _Context:
    """Per-run state; the colleague list and the owner's team are loaded only when mail needs them
    (an unchanged poll costs no query for them)."""

    def __init__(self, *, mailbox: Mailbox, token: int, own: set[str], result: SyncResult, batch_hook=None):
        self.mailbox, self.token, self.own, self.result = mailbox, token, own, result
        self.batch_hook = batch_hook  # tests: called after each committed batch

    @cached_property
    def colleagues(self) -> set[str]:
        return tenant_addresses(self.mailbox.tenant)

    @cached_property
    def team(self) -> Team | None:
        return self.mailbox.team or owner_team(tenant=self.mailbox.tenant, user=self.mailbox.owner)


def sync_mailbox(
    mailbox_id: int, *, max_messages: int | None = None, connection_factory=None, batch_hook=None
) -> SyncResult:
    """One sync run of one mailbox. Safe to call concurrently: the lease lets one run, others return busy."""
    result = SyncResult()
    token = lease_acquire(mailbox_id)
    if token is None:
        result.status = "busy"
        return result
    try:
        # Deliberately by id only (called by tasks/commands, not by a request): the tenant is the mailbox's.
        mailbox = Mailbox.objects.select_related("owner", "team", "tenant").get(pk=mailbox_id)
        if mailbox.status == MailboxStatus.DISABLED:
            result.status = "skipped"
            return result
        ctx = _Context(
            mailbox=mailbox,
            token=token,
            own={a for a in {mailbox.email_address.lower(), (mailbox.owner.email or "").lower()} if a},
            result=result,
            batch_hook=batch_hook,
        )
        budget = max_messages if max_messages is not None else max_messages_per_run()
        try:
            conn = (connection_factory or open_mailbox_connection)(mailbox)
            with conn:
                try:
                    for folder in mailbox.folders:
                        if budget <= 0:
                            result.more = True
                            break
                        try:
                            used = _sync_folder(conn, ctx, folder, budget)
                        except FolderMissing as exc:
                            result.warnings.append(str(exc))
                            continue
                        budget -= used
                finally:
                    result.commands.update(conn.commands)
        except LeaseLost as exc:
            result.status = "lease_lost"
            result.error = str(exc)
            return result
        except AuthError as exc:
            _record_failure(mailbox, token, result, exc, auth=True)
            return result
        except HostNotAllowed as exc:
            _record_failure(mailbox, token, result, exc, auth=True, immediate=True)
            return result
        except TransientError as exc:
            _record_failure(mailbox, token, result, exc, auth=False)
            return result
        _record_success(mailbox, token, result)
        return result
    finally:
        lease_release(mailbox_id, token)


def tenant_addresses(tenant: Tenant) -> set[str]:
    """Addresses of the tenant's members: mail among them only is not contact activity."""
    users = get_user_model().objects.filter(memberships__tenant=tenant, memberships__is_active=True)
    return {e.lower() for e in users.values_list("email", flat=True) if e}


def _record_success(mailbox: Mailbox, token: int, result: SyncResult) -> None:
    now = timezone.now()
    Mailbox.objects.filter(pk=mailbox.pk, lease_token=token).update(
        status=MailboxStatus.ACTIVE,
        failure_count=0,
        last_error="; ".join(result.warnings)[:2000],
        last_sync_at=now,
        next_sync_at=now if result.more else now + poll_interval(),
    )


def _record_failure(
    mailbox: Mailbox, token: int, result: SyncResult, exc: Exception, *, auth: bool, immediate: bool = False
) -> None:
    failures = mailbox.failure_count + 1
    now = timezone.now()
    message = str(exc)
    if auth and (immediate or failures >= auth_max_attempts()):
        status, next_at = MailboxStatus.NEEDS_ATTENTION, None
        message = f"{message} Syncing is paused until the mailbox settings are fixed."
    else:
        status, next_at = MailboxStatus.ERROR, now + backoff_delay(failures)
    Mailbox.objects.filter(pk=mailbox.pk, lease_token=token).update(
        status=status, failure_count=failures, last_error=message[:2000], next_sync_at=next_at
    )
    result.status = "auth_error" if auth else "error"
    result.error = message
    logger.info("mailbox %s sync failed (%s): %s", mailbox.pk, result.status, message)


def is_sent_folder(name: str) -> bool:
    return name.strip().lower() in SENT_FOLDER_NAMES


def _sync_folder(conn: ImapConnection, ctx: _Context, folder: str, budget: int) -> int:
    """Sync one folder; returns how many UIDs were processed (counted against the run's budget)."""
    mailbox = ctx.mailbox
    state, _ = MailboxFolder.objects.get_or_create(tenant=mailbox.tenant, mailbox=mailbox, name=folder)
    status = conn.folder_status(folder)
    if state.uidvalidity == status.uidvalidity and state.uidnext == status.uidnext:
        return 0  # unchanged: one STATUS, nothing else
    selected = conn.examine(folder)
    uidvalidity = selected.uidvalidity or status.uidvalidity
    last_uid = state.last_uid
    if state.uidvalidity is not None and state.uidvalidity != uidvalidity:
        # UIDVALIDITY changed (or the folder was recreated): re-scan; message keys absorb the overlap.
        last_uid = 0
    elif last_uid and status.uidnext and last_uid >= status.uidnext:
        # UIDs went backwards without a UIDVALIDITY change (server reused UIDs): re-scan as well.
        last_uid = 0
    uids = conn.uids_after(last_uid, since=mailbox.start_date) if status.messages else []
    todo = uids[:budget]
    size = batch_size()
    for start in range(0, len(todo), size):
        chunk = todo[start : start + size]
        _import_batch(conn, ctx, state, folder, uidvalidity, chunk)
        last_uid = chunk[-1]
        if ctx.batch_hook:
            ctx.batch_hook(chunk)
    complete = len(todo) == len(uids)
    with transaction.atomic():
        _heartbeat(mailbox.pk, ctx.token)
        MailboxFolder.objects.filter(pk=state.pk).update(
            uidvalidity=uidvalidity,
            last_uid=last_uid,
            # UIDNEXT as seen *before* the search: a message arriving meanwhile is found next time.
            uidnext=status.uidnext if complete else None,
            message_count=status.messages,
            last_synced_at=timezone.now(),
        )
    if not complete:
        ctx.result.more = True
    return len(todo)


def _message_id_of(header: bytes) -> str:
    if not header:
        return ""
    try:
        return email_lib.message_from_bytes(header).get("Message-ID") or ""
    except Exception:  # noqa: BLE001
        return ""


def _import_batch(
    conn: ImapConnection, ctx: _Context, state: MailboxFolder, folder: str, uidvalidity: int, uids: list[int]
) -> None:
    tenant = ctx.mailbox.tenant
    meta = conn.fetch_meta(uids)  # expunged meanwhile -> absent: nothing to record
    key_of: dict[int, str] = {}
    for uid, item in meta.items():
        mid = parsing.normalize_message_id(
            parsing.decode_header_value(_message_id_of(item["message_id_header"]))
        )
        if mid:
            key_of[uid] = parsing.message_key_for(mid, b"")
    known = dict(
        IncomingEmail.objects.for_tenant(tenant)
        .filter(message_key__in=set(key_of.values()))
        .values_list("message_key", "id")
    )
    limit = max_message_bytes()
    want_body = [u for u in sorted(meta) if key_of.get(u) not in known and meta[u]["size"] <= limit]
    want_head = [u for u in sorted(meta) if key_of.get(u) not in known and meta[u]["size"] > limit]
    raws: dict[int, tuple[bytes, bool]] = {}
    for uid, raw in conn.fetch_bodies(want_body).items():
        raws[uid] = (raw, False)
    for uid, raw in conn.fetch_headers(want_head).items():
        raws[uid] = (raw, True)

    # Parse outside the transaction (CPU only; never raises).
    parsed: dict[int, parsing.ParsedEmail] = {}
    for uid in sorted(raws):
        raw, truncated = raws[uid]
        parsed[uid] = parsing.parse_message(raw, truncated=truncated)
        key_of[uid] = parsed[uid].message_key
    now = timezone.now()
    new_rows: dict[str, IncomingEmail] = {}
    for uid, p in parsed.items():
        if p.message_key in known or p.message_key in new_rows:
            continue
        received = meta[uid]["internaldate"] or p.date or now
        if timezone.is_naive(received):
            received = timezone.make_aware(received, timezone.get_current_timezone())
        new_rows[p.message_key] = IncomingEmail(
            tenant=tenant,
            message_key=p.message_key,
            message_id=p.message_id,
            in_reply_to=p.in_reply_to,
            references=p.references,
            subject=p.subject,
            sender=p.sender,
            sender_name=p.sender_name,
            recipients=p.recipients,
            snippet=p.snippet,
            body_text=p.body_text,
            body_html=p.body_html,
            received_at=received,
            raw_size=meta[uid]["size"] or len(raws[uid][0]),
            raw=raws[uid][0],
            parse_status=p.parse_status,
            parse_error=p.parse_error,
        )
    parsed_by_key = {p.message_key: p for p in parsed.values()}

    with transaction.atomic():
        if new_rows:
            IncomingEmail.objects.bulk_create(list(new_rows.values()), ignore_conflicts=True)
        ids = dict(
            IncomingEmail.objects.for_tenant(tenant)
            .filter(message_key__in=set(key_of.values()))
            .values_list("message_key", "id")
        )
        locations = [
            EmailLocation(
                tenant=tenant,
                email_id=ids[key_of[uid]],
                mailbox=ctx.mailbox,
                folder=folder,
                uidvalidity=uidvalidity,
                uid=uid,
            )
            for uid in sorted(meta)
            if key_of.get(uid) in ids
        ]
        EmailLocation.objects.bulk_create(locations, ignore_conflicts=True)
        fresh = [(ids[k], parsed_by_key[k], new_rows[k].received_at) for k in new_rows if k in ids]
        created = _log_activities(ctx, folder, fresh)
        # Fencing: only the lease holder may advance the position; otherwise everything rolls back.
        _heartbeat(ctx.mailbox.pk, ctx.token, imported=len(fresh))
        MailboxFolder.objects.filter(pk=state.pk).update(uidvalidity=uidvalidity, last_uid=uids[-1])
    ctx.result.imported += len(fresh)
    ctx.result.locations += len(locations)
    ctx.result.activities += created


def _log_activities(ctx: _Context, folder: str, emails: list[tuple[int, parsing.ParsedEmail, object]]) -> int:
    """One email activity per newly stored email that involves a contact of the tenant."""
    if not emails:
        return 0
    mailbox = ctx.mailbox
    internal = ctx.colleagues | ctx.own
    plans = []
    wanted: set[str] = set()
    for email_id, p, received in emails:
        addresses = p.addresses
        if not addresses or addresses <= internal:
            continue  # mail among colleagues (or to oneself) is not contact activity
        outbound = is_sent_folder(folder) or p.sender in internal
        candidates = [a for a in (p.recipients if outbound else [p.sender]) if a and a not in internal]
        if not candidates:
            continue
        plans.append((email_id, p, outbound, candidates, received))
        wanted.update(candidates)
    if not plans:
        return 0
    by_address: dict[str, Contact] = {}
    for contact in (
        Contact.objects.for_tenant(mailbox.tenant)
        .filter(emails__overlap=sorted(wanted))
        .select_related("account")
        .order_by("id")
    ):
        for addr in contact.emails:
            by_address.setdefault(addr.lower(), contact)
    entries = []
    for email_id, p, outbound, candidates, received in plans:
        contact = next((by_address[a] for a in candidates if a in by_address), None)
        if contact is None and mailbox.create_contacts and not outbound:
            contact = Contact.objects.create(
                tenant=mailbox.tenant,
                name=p.sender_name or p.sender,
                emails=[p.sender],
                owner=mailbox.owner,
                team=ctx.team,
            )
            by_address[p.sender] = contact
        if contact is None:
            continue
        entries.append(
            {
                "type": ActivityType.EMAIL,
                "source": ActivitySource.INTERACTION,
                "direction": Direction.OUTBOUND if outbound else Direction.INBOUND,
                "agent": mailbox.owner,
                "team": ctx.team,
                "contact": contact,
                "summary": p.subject or "(no subject)",
                "first_message": p.snippet,
                "source_object": IncomingEmail(pk=email_id, tenant=mailbox.tenant),
                "dedup_key": f"email:{email_id}",
                "occurred_at": received,
            }
        )
    # One INSERT for the batch, through the same service (dedup key: a re-sync never duplicates or
    # resurrects a deleted activity).
    return activity_log_many(tenant=mailbox.tenant, entries=entries)


# --- Outgoing mail ---------------------------------------------------------------------------------


def _no_newlines(**values) -> None:
    errors = {
        name: "Line breaks are not allowed here."
        for name, v in values.items()
        if v and ("\r" in v or "\n" in v)
    }
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def outgoing_save(
    *, tenant: Tenant, actor, contact: Contact | None, to: list[str], cc: list[str], subject: str, body: str,
    outgoing: OutgoingEmail | None = None, send: bool = False,
) -> OutgoingEmail:  # fmt: skip
    """Save a draft (or update one) and, with ``send``, queue it for the send task."""
    _no_newlines(subject=subject, to=",".join(to), cc=",".join(cc))
    if outgoing is None:
        outgoing = OutgoingEmail(tenant=tenant, author=actor, contact=contact)
    elif outgoing.status != OutgoingStatus.DRAFT:
        raise ValidationError("Only drafts can be changed.")
    outgoing.to, outgoing.cc, outgoing.subject, outgoing.body = to, cc, subject, body
    if send:
        if not SmtpSettings.objects.for_tenant(tenant).exists():
            raise ValidationError("Outgoing mail is not configured for this workspace (SMTP settings).")
        outgoing.status = OutgoingStatus.QUEUED
        outgoing.queued_at = timezone.now()
    outgoing.full_clean(exclude=["tenant", "author", "contact"])
    outgoing.save()
    if send:
        from .tasks import send_outgoing_email_task

        # The queued row is the outbox: if this publish is lost (Redis down), redispatch_queued_outgoing
        # sends the task again once the row has been queued for OUTGOING_REDISPATCH_SECONDS.
        enqueue_on_commit(send_outgoing_email_task, outgoing.pk)
    return outgoing


@transaction.atomic
def outgoing_retry(*, tenant: Tenant, actor, outgoing: OutgoingEmail) -> bool:
    """Queue a failed email again (an admin's "Retry", e.g. after fixing the SMTP settings).

    Idempotent: only a failed row is re-queued (True); a row already queued or sent again is left as it
    is (False), so a double click sends once. The queued row is the outbox entry, as in outgoing_save.
    """
    row = OutgoingEmail.objects.for_tenant(tenant).select_for_update().filter(pk=outgoing.pk).first()
    if row is None or row.status != OutgoingStatus.FAILED:
        return False
    if not SmtpSettings.objects.for_tenant(tenant).exists():
        raise ValidationError("Outgoing mail is not configured for this workspace (SMTP settings).")
    now = timezone.now()
    OutgoingEmail.objects.filter(pk=row.pk).update(
        status=OutgoingStatus.QUEUED, queued_at=now, attempts=0, error="", updated_at=now
    )
    logger.info("outgoing email %s queued again by user %s", row.pk, getattr(actor, "pk", None))
    from .tasks import send_outgoing_email_task

    enqueue_on_commit(send_outgoing_email_task, row.pk)
    return True


class SendTransient(Exception):
    pass


def _smtp_connect(smtp: SmtpSettings, timeout: float) -> smtplib.SMTP:
    from .client import validate_host

    validate_host(smtp.host, smtp.port)
    context = ssl.create_default_context()
    if smtp.security == Security.TLS:
        server = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=timeout, context=context)
    else:
        server = smtplib.SMTP(smtp.host, smtp.port, timeout=timeout)
        if smtp.security == Security.STARTTLS:
            server.starttls(context=context)
    if smtp.username:
        server.login(smtp.username, smtp.get_secret())
    return server


def outgoing_deliver(outgoing_id: int, *, max_attempts: int = 5, timeout: float = 30.0) -> str:
    """Send one queued email. Returns the new status; raises SendTransient when a retry should follow.

    Exactly once per queued row, however many copies of the task run (a redelivery after a worker died,
    the outbox reconciler's re-dispatch next to a late original): the row stays locked from the status
    check until it is marked sent, and a copy that finds it locked returns "busy" without waiting. A worker
    killed mid-send takes its connection, hence the lock, with it; the row is still queued and the
    redelivered task sends it.
    """
    transient = ""
    with transaction.atomic():
        outgoing = OutgoingEmail.objects.select_for_update(skip_locked=True).filter(pk=outgoing_id).first()
        if outgoing is None:
            return "busy" if OutgoingEmail.objects.filter(pk=outgoing_id).exists() else "missing"
        if outgoing.status != OutgoingStatus.QUEUED:
            return outgoing.status
        outgoing.attempts += 1
        outgoing.save(update_fields=["attempts", "updated_at"])
        status, transient = _outgoing_send(outgoing, max_attempts=max_attempts, timeout=timeout)
    if transient:
        raise SendTransient(transient)
    return status


def _outgoing_send(outgoing: OutgoingEmail, *, max_attempts: int, timeout: float) -> tuple[str, str]:
    """(status, transient error or ""); runs inside outgoing_deliver's transaction, the row locked."""
    smtp = SmtpSettings.objects.for_tenant(outgoing.tenant_id).first()
    if smtp is None:
        return _outgoing_fail(outgoing, "Outgoing mail is not configured for this workspace."), ""
    author = outgoing.author
    sender = smtp.from_address or (author.email if author else "")
    author_name = (author.get_full_name() if author else "").replace("\r", " ").replace("\n", " ")
    message = email_lib.message.EmailMessage()
    message["From"] = formataddr((author_name, sender)) if author_name else sender
    message["To"] = ", ".join(outgoing.to)
    if outgoing.cc:
        message["Cc"] = ", ".join(outgoing.cc)
    message["Subject"] = outgoing.subject
    message["Date"] = email_lib.utils.formatdate(localtime=False)
    message_id = outgoing.message_id or make_msgid(domain=sender.rpartition("@")[2] or None)
    message["Message-ID"] = message_id
    message.set_content(outgoing.body or "")
    try:
        with _smtp_connect(smtp, timeout) as server:
            server.send_message(message, from_addr=sender, to_addrs=outgoing.to + outgoing.cc)
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPAuthenticationError) as exc:
        return _outgoing_fail(outgoing, f"The mail server refused the message: {exc}"), ""
    except smtplib.SMTPResponseException as exc:
        if 400 <= exc.smtp_code < 500 and outgoing.attempts < max_attempts:
            _outgoing_note(outgoing, f"Temporary failure ({exc.smtp_code}); retrying.", message_id)
            return OutgoingStatus.QUEUED, str(exc) or "temporary failure"
        return _outgoing_fail(outgoing, f"The mail server refused the message ({exc.smtp_code})."), ""
    except (TimeoutError, OSError, smtplib.SMTPException, SyncError) as exc:
        if outgoing.attempts < max_attempts and not isinstance(exc, HostNotAllowed):
            _outgoing_note(outgoing, f"Could not reach the mail server ({exc}); retrying.", message_id)
            return OutgoingStatus.QUEUED, str(exc) or "could not reach the mail server"
        return _outgoing_fail(outgoing, f"Could not send: {exc}"), ""
    now = timezone.now()
    OutgoingEmail.objects.filter(pk=outgoing.pk).update(
        status=OutgoingStatus.SENT, sent_at=now, error="", message_id=message_id, updated_at=now
    )
    if outgoing.contact is not None:
        activity_log(
            tenant=outgoing.tenant,
            actor=author,
            type=ActivityType.EMAIL,
            source=ActivitySource.INTERACTION,
            direction=Direction.OUTBOUND,
            agent=author,
            team=owner_team(tenant=outgoing.tenant, user=author) if author else None,
            contact=outgoing.contact,
            summary=outgoing.subject,
            first_message=(outgoing.body or "")[:280],
            source_object=outgoing,
            dedup_key=f"outgoing:{outgoing.pk}",
            occurred_at=now,
        )
    return OutgoingStatus.SENT, ""


def _outgoing_note(outgoing: OutgoingEmail, text: str, message_id: str) -> None:
    OutgoingEmail.objects.filter(pk=outgoing.pk).update(error=text[:2000], message_id=message_id)


def _outgoing_fail(outgoing: OutgoingEmail, text: str) -> str:
    OutgoingEmail.objects.filter(pk=outgoing.pk).update(
        status=OutgoingStatus.FAILED, error=text[:2000], updated_at=timezone.now()
    )
    return OutgoingStatus.FAILED


@transaction.atomic
def smtp_settings_save(*, tenant: Tenant, secret: str = "", **fields) -> SmtpSettings:
    smtp = SmtpSettings.objects.for_tenant(tenant).first() or SmtpSettings(tenant=tenant)
    for name, value in fields.items():
        setattr(smtp, name, value)
    if secret:
        smtp.set_secret(secret)
    smtp.full_clean(exclude=["tenant", "secret_encrypted"])
    smtp.save()
    return smtp


# --- Key rotation ----------------------------------------------------------------------------------


def rotate_secrets() -> int:
    """Re-encrypt every stored secret under the newest key. Cross-tenant on purpose (an ops command)."""
    from crm import crypto

    count = 0
    for model in (Mailbox, SmtpSettings):
        stored = model.objects.exclude(secret_encrypted="")  # nosec B106  # "" means no secret stored
        for pk, token in stored.values_list("pk", "secret_encrypted"):
            rotated = crypto.rotate(token)
            if rotated != token:
                model.objects.filter(pk=pk).update(secret_encrypted=rotated)
                count += 1
    return count


__all__ = ["AuthMethod", "sync_mailbox", "SyncResult"]

"""Celery tasks: ids in, one service call, nothing else (never a secret in the arguments)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.db import connection

from crm import rls

from . import services
from .models import Mailbox, OutgoingEmail

logger = logging.getLogger(__name__)

DISPATCH_LIMIT = 1000
# A dispatched mailbox is not dispatched again for this long (its task may still be queued); if the
# task is lost (Redis restart), the mailbox simply becomes due again after it.
DISPATCH_CLAIM_SECONDS = 600


def claim_due_mailboxes(limit: int = DISPATCH_LIMIT) -> list[int]:
    """Ids of due mailboxes, oldest due first, claimed atomically so two beats never double-dispatch.

    Deliberately cross-tenant: the beat fan-out serves every tenant.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE emailsync_mailbox m SET next_sync_at = now() + make_interval(secs => %s)
            FROM (
                SELECT id FROM emailsync_mailbox
                WHERE status IN ('active', 'error')
                  AND (next_sync_at IS NULL OR next_sync_at <= now())
                  AND (lease_until IS NULL OR lease_until < now())
                ORDER BY next_sync_at ASC NULLS FIRST, id
                LIMIT %s
                FOR UPDATE SKIP LOCKED
            ) due
            WHERE m.id = due.id
            RETURNING m.id, m.next_sync_at
            """,
            [DISPATCH_CLAIM_SECONDS, limit],
        )
        return [row[0] for row in cursor.fetchall()]


@shared_task(ignore_result=True)
def dispatch_due_mailboxes(limit: int = DISPATCH_LIMIT) -> int:
    with rls.tenant_session(bypass=True):  # deliberately cross-tenant: the beat fan-out
        ids = claim_due_mailboxes(limit)
    for mailbox_id in ids:
        # A lost publish (Redis gone mid-loop) costs a wait: the claimed mailbox is due again after
        # DISPATCH_CLAIM_SECONDS.
        if not services.enqueue(sync_mailbox_task, mailbox_id):
            break
    return len(ids)


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def sync_mailbox_task(mailbox_id: int) -> str:
    tenant_id = rls.tenant_id_of(Mailbox, mailbox_id)
    if tenant_id is None:
        logger.info("mailbox %s sync: the mailbox no longer exists", mailbox_id)
        return "gone"
    with rls.tenant_session(tenant_id=tenant_id):
        result = services.sync_mailbox(mailbox_id)
    if result.more:
        # A backlog larger than one run: continue right away instead of waiting for the next beat.
        services.enqueue(sync_mailbox_task, mailbox_id)
    logger.info(
        "mailbox %s sync: %s, %s new, %s activities",
        mailbox_id,
        result.status,
        result.imported,
        result.activities,
    )
    return result.status


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True, max_retries=6)
def send_outgoing_email_task(self, outgoing_id: int) -> str:
    try:
        with rls.tenant_session(tenant_id=rls.tenant_id_of(OutgoingEmail, outgoing_id)):
            return services.outgoing_deliver(outgoing_id, max_attempts=self.max_retries + 1)
    except services.SendTransient as exc:
        raise self.retry(exc=exc, countdown=min(600, 30 * 2**self.request.retries)) from exc


def claim_stale_outgoing(older_than_seconds: float, limit: int = DISPATCH_LIMIT) -> list[int]:
    """Ids of outgoing emails queued and untouched for ``older_than_seconds``, claimed by touching them.

    Rows being delivered right now are locked by outgoing_deliver and skipped. Deliberately cross-tenant:
    the outbox reconciler serves every tenant.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE emailsync_outgoingemail o SET updated_at = now()
            FROM (
                SELECT id FROM emailsync_outgoingemail
                WHERE status = 'queued' AND updated_at < now() - make_interval(secs => %s)
                ORDER BY updated_at, id
                LIMIT %s
                FOR UPDATE SKIP LOCKED
            ) stale
            WHERE o.id = stale.id
            RETURNING o.id
            """,
            [older_than_seconds, limit],
        )
        return [row[0] for row in cursor.fetchall()]


@shared_task(ignore_result=True)
def redispatch_queued_outgoing(older_than_seconds: float | None = None, limit: int = DISPATCH_LIMIT) -> int:
    """The outbox reconciler (beat): a queued OutgoingEmail is the outbox entry for its send task, so one
    whose task was lost (published while Redis was down, or dropped by a Redis restart) is sent again.
    A re-dispatch next to a live task is harmless: outgoing_deliver sends each row once."""
    if older_than_seconds is None:
        older_than_seconds = settings.OUTGOING_REDISPATCH_SECONDS
    with rls.tenant_session(bypass=True):  # deliberately cross-tenant: the outbox reconciler
        ids = claim_stale_outgoing(older_than_seconds, limit)
    for outgoing_id in ids:
        if not services.enqueue(send_outgoing_email_task, outgoing_id):
            break  # still unreachable: the rows stay queued and the next run tries again
    if ids:
        logger.info("outbox: re-dispatched %s queued outgoing emails", len(ids))
    return len(ids)

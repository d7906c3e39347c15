"""Celery tasks: ids in, one service call, nothing else (never a secret in the arguments)."""

from __future__ import annotations

import logging

from celery import shared_task
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
        sync_mailbox_task.delay(mailbox_id)
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
        sync_mailbox_task.delay(mailbox_id)
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

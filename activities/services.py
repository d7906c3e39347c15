"""Writes to the audit trail. Every activity, manual or automatic, is created through ``activity_log``."""

from datetime import datetime

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from crm.models import Account, Contact, Lead, Team, Tenant

from .models import Activity, ActivitySource, Direction


def _check_same_tenant(tenant: Tenant, **objects) -> None:
    for name, obj in objects.items():
        if obj is not None and obj.tenant_id != tenant.pk:
            raise ValidationError({name: f"That {name} does not exist."})


@transaction.atomic
def activity_log(
    *,
    tenant: Tenant,
    actor=None,
    type: str,
    source: str = ActivitySource.MANUAL,
    direction: str = Direction.NONE,
    agent=None,
    team: Team | None = None,
    contact: Contact | None = None,
    lead: Lead | None = None,
    account: Account | None = None,
    summary: str = "",
    body: str = "",
    first_message: str = "",
    source_object: models.Model | None = None,
    dedup_key: str | None = None,
    occurred_at: datetime | None = None,
    duration_seconds: int | None = None,
    due_at: datetime | None = None,
    done: bool = False,
    changes: dict | None = None,
) -> tuple[Activity, bool]:
    """Create one activity; returns ``(activity, created)``.

    With a ``dedup_key`` the write is idempotent: a second call with the same key returns the existing
    row (also when it was deleted: a deleted activity is never resurrected by a retry or a re-sync).
    The account defaults to the contact's account so account timelines roll up their contacts.
    """
    _check_same_tenant(tenant, contact=contact, lead=lead, account=account, team=team)
    if account is None and contact is not None:
        account = contact.account
    agent = agent if agent is not None else actor
    activity = Activity(
        tenant=tenant,
        team=team,
        user=agent,
        contact=contact,
        lead=lead,
        account=account,
        type=type,
        source=source,
        direction=direction,
        summary=summary[:500],
        body=body,
        first_message=first_message,
        dedup_key=dedup_key,
        occurred_at=occurred_at or timezone.now(),
        duration_seconds=duration_seconds,
        due_at=due_at,
        done=done,
        changes=changes or {},
        created_by=actor,
    )
    if source_object is not None:
        activity.source_type = ContentType.objects.get_for_model(source_object)
        activity.source_id = source_object.pk
    activity.full_clean(exclude=["tenant", "team", "user", "contact", "lead", "account", "created_by"])
    if dedup_key is None:
        activity.save()
        return activity, True
    # The unique (tenant, dedup_key) constraint decides races; the loser reads back the winner.
    try:
        with transaction.atomic():  # savepoint: a conflict must not abort the caller's transaction
            activity.save()
        return activity, True
    except IntegrityError:
        existing = Activity.objects.for_tenant(tenant).filter(dedup_key=dedup_key).first()
        if existing is None:
            raise
        return existing, False

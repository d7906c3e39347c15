"""Writes to the audit trail. Every activity, manual or automatic, is created through ``activity_log``."""

from datetime import datetime

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from crm.models import Account, Contact, Lead, Team, Tenant

from .models import MANUAL_TYPES, Activity, ActivitySource, Direction

# Related objects are handed in as instances and checked for the tenant above; validating each foreign key
# again would cost one query per key per activity (half the time of an email backfill, measured).
RELATION_FIELDS = [f.name for f in Activity._meta.concrete_fields if f.is_relation]


def _check_same_tenant(tenant: Tenant, **objects) -> None:
    for name, obj in objects.items():
        if obj is not None and obj.tenant_id != tenant.pk:
            raise ValidationError({name: f"That {name} does not exist."})


def _build(
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
) -> Activity:
    """A validated, unsaved activity (tenant of every related object checked)."""
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
    activity.full_clean(exclude=RELATION_FIELDS)
    return activity


@transaction.atomic
def activity_log(*, tenant: Tenant, **fields) -> tuple[Activity, bool]:
    """Create one activity; returns ``(activity, created)``. Fields as in :func:`_build`.

    With a ``dedup_key`` the write is idempotent: a second call with the same key returns the existing
    row (also when it was deleted: a deleted activity is never resurrected by a retry or a re-sync).
    The account defaults to the contact's account so account timelines roll up their contacts.
    """
    activity = _build(tenant=tenant, **fields)
    dedup_key = activity.dedup_key
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


@transaction.atomic
def activity_log_many(*, tenant: Tenant, entries: list[dict]) -> int:
    """Bulk :func:`activity_log` for system ingestion (mail sync batches): the same validation, one
    ``INSERT ... ON CONFLICT DO NOTHING`` on (tenant, dedup_key). Every entry needs a dedup_key; keys
    already stored (deleted ones included) are skipped. Returns how many activities were new."""
    activities = [_build(tenant=tenant, **entry) for entry in entries]
    if any(a.dedup_key is None for a in activities):
        raise ValueError("activity_log_many needs a dedup_key on every entry")
    keys = [a.dedup_key for a in activities]
    stored = set(
        Activity.objects.for_tenant(tenant).filter(dedup_key__in=keys).values_list("dedup_key", flat=True)
    )
    fresh, seen = [], set(stored)
    for activity in activities:
        if activity.dedup_key not in seen:
            seen.add(activity.dedup_key)
            fresh.append(activity)
    Activity.objects.bulk_create(fresh, ignore_conflicts=True)  # a concurrent writer's key: ignored
    return len(fresh)


# --- editing, deleting and restoring (manual entries; the audit record is crm.ActivityAuditEntry) ----------

EDITABLE_FIELDS = (
    "type",
    "direction",
    "summary",
    "body",
    "occurred_at",
    "duration_seconds",
    "due_at",
    "done",
    "contact",
    "lead",
    "account",
)


class ActivityPermissionDenied(Exception):
    """The member may see the activity but not change it (views answer 403)."""


def is_manual(activity: Activity) -> bool:
    """A person's own entry: manual source and a type people log by hand. Everything else is automatic."""
    return activity.source == ActivitySource.MANUAL and activity.type in MANUAL_TYPES


def can_edit(membership, activity: Activity) -> bool:
    """The author edits their own manual activities; admins any of the tenant's; managers their teams'."""
    if activity.tenant_id != membership.tenant_id or activity.is_deleted or not is_manual(activity):
        return False
    if membership.is_admin:
        return True
    if activity.created_by_id is not None and activity.created_by_id == membership.user_id:
        return True
    if membership.is_manager:
        from crm import visibility

        return activity.team_id is not None and activity.team_id in visibility.team_ids(membership)
    return False


def can_delete(membership, activity: Activity) -> bool:
    """Whoever may edit a manual entry may delete it; admins may also clean up automatic entries."""
    if activity.tenant_id != membership.tenant_id or activity.is_deleted:
        return False
    return membership.is_admin or can_edit(membership, activity)


def can_restore(membership, activity: Activity) -> bool:
    return activity.tenant_id == membership.tenant_id and membership.is_admin and activity.is_deleted


def _audit(*, activity: Activity, action: str, actor, details: dict) -> None:
    from crm.models import ActivityAuditEntry

    ActivityAuditEntry.objects.create(
        tenant_id=activity.tenant_id,
        activity=activity,
        action=action,
        actor=actor,
        at=timezone.now(),
        details=details,
    )


def _locked(activity: Activity) -> Activity:
    return Activity.objects.for_tenant(activity.tenant_id).select_for_update().get(pk=activity.pk)


def _plain(value):
    if isinstance(value, models.Model):
        return {"id": value.pk, "name": str(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    return value


@transaction.atomic
def activity_update(*, membership, activity: Activity, changes: dict) -> Activity:
    """Apply ``changes`` (only :data:`EDITABLE_FIELDS`; anything else is refused) to a manual activity.

    Raises ActivityPermissionDenied when the member may not edit it, ValidationError on bad values.
    Writes one "edited" audit entry listing every field's from/to; a save without a change writes nothing.
    """
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValidationError({name: "This field cannot be changed." for name in sorted(unknown)})
    activity = _locked(activity)
    if not can_edit(membership, activity):
        raise ActivityPermissionDenied("You may not edit this activity.")
    tenant = membership.tenant
    _check_same_tenant(
        tenant, contact=changes.get("contact"), lead=changes.get("lead"), account=changes.get("account")
    )
    if "type" in changes and changes["type"] not in MANUAL_TYPES:
        raise ValidationError({"type": "Pick a call, note, meeting or task."})
    diff = {}
    for name, new in changes.items():
        old = getattr(activity, name)
        if old != new:
            diff[name] = [_plain(old), _plain(new)]
            setattr(activity, name, new)
    if not diff:
        return activity
    activity.full_clean(exclude=RELATION_FIELDS)
    activity.save(update_fields=[*diff.keys(), "updated_at"])
    _audit(activity=activity, action="edited", actor=membership.user, details={"changes": diff})
    return activity


@transaction.atomic
def activity_delete(*, membership, activity: Activity) -> Activity:
    """Soft delete: the row leaves every view (the feed reads ``deleted_at IS NULL``) and an audit entry
    records who deleted what and when. Raises ActivityPermissionDenied when not allowed."""
    activity = _locked(activity)
    if not can_delete(membership, activity):
        raise ActivityPermissionDenied("You may not delete this activity.")
    activity.deleted_at = timezone.now()
    activity.deleted_by = membership.user
    activity.save(update_fields=["deleted_at", "deleted_by", "updated_at"])
    _audit(
        activity=activity,
        action="deleted",
        actor=membership.user,
        details={"type": activity.type, "summary": activity.summary[:200], "source": activity.source},
    )
    return activity


@transaction.atomic
def activity_restore(*, membership, activity: Activity) -> Activity:
    """Admins bring a deleted activity back; a second audit entry records the restore."""
    activity = _locked(activity)
    if not can_restore(membership, activity):
        raise ActivityPermissionDenied("Only admins may restore deleted activities.")
    deleted_at, deleted_by_id = activity.deleted_at, activity.deleted_by_id
    activity.deleted_at = None
    activity.deleted_by = None
    activity.save(update_fields=["deleted_at", "deleted_by", "updated_at"])
    _audit(
        activity=activity,
        action="restored",
        actor=membership.user,
        details={"was_deleted_at": deleted_at.isoformat(), "was_deleted_by": deleted_by_id},
    )
    return activity

"""Writes of the core domain that the audit trail describes: lead conversion, contact updates, API keys.

Each service logs its activity through ``activities.services.activity_log`` in the same transaction as
the change it describes, so a change and its record commit (or roll back) together.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from activities.models import Activity, ActivityType
from activities.services import activity_log

from . import rls

from .models import (
    Account,
    ApiKey,
    Contact,
    ContactStatus,
    Lead,
    LeadStatus,
    Membership,
    Team,
    Tenant,
)

# --- lead conversion ---------------------------------------------------------------------------------


class LeadAlreadyConverted(ValidationError):
    pass


@dataclass
class Conversion:
    lead: Lead
    contact: Contact
    account: Account | None
    activity: Activity
    linked_existing_contact: bool


def normalise_email(value: str) -> str:
    return (value or "").strip().lower()


def normalise_phone(value: str) -> str:
    digits = "".join(ch for ch in (value or "") if ch.isdigit())
    return f"+{digits}" if digits else ""


@transaction.atomic
def lead_convert(
    *,
    tenant: Tenant,
    actor,
    lead: Lead,
    account: Account | None = None,
    create_account_name: str = "",
) -> Conversion:
    """Convert ``lead`` into a contact (an existing contact of the tenant with the lead's email address is
    linked instead of creating a duplicate), optionally with an account (an existing one, or a new one
    named ``create_account_name``), mark the lead converted and log one ``lead_conversion`` activity that
    carries both the contact and the lead, so it appears once on each timeline (the contact's timeline
    also shows the converted lead's history: fatfreecrm #224, SuiteCRM #10791 lost it).

    A lead converts once: the lead row is locked, and a second conversion raises LeadAlreadyConverted.
    """
    if lead.tenant_id != tenant.pk:
        raise ValidationError({"lead": "That lead does not exist."})
    if account is not None and account.tenant_id != tenant.pk:
        raise ValidationError({"account": "That account does not exist."})
    create_account_name = (create_account_name or "").strip()
    if account is not None and create_account_name:
        raise ValidationError(
            {"create_account_name": "Pick an existing account or name a new one, not both."}
        )
    if len(create_account_name) > 200:
        raise ValidationError({"create_account_name": "At most 200 characters."})

    lead = Lead.objects.for_tenant(tenant).select_for_update().get(pk=lead.pk)
    if lead.converted_at is not None or lead.status == LeadStatus.CONVERTED:
        raise LeadAlreadyConverted(
            {"lead": f"This lead was already converted on {lead.converted_at:%Y-%m-%d %H:%M}."}
            if lead.converted_at
            else {"lead": "This lead was already converted."}
        )

    if create_account_name:
        account = Account.objects.create(
            tenant=tenant, name=create_account_name, owner=lead.owner, team=lead.team
        )

    email = normalise_email(lead.email)
    contact = None
    if email:
        contact = (
            Contact.objects.for_tenant(tenant)
            .filter(emails__contains=[email])
            .select_for_update()
            .order_by("id")
            .first()
        )
    linked = contact is not None
    if contact is None:
        phone = normalise_phone(lead.phone)
        contact = Contact(
            tenant=tenant,
            name=lead.name,
            emails=[email] if email else [],
            phones=[phone] if phone else [],
            owner=lead.owner,
            team=lead.team,
            account=account,
            status=ContactStatus.PROSPECT,
        )
        contact.full_clean(exclude=["tenant", "owner", "team", "account"])
        contact.save()
    elif account is not None and contact.account_id is None:
        contact.account = account
        contact.save(update_fields=["account", "updated_at"])

    now = timezone.now()
    lead.status = LeadStatus.CONVERTED
    lead.converted_contact = contact
    lead.converted_account = account
    lead.converted_at = now
    lead.converted_by = actor
    lead.save(
        update_fields=[
            "status",
            "converted_contact",
            "converted_account",
            "converted_at",
            "converted_by",
            "updated_at",
        ]
    )

    what = "linked to existing contact" if linked else "converted to contact"
    summary = f"Lead {lead.name} {what} {contact.name}"
    if account is not None:
        summary += f" ({account.name})"
    activity, _ = activity_log(
        tenant=tenant,
        actor=actor,
        type=ActivityType.LEAD_CONVERSION,
        team=lead.team or contact.team,
        contact=contact,
        lead=lead,
        account=contact.account or account,
        summary=summary,
        occurred_at=now,
        dedup_key=f"lead_conversion:{lead.pk}",
        changes={
            "lead": {"id": lead.pk, "name": lead.name},
            "contact": {"id": contact.pk, "name": contact.name, "existing": linked},
            "account": {"id": account.pk, "name": account.name} if account else None,
        },
    )
    return Conversion(
        lead=lead, contact=contact, account=account, activity=activity, linked_existing_contact=linked
    )


# --- contact updates -----------------------------------------------------------------------------------

SIGNIFICANT_FIELDS = ("name", "emails", "phones", "owner", "team", "account", "status")
FIELD_LABELS = {
    "name": "name",
    "emails": "email",
    "phones": "phone",
    "owner": "owner",
    "team": "team",
    "account": "account",
    "status": "status",
}
MERGE_WINDOW = timedelta(minutes=10)


def _user_label(user) -> str:
    return (user.get_full_name() or user.email or user.username) if user else ""


def _display(name: str, value) -> str:
    if value is None:
        return ""
    if name in ("emails", "phones"):
        return ", ".join(value)
    if name == "owner":
        return _user_label(value)
    if name == "status":
        return ContactStatus(value).label if value in ContactStatus.values else str(value)
    return str(value)


def _comparable(name: str, value):
    if name in ("owner", "team", "account"):
        return value.pk if value is not None else None
    if name in ("emails", "phones"):
        return list(value or [])
    return value


def _summary(changes: dict) -> str:
    parts = [
        f"{FIELD_LABELS.get(name, name)}: {c['from'] or '—'} → {c['to'] or '—'}"
        for name, c in changes.items()
    ]
    return ("Contact updated: " + "; ".join(parts))[:500]


def _check_references(tenant: Tenant, data: dict) -> None:
    for name, model in (("team", Team), ("account", Account)):
        obj = data.get(name)
        if obj is not None and (not isinstance(obj, model) or obj.tenant_id != tenant.pk):
            raise ValidationError({name: f"That {name} does not exist."})
    owner = data.get("owner")
    if owner is not None:
        is_member = Membership.objects.for_tenant(tenant).active().filter(user_id=owner.pk).exists()
        if not is_member:
            raise ValidationError({"owner": "That user is not a member of this tenant."})


@transaction.atomic
def contact_update(*, tenant: Tenant, actor, contact: Contact, data: dict) -> tuple[Contact, Activity | None]:
    """Change a contact's significant fields and log what changed, from what to what.

    Edits by the same user within ten minutes of their entry (and with nobody else's update in
    between) merge into that one ``contact_update`` activity, keeping each field's original "from"; a
    field changed back to its original value drops out, and an entry whose changes all cancel out is
    removed. A save with no real change logs nothing. Returns ``(contact, activity or None)``.
    """
    unknown = set(data) - set(SIGNIFICANT_FIELDS)
    if unknown:
        raise ValidationError({name: "This field cannot be changed here." for name in sorted(unknown)})
    if contact.tenant_id != tenant.pk:
        raise ValidationError({"contact": "That contact does not exist."})
    _check_references(tenant, data)
    if "emails" in data:
        data["emails"] = list(dict.fromkeys(normalise_email(e) for e in data["emails"] if e.strip()))
    if "phones" in data:
        data["phones"] = list(dict.fromkeys(normalise_phone(p) for p in data["phones"] if normalise_phone(p)))

    contact = Contact.objects.for_tenant(tenant).select_for_update().get(pk=contact.pk)
    diff: dict[str, dict] = {}
    for name, new in data.items():
        old = getattr(contact, name)
        if _comparable(name, old) != _comparable(name, new):
            diff[name] = {
                "from": _display(name, old),
                "to": _display(name, new),
                "from_value": _comparable(name, old),
                "to_value": _comparable(name, new),
            }
            setattr(contact, name, new)
    if not diff:
        return contact, None
    contact.full_clean(exclude=["tenant", "owner", "team", "account"])
    contact.save(update_fields=[*diff.keys(), "updated_at"])

    now = timezone.now()
    latest = (
        Activity.objects.for_tenant(tenant)
        .alive()
        .filter(contact=contact, type=ActivityType.CONTACT_UPDATE)
        .select_for_update()
        .order_by("-occurred_at", "-id")
        .first()
    )
    if latest is not None and latest.created_by_id == actor.pk and latest.occurred_at >= now - MERGE_WINDOW:
        merged = dict(latest.changes or {})
        for name, change in diff.items():
            if name in merged:
                change = {**change, "from": merged[name]["from"], "from_value": merged[name]["from_value"]}
            if change["from_value"] == change["to_value"]:
                merged.pop(name, None)
            else:
                merged[name] = change
        if not merged:
            # Everything was changed back: the net change since the entry began is nothing.
            latest.delete()
            return contact, None
        latest.changes = merged
        latest.summary = _summary(merged)
        latest.team = contact.team
        latest.account = contact.account
        latest.save(update_fields=["changes", "summary", "team", "account", "updated_at"])
        return contact, latest

    activity, _ = activity_log(
        tenant=tenant,
        actor=actor,
        type=ActivityType.CONTACT_UPDATE,
        team=contact.team,
        contact=contact,
        account=contact.account,
        summary=_summary(diff),
        occurred_at=now,
        changes=diff,
    )
    return contact, activity


# --- API keys --------------------------------------------------------------------------------------------

API_KEY_PREFIX = "crm_"


def hash_api_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


@transaction.atomic
def api_key_create(*, tenant: Tenant, actor, name: str) -> tuple[ApiKey, str]:
    """Create a key; returns ``(api_key, raw_key)``. The raw key is never stored: show it once."""
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Give the key a name, e.g. the system that will use it."})
    if len(name) > 80:
        raise ValidationError({"name": "At most 80 characters."})
    raw = API_KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey.objects.create(
        tenant=tenant, name=name, prefix=raw[:12], key_hash=hash_api_key(raw), created_by=actor
    )
    return key, raw


@transaction.atomic
def api_key_revoke(*, tenant: Tenant, actor, api_key: ApiKey) -> ApiKey:
    key = ApiKey.objects.for_tenant(tenant).select_for_update().get(pk=api_key.pk)
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.revoked_by = actor
        key.save(update_fields=["revoked_at", "revoked_by", "updated_at"])
    return key


def api_key_authenticate(raw_key: str) -> ApiKey | None:
    """The active key matching ``raw_key`` (its tenant must be active), or None.

    Deliberately cross-tenant: the key itself names the tenant."""
    if not raw_key or not raw_key.startswith(API_KEY_PREFIX) or len(raw_key) > 200:
        return None
    digest = hash_api_key(raw_key)
    with rls.bypass():
        key = ApiKey.objects.select_related("tenant").filter(key_hash=digest).first()
    if key is None or not hmac.compare_digest(key.key_hash, digest):
        return None
    if key.revoked_at is not None or not key.tenant.is_active:
        return None
    rls.set_tenant(key.tenant_id)  # from here on the request acts for the key's tenant only
    return key


def api_key_touch(api_key: ApiKey) -> None:
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=timezone.now())

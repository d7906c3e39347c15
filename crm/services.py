"""Writes of the core domain: lead conversion, contact updates, API keys, members and teams.

Lead conversion and contact updates log their activity through ``activities.services.activity_log`` in the
same transaction as the change it describes, so a change and its record commit (or roll back) together.
Member and team changes are written to the "crm.members" log (there is no audit table for them).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Q
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
    Role,
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


# --- members and teams --------------------------------------------------------------------------------
#
# Rules (the views check them too, to answer 403 before showing a form; these are the ones that hold):
# - admins manage every member and team of their tenant;
# - managers add agents to their own teams, move agents of their teams among their own teams and change
#   their email permission; they never grant admin or manager, never change an admin, another manager or
#   themselves, never (de)activate anyone, and never create, rename or delete teams;
# - the tenant always keeps one active admin;
# - user accounts are global (a user may belong to several tenants): these services create a new user for
#   a new member and never change an existing user, so nobody can attach or alter another tenant's user.
# There is no audit table for membership changes; each change is written to the "crm.members" log with the
# actor, the member and what changed (never a password).

members_log = logging.getLogger("crm.members")

LAST_ADMIN = "This is the tenant's last active admin: make another member an admin first."
EMAIL_TAKEN = (
    "A user with this email address already exists, so it cannot be added here. "
    "Ask them to use another address, or ask your platform administrator."
)


class MemberPermissionDenied(PermissionDenied):
    pass


def _acting_membership(tenant: Tenant, actor) -> Membership:
    """The actor's active membership of ``tenant``, read fresh (a demoted actor loses rights at once)."""
    me = Membership.objects.for_tenant(tenant).active().filter(user_id=actor.pk).first()
    if me is None or not (me.is_admin or me.is_manager):
        raise MemberPermissionDenied("Only admins and managers manage members.")
    return me


def _own_team_ids(me: Membership) -> set[int]:
    from . import visibility

    return set(visibility.team_ids(me))


def member_editable(actor: Membership, target: Membership, *, target_team_ids=None) -> bool:
    """May ``actor`` change ``target``'s role, teams or email permission at all?"""
    if actor.tenant_id != target.tenant_id:
        return False
    if actor.is_admin:
        return True
    if not actor.is_manager or target.role != Role.AGENT or target.user_id == actor.user_id:
        return False
    if target_team_ids is None:
        target_team_ids = [team.pk for team in target.teams.all()]
    return bool(set(target_team_ids) & _own_team_ids(actor))


def member_activation_allowed(actor: Membership, target: Membership) -> bool:
    return actor.is_admin and actor.tenant_id == target.tenant_id


def _tenant_teams(tenant: Tenant, teams) -> list[Team]:
    teams = list(teams or [])
    if any(not isinstance(team, Team) or team.tenant_id != tenant.pk for team in teams):
        raise ValidationError({"teams": "That team does not exist."})
    return list({team.pk: team for team in teams}.values())


def _lock_active_admins(tenant: Tenant) -> set[int]:
    """Lock the tenant's active admin memberships (always first and in id order, so two concurrent changes
    cannot deadlock) and return their ids: a change that could leave no admin checks this set."""
    return set(
        Membership.objects.for_tenant(tenant)
        .filter(role=Role.ADMIN, is_active=True)
        .select_for_update()
        .order_by("id")
        .values_list("id", flat=True)
    )


def _log_member(event: str, *, tenant: Tenant, actor, membership: Membership, changes: dict) -> None:
    members_log.info(
        "%s: member %s (user %s) of tenant %s by user %s: %s",
        event,
        membership.pk,
        membership.user_id,
        tenant.pk,
        actor.pk,
        changes,
    )


@transaction.atomic
def membership_create(
    *,
    tenant: Tenant,
    actor,
    email: str,
    password: str,
    first_name: str = "",
    last_name: str = "",
    role: str = Role.AGENT,
    teams=(),
    can_manage_email: bool = False,
) -> Membership:
    """Create a user and their membership of ``tenant``. An email address already used by any user (of this
    tenant or another) is refused: existing users are never attached or changed from here."""
    me = _acting_membership(tenant, actor)
    email = normalise_email(email)
    try:
        validate_email(email)
    except ValidationError:
        raise ValidationError({"email": "Enter a valid email address."}) from None
    if role not in Role.values:
        raise ValidationError({"role": "Pick a role from the list."})
    teams = _tenant_teams(tenant, teams)
    if not me.is_admin:
        if role != Role.AGENT:
            raise MemberPermissionDenied("Managers add agents only.")
        if not teams:
            raise ValidationError({"teams": "Pick at least one of your teams."})
        if not {team.pk for team in teams} <= _own_team_ids(me):
            raise MemberPermissionDenied("Managers add agents to their own teams only.")

    user_model = get_user_model()
    # Deliberately across tenants: user accounts are global. Only "exists" is revealed, never where.
    existing = (
        user_model._default_manager.filter(Q(email__iexact=email) | Q(username__iexact=email))
        .only("pk")
        .first()
    )
    if existing is not None:
        own = Membership.objects.for_tenant(tenant).filter(user_id=existing.pk).only("is_active").first()
        if own is not None and own.is_active:
            raise ValidationError({"email": "This person is already a member of this tenant."})
        if own is not None:
            raise ValidationError(
                {"email": "This person is a removed member of this tenant: reactivate them from the list."}
            )
        raise ValidationError({"email": EMAIL_TAKEN})

    user = user_model(
        username=email,
        email=email,
        first_name=(first_name or "").strip(),
        last_name=(last_name or "").strip(),
    )
    try:
        password_validation.validate_password(password or "", user)
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from None
    user.set_password(password)
    try:
        user.full_clean(exclude=["password", "username"])
    except ValidationError as exc:
        raise ValidationError(exc.message_dict) from None
    if len(email) > user_model._meta.get_field("username").max_length:
        raise ValidationError({"email": "This email address is too long to sign in with."})
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:
        raise ValidationError({"email": EMAIL_TAKEN}) from None

    membership = Membership(tenant=tenant, user=user, role=role, can_manage_email=bool(can_manage_email))
    membership.full_clean(exclude=["tenant", "user", "teams"])
    membership.save()
    membership.teams.set(teams)
    _log_member(
        "member created",
        tenant=tenant,
        actor=actor,
        membership=membership,
        changes={
            "role": role,
            "teams": sorted(team.pk for team in teams),
            "can_manage_email": membership.can_manage_email,
        },
    )
    return membership


_UNSET = object()


@transaction.atomic
def membership_update(
    *,
    tenant: Tenant,
    actor,
    membership: Membership,
    role=_UNSET,
    teams=_UNSET,
    can_manage_email=_UNSET,
) -> Membership:
    """Change a member's role, teams (the full new list) and email permission; arguments left out stay.

    Managers may only move agents of their teams among their own teams (teams outside theirs are kept by
    the caller) and change their email permission. Demoting the last active admin is refused."""
    if membership.tenant_id != tenant.pk:
        raise ValidationError({"member": "That member does not exist."})
    admins = _lock_active_admins(tenant)
    me = _acting_membership(tenant, actor)
    target = Membership.objects.for_tenant(tenant).select_for_update().get(pk=membership.pk)
    old_team_ids = set(target.teams.values_list("id", flat=True))
    if not member_editable(me, target, target_team_ids=old_team_ids):
        raise MemberPermissionDenied("You may not change this member.")

    changes: dict[str, list] = {}
    if role is not _UNSET and role != target.role:
        if role not in Role.values:
            raise ValidationError({"role": "Pick a role from the list."})
        if not me.is_admin:
            raise MemberPermissionDenied("Managers cannot change roles.")
        if target.pk in admins and not (admins - {target.pk}):
            raise ValidationError({"role": LAST_ADMIN})
        changes["role"] = [target.role, role]
        target.role = role
    if can_manage_email is not _UNSET and bool(can_manage_email) != target.can_manage_email:
        changes["can_manage_email"] = [target.can_manage_email, bool(can_manage_email)]
        target.can_manage_email = bool(can_manage_email)
    if changes:
        target.full_clean(exclude=["tenant", "user", "teams"])
        target.save(update_fields=[*changes.keys(), "updated_at"])
    if teams is not _UNSET:
        teams = _tenant_teams(tenant, teams)
        new_team_ids = {team.pk for team in teams}
        if not me.is_admin and not (new_team_ids ^ old_team_ids) <= _own_team_ids(me):
            raise MemberPermissionDenied("Managers move members among their own teams only.")
        if new_team_ids != old_team_ids:
            target.teams.set(teams)
            changes["teams"] = [sorted(old_team_ids), sorted(new_team_ids)]
            if "role" not in changes and "can_manage_email" not in changes:
                target.save(update_fields=["updated_at"])
    if changes:
        _log_member("member updated", tenant=tenant, actor=actor, membership=target, changes=changes)
    return target


def _set_active(*, tenant: Tenant, actor, membership: Membership, active: bool) -> Membership:
    if membership.tenant_id != tenant.pk:
        raise ValidationError({"member": "That member does not exist."})
    admins = _lock_active_admins(tenant)
    me = _acting_membership(tenant, actor)
    target = Membership.objects.for_tenant(tenant).select_for_update().get(pk=membership.pk)
    if not member_activation_allowed(me, target):
        raise MemberPermissionDenied("Only admins add back or remove members.")
    if target.is_active == active:
        return target
    if not active and target.pk in admins and not (admins - {target.pk}):
        raise ValidationError({"member": LAST_ADMIN})
    target.is_active = active
    target.save(update_fields=["is_active", "updated_at"])
    _log_member(
        "member reactivated" if active else "member removed",
        tenant=tenant,
        actor=actor,
        membership=target,
        changes={"is_active": [not active, active]},
    )
    return target


@transaction.atomic
def membership_deactivate(*, tenant: Tenant, actor, membership: Membership) -> Membership:
    """Remove a member from the tenant (the row stays, inactive). The middleware reads memberships on every
    request, so every session of theirs loses the tenant on its next request. Admins only; the last active
    admin cannot be removed."""
    return _set_active(tenant=tenant, actor=actor, membership=membership, active=False)


@transaction.atomic
def membership_reactivate(*, tenant: Tenant, actor, membership: Membership) -> Membership:
    return _set_active(tenant=tenant, actor=actor, membership=membership, active=True)


def _team_admin(tenant: Tenant, actor) -> Membership:
    me = _acting_membership(tenant, actor)
    if not me.is_admin:
        raise MemberPermissionDenied("Only admins manage teams.")
    return me


def _clean_team_name(tenant: Tenant, name: str, *, exclude_pk=None) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise ValidationError({"name": "Give the team a name."})
    if len(name) > Team._meta.get_field("name").max_length:
        raise ValidationError({"name": f"At most {Team._meta.get_field('name').max_length} characters."})
    clash = Team.objects.for_tenant(tenant).filter(name__iexact=name)
    if exclude_pk is not None:
        clash = clash.exclude(pk=exclude_pk)
    if clash.exists():
        raise ValidationError({"name": "A team with this name already exists."})
    return name


def _save_team(team: Team, **kwargs) -> None:
    try:
        with transaction.atomic():
            team.save(**kwargs)
    except IntegrityError:
        raise ValidationError({"name": "A team with this name already exists."}) from None


@transaction.atomic
def team_create(*, tenant: Tenant, actor, name: str) -> Team:
    _team_admin(tenant, actor)
    team = Team(tenant=tenant, name=_clean_team_name(tenant, name))
    team.full_clean(exclude=["tenant"], validate_constraints=False)
    _save_team(team)
    members_log.info("team created: team %s of tenant %s by user %s", team.pk, tenant.pk, actor.pk)
    return team


@transaction.atomic
def team_rename(*, tenant: Tenant, actor, team: Team, name: str) -> Team:
    _team_admin(tenant, actor)
    if team.tenant_id != tenant.pk:
        raise ValidationError({"team": "That team does not exist."})
    team = Team.objects.for_tenant(tenant).select_for_update().get(pk=team.pk)
    name = _clean_team_name(tenant, name, exclude_pk=team.pk)
    if name != team.name:
        old, team.name = team.name, name
        team.full_clean(exclude=["tenant"], validate_constraints=False)
        _save_team(team, update_fields=["name", "updated_at"])
        members_log.info(
            "team renamed: team %s of tenant %s by user %s: %r -> %r", team.pk, tenant.pk, actor.pk, old, name
        )
    return team


@transaction.atomic
def team_delete(*, tenant: Tenant, actor, team: Team) -> None:
    """Delete a team nothing uses (no member, contact, lead, account, activity, queue, mailbox...): deleting
    a used team would silently empty those rows' team and change who sees them."""
    from .selectors import team_usage

    _team_admin(tenant, actor)
    if team.tenant_id != tenant.pk:
        raise ValidationError({"team": "That team does not exist."})
    team = Team.objects.for_tenant(tenant).select_for_update().get(pk=team.pk)
    used_by = team_usage(team=team)
    if used_by:
        raise ValidationError(
            {"team": f"Team {team.name} is still used by {', '.join(used_by)}: move them to another team."}
        )
    members_log.info(
        "team deleted: team %s (%r) of tenant %s by user %s", team.pk, team.name, tenant.pk, actor.pk
    )
    team.delete()

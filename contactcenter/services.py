"""Writes of the contact center. Channel events, the widget and the agents' pages all end up here.

The one rule that matters most: closing an interaction happens exactly once and, in the same
transaction, writes the ``closed_interactions`` row and the activity that stands for it in the feed
(``activity_log`` with ``dedup_key="interaction:<closed id>"``), then flags the row ``activity_logged``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from activities.models import Activity, ActivitySource, ActivityType, Direction
from activities.services import activity_log
from crm import crypto
from crm.models import Contact, Membership, Team, Tenant

from .models import (
    CHANNEL_ACTIVITY_TYPE,
    Channel,
    ChannelSecret,
    ClosedInteraction,
    Interaction,
    InteractionMessage,
    InteractionStatus,
    MessageKind,
    Queue,
    Ticket,
    TicketStatus,
    WidgetChat,
    WidgetConfig,
)

MAX_MESSAGE_CHARS = 10_000
FIRST_MESSAGE_CHARS = 1_000
WIDGET_TOKEN_SALT = "contactcenter.widget.chat"  # noqa: S105 - a signing salt, not a secret


# --- Contacts ---------------------------------------------------------------------------------------


def normalise_phone(raw: str) -> str:
    """Digits with a leading + ("+1 (555) 010-0000" -> "+15550100000"); "" when not a phone number."""
    raw = (raw or "").strip()
    if raw.startswith("00"):
        raw = "+" + raw[2:]
    digits = re.sub(r"\D", "", raw)
    if not 5 <= len(digits) <= 20:
        return ""
    return "+" + digits


def normalise_email(raw: str) -> str:
    """Lower-cased address; "" when it is not a valid address."""
    value = (raw or "").strip().lower()
    try:
        validate_email(value)
    except ValidationError:
        return ""
    return value


def _advisory_lock(key: str) -> None:
    """Serialise concurrent writers of one logical key until the transaction ends."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [key])


@transaction.atomic
def contact_match_or_create(
    *, tenant: Tenant, phone: str = "", email: str = "", name: str = "", team: Team | None = None
) -> Contact | None:
    """The tenant's contact with this (normalised) phone or email, or a new one when unknown."""
    phone = normalise_phone(phone) if phone else ""
    email = normalise_email(email) if email else ""
    if not phone and not email:
        return None
    _advisory_lock(f"contact-match:{tenant.pk}:{phone}:{email}")
    contacts = Contact.objects.for_tenant(tenant).order_by("id")
    contact = None
    if phone:
        contact = contacts.filter(phones__contains=[phone]).first()
    if contact is None and email:
        contact = contacts.filter(emails__contains=[email]).first()
    if contact is not None:
        return contact
    contact = Contact(
        tenant=tenant,
        name=(name or "").strip()[:200] or email or phone,
        emails=[email] if email else [],
        phones=[phone] if phone else [],
        team=team,
    )
    contact.full_clean(exclude=["tenant", "team", "owner", "account"])
    contact.save()
    return contact


# --- Interactions -----------------------------------------------------------------------------------


def _locked(interaction: Interaction) -> Interaction:
    return Interaction.objects.select_for_update().get(pk=interaction.pk)


@transaction.atomic
def interaction_get_or_open(
    *,
    tenant: Tenant,
    channel: str,
    external_id: str,
    started_at: datetime,
    queue: Queue | None = None,
    direction: str = Direction.INBOUND,
    contact: Contact | None = None,
    agent=None,
) -> tuple[Interaction, bool]:
    """The interaction with this channel id, locked for update; opened (created) when new.

    Events may come out of order, so any event can open it; an earlier event time moves
    ``started_at`` back, and missing queue / contact / agent are filled in by later events.
    """
    created = False
    interaction = (
        Interaction.objects.for_tenant(tenant)
        .select_for_update()
        .filter(channel=channel, external_id=external_id)
        .first()
    )
    if interaction is None:
        try:
            with transaction.atomic():
                interaction = Interaction.objects.create(
                    tenant=tenant,
                    channel=channel,
                    external_id=external_id,
                    queue=queue,
                    team=queue.team if queue else None,
                    direction=direction,
                    contact=contact,
                    account=contact.account if contact else None,
                    agent=agent,
                    started_at=started_at,
                    last_event_at=started_at,
                )
                created = True
        except IntegrityError:  # a concurrent event opened it first
            interaction = (
                Interaction.objects.for_tenant(tenant)
                .select_for_update()
                .get(channel=channel, external_id=external_id)
            )
    if not created:
        fields = []
        if queue is not None and interaction.queue_id is None:
            interaction.queue = queue
            interaction.team = queue.team
            fields += ["queue", "team"]
        if contact is not None and interaction.contact_id is None:
            interaction.contact = contact
            interaction.account = contact.account
            fields += ["contact", "account"]
        if agent is not None and interaction.agent_id is None:
            interaction.agent = agent
            fields.append("agent")
        if started_at < interaction.started_at:
            interaction.started_at = started_at
            fields.append("started_at")
        if interaction.last_event_at is None or started_at > interaction.last_event_at:
            interaction.last_event_at = started_at
            fields.append("last_event_at")
        if fields:
            interaction.save(update_fields=[*fields, "updated_at"])
            if interaction.status == InteractionStatus.CLOSED:
                _closed_refresh(interaction)
    return interaction, created


def _message_stats(interaction: Interaction) -> tuple[int, str]:
    messages = InteractionMessage.objects.for_tenant(interaction.tenant_id).filter(
        interaction=interaction, kind=MessageKind.MESSAGE
    )
    count = messages.count()
    first = messages.order_by("sent_at", "id").values_list("text", flat=True).first() or ""
    return count, first[:FIRST_MESSAGE_CHARS]


def _closed_refresh(interaction: Interaction) -> None:
    """Bring a closed row (and its activity) up to date after a late event: a message stored after the
    close, or an opening event that moved the start back."""
    closed = (
        ClosedInteraction.objects.for_tenant(interaction.tenant_id).filter(interaction=interaction).first()
    )
    if closed is None:
        return
    count, first = _message_stats(interaction)
    closed.message_count = count
    closed.first_message = first
    closed.started_at = interaction.started_at
    closed.duration_seconds = max(0, int((closed.closed_at - interaction.started_at).total_seconds()))
    closed.contact = closed.contact or interaction.contact
    closed.save(update_fields=["message_count", "first_message", "started_at", "duration_seconds", "contact"])
    Activity.objects.for_tenant(interaction.tenant_id).filter(dedup_key=f"interaction:{closed.pk}").update(
        first_message=first,
        occurred_at=closed.started_at,
        duration_seconds=closed.duration_seconds,
        contact=closed.contact,
        updated_at=timezone.now(),
    )


@transaction.atomic
def message_add(
    *,
    tenant: Tenant,
    interaction: Interaction,
    text: str,
    sent_at: datetime,
    direction: str = Direction.INBOUND,
    kind: str = MessageKind.MESSAGE,
    author_name: str = "",
    author_user=None,
    external_id: str | None = None,
) -> tuple[InteractionMessage, bool]:
    """Store one message (idempotent on ``external_id``). A message that arrives after the close is
    stored too, and the closed row's count and first message follow it."""
    if interaction.tenant_id != tenant.pk:
        raise ValidationError({"interaction": "That interaction does not exist."})
    if len(text) > MAX_MESSAGE_CHARS:
        raise ValidationError({"text": f"A message can have at most {MAX_MESSAGE_CHARS} characters."})
    interaction = _locked(interaction)
    if external_id:
        existing = (
            InteractionMessage.objects.for_tenant(tenant)
            .filter(interaction=interaction, external_id=external_id)
            .first()
        )
        if existing is not None:
            return existing, False
    message = InteractionMessage.objects.create(
        tenant=tenant,
        interaction=interaction,
        external_id=external_id or None,
        kind=kind,
        direction=direction,
        author_name=author_name[:200],
        author_user=author_user,
        text=text,
        sent_at=sent_at,
    )
    fields = []
    if interaction.last_event_at is None or sent_at > interaction.last_event_at:
        interaction.last_event_at = sent_at
        fields.append("last_event_at")
    if sent_at < interaction.started_at:
        interaction.started_at = sent_at
        fields.append("started_at")
    if fields:
        interaction.save(update_fields=[*fields, "updated_at"])
    if interaction.status == InteractionStatus.CLOSED:
        _closed_refresh(interaction)
    return message, True


def _default_summary(interaction: Interaction) -> str:
    label = Channel(interaction.channel).label
    if interaction.contact_id:
        return f"{label} with {interaction.contact.name}"[:500]
    return f"{label} conversation"


@transaction.atomic
def interaction_close(
    *,
    tenant: Tenant,
    interaction: Interaction,
    closed_at: datetime | None = None,
    summary: str = "",
    actor=None,
) -> tuple[ClosedInteraction, bool]:
    """Close an interaction exactly once: the ``closed_interactions`` row and its activity in one
    transaction. A second close (repeated or concurrent event, both sides ending a chat) returns the
    existing row."""
    if interaction.tenant_id != tenant.pk:
        raise ValidationError({"interaction": "That interaction does not exist."})
    interaction = _locked(interaction)
    existing = ClosedInteraction.objects.for_tenant(tenant).filter(interaction=interaction).first()
    if existing is not None:
        return existing, False
    closed_at = closed_at or timezone.now()
    closed_at = max(closed_at, interaction.started_at)
    count, first = _message_stats(interaction)
    closed = ClosedInteraction(
        tenant=tenant,
        interaction=interaction,
        queue=interaction.queue,
        channel=interaction.channel,
        agent=interaction.agent,
        team=interaction.team,
        contact=interaction.contact,
        lead=interaction.lead,
        account=interaction.account,
        direction=interaction.direction,
        summary=(summary or _default_summary(interaction))[:500],
        first_message=first,
        message_count=count,
        started_at=interaction.started_at,
        closed_at=closed_at,
        duration_seconds=max(0, int((closed_at - interaction.started_at).total_seconds())),
    )
    closed.save()
    activity_log(
        tenant=tenant,
        actor=actor,
        type=CHANNEL_ACTIVITY_TYPE[interaction.channel],
        source=ActivitySource.INTERACTION,
        direction=interaction.direction,
        agent=interaction.agent,
        team=interaction.team,
        contact=interaction.contact,
        lead=interaction.lead,
        account=interaction.account,
        summary=closed.summary,
        first_message=first,
        source_object=closed,
        dedup_key=f"interaction:{closed.pk}",
        occurred_at=interaction.started_at,
        duration_seconds=closed.duration_seconds,
    )
    closed.activity_logged = True
    closed.save(update_fields=["activity_logged"])
    interaction.status = InteractionStatus.CLOSED
    interaction.last_event_at = max(interaction.last_event_at or closed_at, closed_at)
    interaction.save(update_fields=["status", "last_event_at", "updated_at"])
    return closed, True


@transaction.atomic
def interaction_transfer(
    *,
    tenant: Tenant,
    interaction: Interaction,
    occurred_at: datetime,
    queue: Queue | None = None,
    agent=None,
    note: str = "",
    external_id: str | None = None,
) -> InteractionMessage:
    """Move an open interaction to another queue and/or agent; the transfer is a system note either way
    (a transfer that arrives after the close only leaves the note)."""
    interaction = _locked(interaction)
    if interaction.status == InteractionStatus.OPEN:
        fields = []
        if queue is not None:
            interaction.queue = queue
            interaction.team = queue.team
            fields += ["queue", "team"]
        if agent is not None:
            interaction.agent = agent
            fields.append("agent")
        if fields:
            interaction.save(update_fields=[*fields, "updated_at"])
    parts = []
    if queue is not None:
        parts.append(f"queue {queue.name}")
    if agent is not None:
        parts.append(agent.get_full_name() or agent.email)
    text = "Transferred" + (" to " + " / ".join(parts) if parts else "")
    if note:
        text += f": {note}"
    message, _ = message_add(
        tenant=tenant,
        interaction=interaction,
        text=text[:MAX_MESSAGE_CHARS],
        sent_at=occurred_at,
        direction=Direction.NONE,
        kind=MessageKind.SYSTEM,
        external_id=external_id,
    )
    return message


# --- Channel secrets --------------------------------------------------------------------------------


def _new_secret() -> tuple[str, str]:
    return "ck_" + secrets.token_hex(12), secrets.token_urlsafe(32)


@transaction.atomic
def channel_secret_create(*, tenant: Tenant, label: str = "") -> tuple[ChannelSecret, str]:
    """A new signing secret; returns ``(row, plaintext)``. The plaintext is never shown again."""
    key_id, secret = _new_secret()
    row = ChannelSecret.objects.create(
        tenant=tenant, key_id=key_id, secret_encrypted=crypto.encrypt(secret), label=label[:120]
    )
    return row, secret


@transaction.atomic
def channel_secret_rotate(*, tenant: Tenant, label: str = "") -> tuple[ChannelSecret, str]:
    """Revoke the tenant's active secrets and issue a new one."""
    ChannelSecret.objects.for_tenant(tenant).filter(is_active=True).update(
        is_active=False, updated_at=timezone.now()
    )
    return channel_secret_create(tenant=tenant, label=label)


def signature_for(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over ``f"{timestamp}.{body}"``, hex."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


# --- Widget -----------------------------------------------------------------------------------------


@transaction.atomic
def widget_config_create(
    *, tenant: Tenant, queue: Queue, allowed_origins: list[str], name: str = "Website chat"
) -> WidgetConfig:
    if queue.tenant_id != tenant.pk:
        raise ValidationError({"queue": "That queue does not exist."})
    if queue.channel != Channel.WEBCHAT:
        raise ValidationError({"queue": "The widget needs a web chat queue."})
    widget = WidgetConfig(
        tenant=tenant,
        queue=queue,
        name=name,
        public_key="wk_" + secrets.token_urlsafe(18),
        allowed_origins=[o.rstrip("/") for o in allowed_origins],
    )
    widget.full_clean(exclude=["tenant", "queue"])
    widget.save()
    return widget


def _nonce_hash(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


def widget_token(chat: WidgetChat, nonce: str) -> str:
    return signing.dumps({"c": chat.pk, "w": chat.widget_id, "n": nonce}, salt=WIDGET_TOKEN_SALT)


def widget_chat_for_token(*, widget: WidgetConfig, chat_id: int, token: str) -> WidgetChat | None:
    """The chat this token was issued for, if it is ``chat_id`` of this widget; else None."""
    try:
        data = signing.loads(token or "", salt=WIDGET_TOKEN_SALT)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or data.get("c") != chat_id or data.get("w") != widget.pk:
        return None
    chat = (
        WidgetChat.objects.for_tenant(widget.tenant_id)
        .select_related("interaction")
        .filter(pk=chat_id, widget=widget)
        .first()
    )
    if chat is None or not hmac.compare_digest(chat.nonce_hash, _nonce_hash(str(data.get("n", "")))):
        return None
    return chat


@dataclass
class StartedChat:
    chat: WidgetChat
    token: str


@transaction.atomic
def widget_chat_start(*, widget: WidgetConfig, name: str, email: str, text: str = "") -> StartedChat:
    """A visitor starts a chat: the contact is matched by email (or created), an open web chat
    interaction is created in the widget's queue, the first message stored."""
    errors = {}
    name = (name or "").strip()
    email_n = normalise_email(email)
    if not name:
        errors["name"] = "Please enter your name."
    elif len(name) > 200:
        errors["name"] = "A name can have at most 200 characters."
    if not email_n:
        errors["email"] = "Please enter a valid email address."
    if len(text or "") > MAX_MESSAGE_CHARS:
        errors["text"] = f"A message can have at most {MAX_MESSAGE_CHARS} characters."
    if errors:
        raise ValidationError(errors)
    tenant = widget.tenant
    queue = widget.queue
    now = timezone.now()
    contact = contact_match_or_create(tenant=tenant, email=email_n, name=name, team=queue.team)
    interaction, _ = interaction_get_or_open(
        tenant=tenant,
        channel=Channel.WEBCHAT,
        external_id="widget-" + secrets.token_hex(12),
        started_at=now,
        queue=queue,
        direction=Direction.INBOUND,
        contact=contact,
    )
    nonce = secrets.token_urlsafe(24)
    chat = WidgetChat.objects.create(
        tenant=tenant,
        widget=widget,
        interaction=interaction,
        visitor_name=name,
        visitor_email=email_n,
        nonce_hash=_nonce_hash(nonce),
    )
    if text and text.strip():
        message_add(tenant=tenant, interaction=interaction, text=text.strip(), sent_at=now, author_name=name)
    return StartedChat(chat=chat, token=widget_token(chat, nonce))


def widget_visitor_message(*, chat: WidgetChat, text: str) -> InteractionMessage:
    text = (text or "").strip()
    if not text:
        raise ValidationError({"text": "Type a message first."})
    if chat.ended_at is not None or chat.interaction.status == InteractionStatus.CLOSED:
        raise ValidationError({"text": "This chat has ended."})
    message, _ = message_add(
        tenant=chat.interaction.tenant,
        interaction=chat.interaction,
        text=text,
        sent_at=timezone.now(),
        direction=Direction.INBOUND,
        author_name=chat.visitor_name,
    )
    return message


@transaction.atomic
def chat_end(*, interaction: Interaction, by: str, actor=None) -> ClosedInteraction:
    """Either side ends a web chat; the interaction is closed exactly once."""
    tenant = interaction.tenant
    interaction = _locked(interaction)
    if interaction.status == InteractionStatus.OPEN:
        message_add(
            tenant=tenant,
            interaction=interaction,
            text=f"Chat ended by {by}",
            sent_at=timezone.now(),
            direction=Direction.NONE,
            kind=MessageKind.SYSTEM,
        )
    closed, _ = interaction_close(tenant=tenant, interaction=interaction, actor=actor)
    WidgetChat.objects.for_tenant(tenant).filter(interaction=interaction, ended_at__isnull=True).update(
        ended_at=timezone.now()
    )
    return closed


@transaction.atomic
def agent_reply(*, tenant: Tenant, actor, interaction: Interaction, text: str) -> InteractionMessage:
    """An agent answers an open chat; the first agent to answer becomes the interaction's agent."""
    text = (text or "").strip()
    if not text:
        raise ValidationError({"text": "Type a reply first."})
    if len(text) > MAX_MESSAGE_CHARS:
        raise ValidationError({"text": f"A reply can have at most {MAX_MESSAGE_CHARS} characters."})
    interaction = _locked(interaction)
    if interaction.status != InteractionStatus.OPEN:
        raise ValidationError({"text": "This chat has ended."})
    if interaction.agent_id is None:
        interaction.agent = actor
        interaction.save(update_fields=["agent", "updated_at"])
    message, _ = message_add(
        tenant=tenant,
        interaction=interaction,
        text=text,
        sent_at=timezone.now(),
        direction=Direction.OUTBOUND,
        author_name=actor.get_full_name() or actor.email,
        author_user=actor,
    )
    return message


# --- Tickets ----------------------------------------------------------------------------------------


def _ticket_summary(ticket: Ticket, what: str) -> str:
    return f"Ticket #{ticket.pk} {what}: {ticket.subject}"[:500]


@transaction.atomic
def ticket_create(
    *,
    tenant: Tenant,
    actor,
    subject: str,
    description: str = "",
    contact: Contact | None = None,
    interaction: Interaction | None = None,
    assignee=None,
    team: Team | None = None,
) -> Ticket:
    for name, obj in {"contact": contact, "interaction": interaction, "team": team}.items():
        if obj is not None and obj.tenant_id != tenant.pk:
            raise ValidationError({name: f"That {name} does not exist."})
    if (
        assignee is not None
        and not Membership.objects.active().for_tenant(tenant).filter(user=assignee).exists()
    ):
        raise ValidationError({"assignee": "That user is not a member of this workspace."})
    if contact is None and interaction is not None:
        contact = interaction.contact
    ticket = Ticket(
        tenant=tenant,
        subject=(subject or "").strip(),
        description=description or "",
        contact=contact,
        interaction=interaction,
        assignee=assignee,
        team=team,
        created_by=actor,
    )
    ticket.full_clean(exclude=["tenant", "contact", "interaction", "assignee", "team", "created_by"])
    ticket.save()
    activity_log(
        tenant=tenant,
        actor=actor,
        type=ActivityType.TICKET,
        source=ActivitySource.MANUAL,
        agent=assignee or actor,
        team=team,
        contact=contact,
        summary=_ticket_summary(ticket, "opened"),
        body=ticket.description,
        source_object=ticket,
        dedup_key=f"ticket:{ticket.pk}:created",
        changes={"status": [None, ticket.status]},
    )
    return ticket


@transaction.atomic
def ticket_status_change(
    *, tenant: Tenant, actor, ticket: Ticket, status: str, expected_version: int | None = None
) -> Ticket:
    """Move a ticket to another status and log it. ``expected_version`` (from the form) rejects a
    change made from a stale page, so a double submit never logs twice."""
    if status not in TicketStatus.values:
        raise ValidationError({"status": "Pick one of open, pending, resolved, closed."})
    ticket = Ticket.objects.for_tenant(tenant).select_for_update().get(pk=ticket.pk)
    if expected_version is not None and expected_version != ticket.status_version:
        raise ValidationError({"status": "The ticket was changed meanwhile; reload and try again."})
    if status == ticket.status:
        raise ValidationError({"status": f"The ticket is already {ticket.get_status_display().lower()}."})
    old = ticket.status
    ticket.status = status
    ticket.status_version += 1
    ticket.save(update_fields=["status", "status_version", "updated_at"])
    activity_log(
        tenant=tenant,
        actor=actor,
        type=ActivityType.TICKET,
        source=ActivitySource.MANUAL,
        agent=actor,
        team=ticket.team,
        contact=ticket.contact,
        summary=_ticket_summary(
            ticket, f"{TicketStatus(old).label.lower()} → {ticket.get_status_display().lower()}"
        ),
        source_object=ticket,
        dedup_key=f"ticket:{ticket.pk}:status:{ticket.status_version}",
        changes={"status": [old, status]},
    )
    return ticket


def tenant_user(*, tenant: Tenant, email: str):
    """An active member of the tenant by email (for channel events naming an agent), else None."""
    user_model = get_user_model()
    return (
        user_model.objects.filter(
            email__iexact=(email or "").strip(),
            memberships__tenant=tenant,
            memberships__is_active=True,
        )
        .order_by("pk")
        .first()
    )

"""``POST /api/v1/contactcenter/events``: signed events from telephony and messaging channels.

Headers
  X-CRM-Key        the public key id of one of the tenant's channel secrets (names the tenant)
  X-CRM-Timestamp  Unix seconds; more than 5 minutes off the server clock is refused
  X-CRM-Signature  hex HMAC-SHA256 of f"{timestamp}.{raw body}" under that secret ("sha256=" prefix ok)

Body (JSON object)
  event_id         unique per tenant; a repeated event is acknowledged and ignored
  type             interaction.opened | message | transfer | interaction.closed
  channel          voice | sms | whatsapp | webchat
  interaction_id   the channel's id of the conversation
  occurred_at      ISO 8601 with a time zone
  queue_id         optional, one of the tenant's queues of that channel
  direction        optional, inbound | outbound (of the interaction / message)
  contact          optional {"phone", "email", "name"}: matched in the tenant, created when unknown
  agent_email      optional, an active member of the tenant
  message          for type message: {"id", "text", "direction", "author"}
  transfer         for type transfer: {"to_queue_id", "to_agent_email", "note"}
  summary          optional for interaction.closed

Errors are JSON ``{"error": "...", "field": "..."}``; nothing is written unless the whole event applies.
"""

from __future__ import annotations

import hmac
import json
import time

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import JsonResponse
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from activities.models import Direction
from crm import crypto, rls

from . import services
from .models import Channel, ChannelEvent, ChannelSecret, MessageKind, Queue

MAX_BODY_BYTES = 256 * 1024
MAX_SKEW_SECONDS = 300
EVENT_TYPES = ("interaction.opened", "message", "transfer", "interaction.closed")
EVENT_CHANNELS = (Channel.VOICE, Channel.SMS, Channel.WHATSAPP, Channel.WEBCHAT)


class EventError(Exception):
    def __init__(self, field: str, message: str, status: int = 400):
        super().__init__(message)
        self.field = field
        self.message = message
        self.status = status


def _error(status: int, message: str, field: str | None = None) -> JsonResponse:
    body = {"error": message}
    if field:
        body["field"] = field
    return JsonResponse(body, status=status)


def _authenticate(request) -> ChannelSecret:
    key_id = request.headers.get("X-CRM-Key", "")
    timestamp = request.headers.get("X-CRM-Timestamp", "")
    signature = request.headers.get("X-CRM-Signature", "").removeprefix("sha256=")
    if not key_id or not timestamp or not signature:
        raise EventError("signature", "Missing X-CRM-Key, X-CRM-Timestamp or X-CRM-Signature.", 401)
    try:
        ts = int(timestamp)
    except ValueError:
        raise EventError("signature", "X-CRM-Timestamp must be Unix seconds.", 401) from None
    if abs(time.time() - ts) > MAX_SKEW_SECONDS:
        raise EventError("signature", "Stale or future timestamp; sign the request again.", 401)
    # Deliberately cross-tenant lookup: the key id is what names the tenant of an unauthenticated call.
    with rls.bypass():
        secret_row = (
            ChannelSecret.objects.select_related("tenant")
            .filter(key_id=key_id, is_active=True, tenant__is_active=True)
            .first()
        )
    expected = services.signature_for(
        crypto.decrypt(secret_row.secret_encrypted) if secret_row else "no-such-key", timestamp, request.body
    )
    if secret_row is None or not hmac.compare_digest(expected, signature):
        raise EventError("signature", "Bad signature.", 401)
    rls.set_tenant(secret_row.tenant_id)  # the request now acts for the signer's tenant only
    return secret_row


def _str(data: dict, field: str, *, required: bool = False, max_len: int = 200, label: str | None = None):
    label = label or field
    value = data.get(field)
    if value is None or value == "":
        if required:
            raise EventError(label, f"{label} is required.")
        return ""
    if not isinstance(value, str):
        raise EventError(label, f"{label} must be a string.")
    if len(value) > max_len:
        raise EventError(
            label, f"{label} can have at most {max_len} characters.", 413 if max_len > 500 else 400
        )
    return value


def _direction(data: dict, field: str, label: str, default: str) -> str:
    value = data.get(field) or default
    if value not in (Direction.INBOUND, Direction.OUTBOUND):
        raise EventError(label, f"{label} must be inbound or outbound.")
    return value


def _queue(tenant, value, channel: str, label: str) -> Queue | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise EventError(label, f"{label} must be a queue id.")
    # Another tenant's queue and a missing one get the same answer.
    queue = Queue.objects.for_tenant(tenant).filter(pk=int(value)).first()
    if queue is None:
        raise EventError(label, f"Unknown queue {value}.")
    if queue.channel != channel:
        raise EventError(label, f"Queue {value} is a {queue.channel} queue, not {channel}.")
    return queue


def _agent(tenant, data: dict, field: str, label: str):
    email = _str(data, field, max_len=254, label=label)
    if not email:
        return None
    user = services.tenant_user(tenant=tenant, email=email)
    if user is None:
        raise EventError(label, f"{label} is not a member of this workspace.")
    return user


def parse_event(tenant, raw: bytes) -> dict:
    """Validate a whole event before anything is written."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise EventError("body", "The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise EventError("body", "The body must be a JSON object.")
    event = {
        "event_id": _str(data, "event_id", required=True),
        "type": _str(data, "type", required=True, max_len=40),
        "channel": _str(data, "channel", required=True, max_len=40),
        "interaction_id": _str(data, "interaction_id", required=True),
    }
    if event["type"] not in EVENT_TYPES:
        raise EventError("type", f"Unknown event type; use one of {', '.join(EVENT_TYPES)}.")
    if event["channel"] not in EVENT_CHANNELS:
        raise EventError("channel", f"Unknown channel; use one of {', '.join(EVENT_CHANNELS)}.")
    occurred = parse_datetime(_str(data, "occurred_at", required=True, max_len=64) or "")
    if occurred is None or occurred.tzinfo is None:
        raise EventError("occurred_at", "occurred_at must be an ISO 8601 time with a time zone.")
    event["occurred_at"] = occurred
    event["queue"] = _queue(tenant, data.get("queue_id"), event["channel"], "queue_id")
    event["direction"] = _direction(data, "direction", "direction", Direction.INBOUND)
    event["agent"] = _agent(tenant, data, "agent_email", "agent_email")
    contact = data.get("contact") or {}
    if not isinstance(contact, dict):
        raise EventError("contact", "contact must be an object.")
    phone = _str(contact, "phone", max_len=40, label="contact.phone")
    email = _str(contact, "email", max_len=254, label="contact.email")
    if phone and not services.normalise_phone(phone):
        raise EventError("contact.phone", "contact.phone is not a phone number.")
    if email and not services.normalise_email(email):
        raise EventError("contact.email", "contact.email is not an email address.")
    event["contact"] = {
        "phone": phone,
        "email": email,
        "name": _str(contact, "name", label="contact.name"),
    }
    if event["type"] == "message":
        message = data.get("message")
        if not isinstance(message, dict):
            raise EventError("message", "message must be an object.")
        event["message"] = {
            "id": _str(message, "id", label="message.id"),
            "text": _str(
                message, "text", required=True, max_len=services.MAX_MESSAGE_CHARS, label="message.text"
            ),
            "direction": _direction(message, "direction", "message.direction", event["direction"]),
            "author": _str(message, "author", label="message.author"),
        }
    if event["type"] == "transfer":
        transfer = data.get("transfer")
        if not isinstance(transfer, dict):
            raise EventError("transfer", "transfer must be an object.")
        event["transfer"] = {
            "queue": _queue(tenant, transfer.get("to_queue_id"), event["channel"], "transfer.to_queue_id"),
            "agent": _agent(tenant, transfer, "to_agent_email", "transfer.to_agent_email"),
            "note": _str(transfer, "note", max_len=500, label="transfer.note"),
        }
        if event["transfer"]["queue"] is None and event["transfer"]["agent"] is None:
            raise EventError("transfer", "A transfer names to_queue_id or to_agent_email.")
    event["summary"] = _str(data, "summary", max_len=500)
    return event


@transaction.atomic
def apply_event(tenant, event: dict) -> dict:
    """Apply one validated event; idempotent on ``event_id``."""
    record = ChannelEvent(tenant=tenant, event_id=event["event_id"], type=event["type"])
    try:
        with transaction.atomic():
            record.save()
    except IntegrityError:
        return {"status": "duplicate", "event_id": event["event_id"]}
    queue = event["queue"]
    contact_info = event["contact"]
    contact = services.contact_match_or_create(
        tenant=tenant,
        phone=contact_info["phone"],
        email=contact_info["email"],
        name=contact_info["name"],
        team=queue.team if queue else None,
    )
    interaction, _ = services.interaction_get_or_open(
        tenant=tenant,
        channel=event["channel"],
        external_id=event["interaction_id"],
        started_at=event["occurred_at"],
        queue=queue,
        direction=event["direction"],
        contact=contact,
        agent=event["agent"],
    )
    if event["type"] == "message":
        message = event["message"]
        services.message_add(
            tenant=tenant,
            interaction=interaction,
            text=message["text"],
            sent_at=event["occurred_at"],
            direction=message["direction"],
            kind=MessageKind.MESSAGE,
            author_name=message["author"]
            or (
                interaction.contact.name
                if message["direction"] == Direction.INBOUND and interaction.contact
                else ""
            ),
            external_id=message["id"] or f"event:{event['event_id']}",
        )
    elif event["type"] == "transfer":
        services.interaction_transfer(
            tenant=tenant,
            interaction=interaction,
            occurred_at=event["occurred_at"],
            queue=event["transfer"]["queue"],
            agent=event["transfer"]["agent"],
            note=event["transfer"]["note"],
            external_id=f"event:{event['event_id']}",
        )
    elif event["type"] == "interaction.closed":
        services.interaction_close(
            tenant=tenant, interaction=interaction, closed_at=event["occurred_at"], summary=event["summary"]
        )
    record.interaction = interaction
    record.save(update_fields=["interaction"])
    interaction.refresh_from_db(fields=["status"])
    return {
        "status": "applied",
        "event_id": event["event_id"],
        "interaction": interaction.external_id,
        "interaction_status": interaction.status,
    }


@csrf_exempt
@require_POST
def events(request):
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_BODY_BYTES or len(request.body) > MAX_BODY_BYTES:
        return _error(413, f"The body can have at most {MAX_BODY_BYTES} bytes.", "body")
    try:
        secret_row = _authenticate(request)
        event = parse_event(secret_row.tenant, request.body)
        result = apply_event(secret_row.tenant, event)
    except EventError as exc:
        return _error(exc.status, exc.message, exc.field)
    except ValidationError as exc:
        field, messages = (
            next(iter(exc.message_dict.items())) if hasattr(exc, "error_dict") else ("body", exc.messages)
        )
        return _error(400, " ".join(messages), field)
    return JsonResponse(result, status=200 if result["status"] == "duplicate" else 201)

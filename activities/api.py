"""The activities API: other systems record activities (source ``external`` or ``campaign``).

``POST /api/v1/activities``
  Authorization: Bearer <key>      a key an admin created on /settings/api-keys/ (names the tenant)
  Idempotency-Key: <1-150 chars>   the same key again returns the first activity (200), never a second;
                                   the same key with a different body is a 409
  Content-Type: application/json

Errors are JSON ``{"error": "...", "field": "..."}`` with a 4xx status; nothing is written unless the
whole request is valid. ``GET /api/v1/schema`` serves the OpenAPI description.
"""

from __future__ import annotations

import hashlib
import json
import re

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import JsonResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from crm import services as crm_services
from crm.models import Contact

from . import services
from .models import Activity, ActivitySource, ActivityType, Direction

MAX_BODY_BYTES = 64 * 1024
SUMMARY_MAX = 500
BODY_MAX = 10_000
FIRST_MESSAGE_MAX = 2_000
IDEMPOTENCY_KEY_MAX = 150
DURATION_MAX = 7 * 24 * 3600
API_TYPES = (
    ActivityType.CALL,
    ActivityType.EMAIL,
    ActivityType.SMS,
    ActivityType.WHATSAPP,
    ActivityType.CHAT,
    ActivityType.NOTE,
    ActivityType.MEETING,
    ActivityType.TASK,
)
API_SOURCES = (ActivitySource.EXTERNAL, ActivitySource.CAMPAIGN)
FIELDS = {
    "type",
    "source",
    "summary",
    "body",
    "first_message",
    "direction",
    "occurred_at",
    "duration_seconds",
    "contact_id",
    "contact_email",
}
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,%d}$" % IDEMPOTENCY_KEY_MAX)  # noqa: UP031


class ApiError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def _error(status: int, message: str, field: str | None = None) -> JsonResponse:
    body = {"error": message}
    if field:
        body["field"] = field
    response = JsonResponse(body, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="crm"'
    return response


def _authenticate(request):
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "Send your API key as 'Authorization: Bearer <key>'.", "Authorization")
    key = crm_services.api_key_authenticate(token.strip())
    if key is None:
        raise ApiError(401, "The API key is not valid or was revoked.", "Authorization")
    return key


def _text(payload: dict, name: str, *, limit: int, required: bool = False) -> str:
    value = payload.get(name)
    if value is None or value == "":
        if required:
            raise ApiError(400, f"{name} is required.", name)
        return ""
    if not isinstance(value, str):
        raise ApiError(400, f"{name} must be a string.", name)
    if len(value) > limit:
        raise ApiError(400, f"{name} is too long: at most {limit} characters.", name)
    if required and not value.strip():
        raise ApiError(400, f"{name} is required.", name)
    return value


def _contact(tenant, payload: dict) -> Contact:
    contact_id = payload.get("contact_id")
    email = payload.get("contact_email")
    if contact_id is None and not email:
        raise ApiError(400, "Reference the contact by contact_id or contact_email.", "contact_id")
    if contact_id is not None and email:
        raise ApiError(400, "Send either contact_id or contact_email, not both.", "contact_email")
    contacts = Contact.objects.for_tenant(tenant).select_related("account", "team")
    if contact_id is not None:
        if isinstance(contact_id, bool) or not isinstance(contact_id, int):
            raise ApiError(400, "contact_id must be an integer.", "contact_id")
        contact = contacts.filter(pk=contact_id).first()
        if contact is None:
            # Another tenant's contact is indistinguishable from a missing one.
            raise ApiError(400, "No contact with that id.", "contact_id")
        return contact
    if not isinstance(email, str) or len(email) > 254 or "@" not in email:
        raise ApiError(400, "contact_email must be an email address.", "contact_email")
    matches = list(contacts.filter(emails__contains=[email.strip().lower()]).order_by("id")[:2])
    if not matches:
        raise ApiError(400, "No contact with that email address.", "contact_email")
    if len(matches) > 1:
        raise ApiError(400, "More than one contact has that email address; use contact_id.", "contact_email")
    return matches[0]


def _parse(request) -> dict:
    content_type = request.content_type or ""
    if content_type != "application/json":
        raise ApiError(415, "Send the body as JSON with 'Content-Type: application/json'.", "Content-Type")
    if len(request.body) > MAX_BODY_BYTES:
        raise ApiError(413, f"The body is larger than {MAX_BODY_BYTES} bytes.", "body")
    try:
        payload = json.loads(request.body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, f"Malformed JSON: {exc}", "body") from exc
    if not isinstance(payload, dict):
        raise ApiError(400, "The body must be a JSON object.", "body")
    unknown = sorted(set(payload) - FIELDS)
    if unknown:
        raise ApiError(400, f"Unknown field {unknown[0]!r}.", unknown[0])
    return payload


def _validated(tenant, payload: dict) -> dict:
    kind = payload.get("type")
    if kind in (None, ""):
        raise ApiError(400, "type is required.", "type")
    if kind not in API_TYPES:
        raise ApiError(400, f"Unknown type; one of: {', '.join(API_TYPES)}.", "type")
    source = payload.get("source", ActivitySource.EXTERNAL)
    if source not in API_SOURCES:
        raise ApiError(400, "source must be 'external' or 'campaign'.", "source")
    direction = payload.get("direction", Direction.NONE)
    if direction not in Direction.values:
        raise ApiError(400, "direction must be 'inbound', 'outbound' or 'none'.", "direction")
    occurred_at = timezone.now()
    raw_when = payload.get("occurred_at")
    if raw_when is not None:
        parsed = parse_datetime(raw_when) if isinstance(raw_when, str) else None
        if parsed is None or timezone.is_naive(parsed):
            raise ApiError(400, "occurred_at must be ISO 8601 with a time zone.", "occurred_at")
        occurred_at = parsed
    duration = payload.get("duration_seconds")
    if duration is not None and (
        isinstance(duration, bool) or not isinstance(duration, int) or not 0 <= duration <= DURATION_MAX
    ):
        raise ApiError(
            400, f"duration_seconds must be an integer from 0 to {DURATION_MAX}.", "duration_seconds"
        )
    return {
        "type": kind,
        "source": source,
        "direction": direction,
        "summary": _text(payload, "summary", limit=SUMMARY_MAX, required=True),
        "body": _text(payload, "body", limit=BODY_MAX),
        "first_message": _text(payload, "first_message", limit=FIRST_MESSAGE_MAX),
        "occurred_at": occurred_at,
        "duration_seconds": duration,
        "contact": _contact(tenant, payload),
    }


def _fingerprint(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _represent(activity: Activity) -> dict:
    return {
        "id": activity.pk,
        "type": activity.type,
        "source": activity.source,
        "direction": activity.direction,
        "summary": activity.summary,
        "contact_id": activity.contact_id,
        "account_id": activity.account_id,
        "occurred_at": activity.occurred_at.isoformat(),
    }


@csrf_exempt  # the API authenticates with a bearer key, never a cookie
@require_POST
def activities_create(request):
    try:
        api_key = _authenticate(request)
        idempotency_key = request.headers.get("Idempotency-Key", "")
        if not idempotency_key:
            raise ApiError(400, "Send an Idempotency-Key header (unique per activity).", "Idempotency-Key")
        if not _IDEMPOTENCY_KEY.match(idempotency_key):
            raise ApiError(
                400,
                f"Idempotency-Key must be 1-{IDEMPOTENCY_KEY_MAX} printable ASCII characters without spaces.",
                "Idempotency-Key",
            )
        payload = _parse(request)
        tenant = api_key.tenant
        fields = _validated(tenant, payload)
        fingerprint = _fingerprint(payload)
        contact = fields["contact"]
        with transaction.atomic():
            activity, created = services.activity_log(
                tenant=tenant,
                team=contact.team,
                dedup_key=f"api:{idempotency_key}",
                changes={"api": {"key": api_key.prefix, "request_sha256": fingerprint}},
                **fields,
            )
        if not created:
            previous = (activity.changes or {}).get("api", {}).get("request_sha256")
            if previous != fingerprint:
                raise ApiError(
                    409, "This Idempotency-Key was already used with a different request.", "Idempotency-Key"
                )
    except ApiError as exc:
        return _error(exc.status, exc.message, exc.field)
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        return _error(400, " ".join(messages), field)
    crm_services.api_key_touch(api_key)
    response = JsonResponse(_represent(activity), status=201 if created else 200)
    if not created:
        response["Idempotent-Replayed"] = "true"
    return response


@require_GET
def schema(request):
    return JsonResponse(OPENAPI)


_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "What is wrong, in words."},
        "field": {"type": "string", "description": "The field, header or 'body' the error is about."},
    },
}

OPENAPI = {
    "openapi": "3.1.0",
    "info": {
        "title": "CRM activities API",
        "version": "1.0.0",
        "description": (
            "Record activities from other systems (source external or campaign). Authenticate with a "
            "per-tenant API key (admins create and revoke keys on /settings/api-keys/). Every request "
            "carries an Idempotency-Key: repeating a request with the same key returns the first activity "
            "and creates nothing; the same key with a different body is a 409."
        ),
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": _ERROR,
            "ActivityIn": {
                "type": "object",
                "additionalProperties": False,
                "required": ["type", "summary"],
                "properties": {
                    "type": {"type": "string", "enum": list(API_TYPES)},
                    "source": {"type": "string", "enum": list(API_SOURCES), "default": "external"},
                    "summary": {"type": "string", "minLength": 1, "maxLength": SUMMARY_MAX},
                    "body": {"type": "string", "maxLength": BODY_MAX},
                    "first_message": {"type": "string", "maxLength": FIRST_MESSAGE_MAX},
                    "direction": {"type": "string", "enum": list(Direction.values), "default": "none"},
                    "occurred_at": {"type": "string", "format": "date-time", "description": "Default: now."},
                    "duration_seconds": {"type": "integer", "minimum": 0, "maximum": DURATION_MAX},
                    "contact_id": {"type": "integer", "description": "A contact of the key's tenant."},
                    "contact_email": {
                        "type": "string",
                        "format": "email",
                        "description": "Instead of contact_id: the address of exactly one contact.",
                    },
                },
            },
            "Activity": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "type": {"type": "string"},
                    "source": {"type": "string"},
                    "direction": {"type": "string"},
                    "summary": {"type": "string"},
                    "contact_id": {"type": "integer"},
                    "account_id": {"type": ["integer", "null"]},
                    "occurred_at": {"type": "string", "format": "date-time"},
                },
            },
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/api/v1/activities": {
            "post": {
                "summary": "Record an activity",
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string", "minLength": 1, "maxLength": IDEMPOTENCY_KEY_MAX},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ActivityIn"}}},
                },
                "responses": {
                    "201": {
                        "description": "Created",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Activity"}}
                        },
                    },
                    "200": {
                        "description": "Replay of an earlier request with the same Idempotency-Key",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Activity"}}
                        },
                    },
                    **{
                        code: {
                            "description": text,
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                            },
                        }
                        for code, text in (
                            ("400", "Invalid request (the field is named)"),
                            ("401", "Missing, unknown or revoked API key"),
                            ("409", "Idempotency-Key reused with a different request"),
                            ("413", "Body too large"),
                            ("415", "Not JSON"),
                        )
                    },
                },
            }
        },
        "/api/v1/schema": {
            "get": {
                "summary": "This OpenAPI description",
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1 JSON"}},
            }
        },
    },
}

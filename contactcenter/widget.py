"""The public website chat widget: ``/widget/<public key>.js`` and its JSON endpoints.

Public and CSRF-exempt (no cookies are used: the visitor holds a signed token for their own chat,
sent in the ``X-Widget-Token`` header). CORS answers only the widget's allowed origins, and a request
from any other origin is refused. Rate limits per visitor and per tenant live in the Django cache
(Redis in production and tests).

  GET  /widget/<key>.js                          the script a website embeds
  POST /widget/<key>/chats                       {"name", "email", "text"} -> {"chat_id", "token"}
  GET  /widget/<key>/chats/<id>/messages?after=  the chat's messages after a message id, and its status
  POST /widget/<key>/chats/<id>/messages         {"text"}
  POST /widget/<key>/chats/<id>/end              the visitor ends the chat
"""

from __future__ import annotations

import json
import time
from functools import lru_cache, wraps

from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from activities.models import Direction
from crm import rls

from . import services
from .models import InteractionMessage, InteractionStatus, MessageKind, WidgetConfig

DEFAULT_RATE_LIMITS = {
    # name: (requests, window seconds)
    "visitor": (90, 60),  # one visitor (a chat, or an address before it has one); polling is 30/min
    "start": (10, 600),  # chats started from one address
    "tenant": (3000, 60),  # everything a tenant's widget receives
}
MAX_BODY_BYTES = 32 * 1024
POLL_PAGE = 200


def _limits() -> dict:
    return {**DEFAULT_RATE_LIMITS, **getattr(settings, "WIDGET_RATE_LIMITS", {})}


def _hit(key: str, limit: int, window: int) -> bool:
    """Count one request in a fixed window; False when over the limit."""
    bucket = int(time.time() // window)
    cache_key = f"widget-rl:{key}:{bucket}"
    if cache.add(cache_key, 1, window + 5):
        return limit >= 1
    try:
        return cache.incr(cache_key) <= limit
    except ValueError:  # expired between add and incr
        cache.add(cache_key, 1, window + 5)
        return True


def _client_ip(request) -> str:
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def _json_error(status: int, message: str, field: str | None = None) -> JsonResponse:
    body = {"error": message}
    if field:
        body["field"] = field
    return JsonResponse(body, status=status)


def _cors(response, origin: str | None):
    if origin:
        response["Access-Control-Allow-Origin"] = origin
        response["Access-Control-Allow-Headers"] = "Content-Type, X-Widget-Token"
        response["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response["Access-Control-Max-Age"] = "600"
    response["Vary"] = "Origin"
    response["Cache-Control"] = "no-store"
    return response


def _widget(public_key: str) -> WidgetConfig | None:
    # Deliberately cross-tenant lookup: the public key is what names the tenant of a visitor's call.
    with rls.bypass():
        widget = (
            WidgetConfig.objects.select_related("tenant", "queue", "queue__team")
            .filter(public_key=public_key, enabled=True, tenant__is_active=True)
            .first()
        )
    if widget is not None:
        rls.set_tenant(widget.tenant_id)  # the visitor's request acts for the widget's tenant only
    return widget


def widget_endpoint(methods: tuple[str, ...], *, limit: str = "visitor"):
    """Look up the widget, enforce the origin, answer the preflight, rate-limit, add CORS headers."""

    def decorator(view):
        @csrf_exempt
        @wraps(view)
        def wrapper(request, public_key: str, **kwargs):
            origin = request.headers.get("Origin")
            widget = _widget(public_key)
            if widget is None:
                return _cors(_json_error(404, "No such widget."), None)
            if origin is not None and origin.rstrip("/") not in widget.allowed_origins:
                return _cors(_json_error(403, "This website may not use the widget.", "origin"), None)
            if request.method == "OPTIONS":
                response = _cors(HttpResponse(status=204), origin)
                if request.headers.get("Access-Control-Request-Private-Network") == "true":
                    response["Access-Control-Allow-Private-Network"] = "true"
                return response
            if request.method not in methods:
                return _cors(_json_error(405, f"Use {' or '.join(methods)}."), origin)
            limits = _limits()
            chat_id = kwargs.get("chat_id")
            visitor_key = f"chat:{chat_id}" if chat_id else f"ip:{_client_ip(request)}"
            checks = [
                (f"t:{widget.tenant_id}", *limits["tenant"]),
                (f"v:{widget.pk}:{visitor_key}", *limits[limit]),
            ]
            if chat_id:  # a guesser cycling through chat ids is still one address
                checks.append((f"ip:{_client_ip(request)}", limits["visitor"][0] * 4, limits["visitor"][1]))
            for key, count, window in checks:
                if not _hit(key, count, window):
                    response = _json_error(429, "Too many requests; try again in a moment.")
                    response["Retry-After"] = str(window)
                    return _cors(response, origin)
            if len(request.body) > MAX_BODY_BYTES:
                return _cors(_json_error(413, "The request is too large.", "body"), origin)
            return _cors(view(request, widget, **kwargs), origin)

        return wrapper

    return decorator


def _payload(request) -> dict:
    if not request.body:
        return {}
    try:
        data = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        raise ValidationError({"body": "The body is not valid JSON."}) from None
    if not isinstance(data, dict):
        raise ValidationError({"body": "The body must be a JSON object."})
    return data


def _validation_response(exc: ValidationError) -> JsonResponse:
    errors = {field: " ".join(messages) for field, messages in exc.message_dict.items()}
    field = next(iter(errors))
    return JsonResponse({"error": errors[field], "field": field, "errors": errors}, status=400)


def _chat_or_404(request, widget, chat_id):
    chat = services.widget_chat_for_token(
        widget=widget, chat_id=chat_id, token=request.headers.get("X-Widget-Token", "")
    )
    return chat


def _message_json(message: InteractionMessage) -> dict:
    return {
        "id": message.pk,
        "kind": message.kind,
        # From the visitor's side: "visitor" for their own messages, "agent" for replies.
        "from": (
            "system"
            if message.kind == MessageKind.SYSTEM
            else "visitor"
            if message.direction == Direction.INBOUND
            else "agent"
        ),
        "author": message.author_name,
        "text": message.text,
        "sent_at": message.sent_at.isoformat(),
    }


@lru_cache(maxsize=1)
def _widget_source() -> str:
    path = finders.find("contactcenter/widget.js")
    with open(path, encoding="utf-8") as handle:
        return handle.read()


@require_GET
def script(request, public_key: str):
    widget = _widget(public_key)
    if widget is None:
        return HttpResponse("/* no such widget */", content_type="application/javascript", status=404)
    config = {
        "key": widget.public_key,
        "base": request.build_absolute_uri("/widget/").rstrip("/"),
        "title": widget.title,
        "pollMs": 2000,
    }
    # JSON inside a script: escape the characters that could end the script element or start markup.
    config_js = json.dumps(config).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    body = f"(function (CONFIG) {{\n{_widget_source()}\n}})({config_js});\n"
    response = HttpResponse(body, content_type="application/javascript; charset=utf-8")
    response["Cache-Control"] = "public, max-age=300"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@widget_endpoint(("POST",), limit="start")
def chat_start(request, widget):
    try:
        data = _payload(request)
        started = services.widget_chat_start(
            widget=widget,
            name=str(data.get("name") or ""),
            email=str(data.get("email") or ""),
            text=str(data.get("text") or ""),
        )
    except ValidationError as exc:
        return _validation_response(exc)
    return JsonResponse({"chat_id": started.chat.pk, "token": started.token, "status": "open"}, status=201)


@widget_endpoint(("GET", "POST"))
def chat_messages(request, widget, chat_id: int):
    chat = _chat_or_404(request, widget, chat_id)
    if chat is None:  # another chat's id, a forged or foreign token, or no such chat: all the same
        return _json_error(404, "No such chat.")
    if request.method == "POST":
        try:
            data = _payload(request)
            message = services.widget_visitor_message(chat=chat, text=str(data.get("text") or ""))
        except ValidationError as exc:
            return _validation_response(exc)
        return JsonResponse({"message": _message_json(message)}, status=201)
    try:
        after = int(request.GET.get("after") or 0)
    except ValueError:
        return _json_error(400, "after must be a message id.", "after")
    messages = list(
        InteractionMessage.objects.for_tenant(widget.tenant_id)
        .filter(interaction_id=chat.interaction_id, pk__gt=after)
        .order_by("pk")[:POLL_PAGE]
    )
    status = "closed" if chat.interaction.status == InteractionStatus.CLOSED else "open"
    return JsonResponse({"messages": [_message_json(m) for m in messages], "status": status})


@widget_endpoint(("POST",))
def chat_end(request, widget, chat_id: int):
    chat = _chat_or_404(request, widget, chat_id)
    if chat is None:
        return _json_error(404, "No such chat.")
    services.chat_end(interaction=chat.interaction, by="visitor")
    return JsonResponse({"status": "closed"})

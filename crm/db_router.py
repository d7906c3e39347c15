"""Read replica routing (README "Beyond one machine"): an explicit, narrow opt-in.

With ``DATABASE_REPLICA_URL`` set there is a ``replica`` alias and this router. It sends nothing to the
replica on its own: only a view decorated with :func:`replica_reads` (the activity grid and its lazy
count, the analytics dashboard and its CSV) reads there, and then only

- on a GET or HEAD by a member of a tenant;
- of the domain models in :data:`REPLICA_MODELS` (the feed, activities, contacts, teams...), never of
  users, sessions, memberships (nor a membership's teams), tenants, keys or credentials, which always
  come from the primary: who may see what is never read from a copy that lags;
- while the request has not written: a write goes to the primary and every read after it in the same
  request follows it there;
- unless the user wrote in the last ``DATABASE_REPLICA_PIN_SECONDS``: every POST (PUT, PATCH, DELETE) by a
  signed-in user sets a short cookie with its time (:func:`pin_after_write`, from the tenant middleware),
  and while it is fresh the user's pages read the primary, so the page a form redirects to shows what
  the form wrote (read-your-writes). A forged cookie can only move that user's own reads between two
  copies of the same rows.

Row-level security holds there as on the primary: the view runs inside ``rls.tenant_transaction`` on the
replica connection for the request's tenant and user, read-only (the request's own transaction on the
primary is the middleware's). The replica connection also acts as the restricted role for its whole
session (``crm.settings.replica_database``), so a query outside that transaction sees no tenant rows.

Raw SQL reads take their connection from :func:`read_connection` (analytics) or ``queryset.db``
(the grid's selectors), which are the primary outside a replica view.

If the replica cannot be reached when the view starts, or its connection breaks while the view reads, the
page is served from the primary and the replica is left alone for ``RETRY_SECONDS`` (a warning is
logged), so a dead replica costs one failed connection per process and interval, not one per request.
"""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar
from dataclasses import dataclass
from functools import wraps

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections

from . import rls

logger = logging.getLogger(__name__)

REPLICA = "replica"
PIN_COOKIE = "crm_wrote"
SAFE_METHODS = ("GET", "HEAD")
# How long a process leaves a replica alone after it failed.
RETRY_SECONDS = 30
# The models whose reads may come from the replica (label_lower). Everything else reads the primary.
REPLICA_MODELS = frozenset(
    {
        "activities.activity",
        "activities.feedentry",
        "activities.savedview",
        "crm.account",
        "crm.contact",
        "crm.lead",
        "crm.team",
        "contactcenter.closedinteraction",
        "contactcenter.interaction",
        "contactcenter.interactionmessage",
        "contactcenter.queue",
        "contactcenter.ticket",
        "emailsync.emaillocation",
        "emailsync.incomingemail",
    }
)


@dataclass
class _Reads:
    """The state of one replica-enabled view call."""

    wrote: bool = False
    lost: bool = False


_active: ContextVar[_Reads | None] = ContextVar("replica_reads", default=None)
_down_until = 0.0


def configured() -> bool:
    return REPLICA in settings.DATABASES


def read_alias(model=None) -> str:
    """The alias a read of ``model`` (or raw SQL, without one) uses now."""
    state = _active.get()
    if state is None or state.wrote:
        return DEFAULT_DB_ALIAS
    if model is not None and model._meta.label_lower not in REPLICA_MODELS:
        return DEFAULT_DB_ALIAS
    return REPLICA


def read_connection():
    """The connection for a raw SQL read: the replica inside a replica view that has not written, else
    the primary (``django.db.connection``)."""
    return connections[read_alias()]


class ReplicaRouter:
    """Installed only with DATABASE_REPLICA_URL (crm/settings.py)."""

    def db_for_read(self, model, **hints):
        # Related objects of a primary-only row (a membership's teams: who may see what) stay with it.
        instance = hints.get("instance")
        if instance is not None and read_alias(type(instance)) == DEFAULT_DB_ALIAS:
            return DEFAULT_DB_ALIAS
        return read_alias(model)

    def db_for_write(self, model, **hints):
        state = _active.get()
        if state is not None:
            state.wrote = True
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        # Both aliases hold the same rows.
        if {obj1._state.db, obj2._state.db} <= {DEFAULT_DB_ALIAS, REPLICA}:
            return True
        return None

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        # The replica follows the primary; nothing is ever migrated on it.
        return False if db == REPLICA else None


def pinned(request) -> bool:
    """Did this user write within the last DATABASE_REPLICA_PIN_SECONDS?"""
    raw = request.COOKIES.get(PIN_COOKIE, "")
    try:
        wrote_at = float(raw)
    except ValueError:
        return False
    return time.time() - wrote_at < settings.DATABASE_REPLICA_PIN_SECONDS


def pin_after_write(request, response) -> None:
    """After a POST (PUT, PATCH, DELETE) by a signed-in user, keep their reads on the primary for a few
    seconds (called by crm.middleware.TenantMiddleware). Nothing without a replica."""
    if not configured() or request.method in SAFE_METHODS or request.method == "OPTIONS":
        return
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return
    response.set_cookie(
        PIN_COOKIE,
        str(int(time.time())),
        max_age=settings.DATABASE_REPLICA_PIN_SECONDS,
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )


def _eligible(request) -> bool:
    return (
        configured()
        and request.method in SAFE_METHODS
        and getattr(request, "membership", None) is not None
        and _active.get() is None
        and time.monotonic() >= _down_until
        and not pinned(request)
    )


class _Unavailable(Exception):
    pass


def _mark_down(exc: Exception) -> None:
    global _down_until
    _down_until = time.monotonic() + RETRY_SECONDS
    logger.warning("read replica unavailable, reading the primary for %ss: %s", RETRY_SECONDS, exc)
    connections[REPLICA].close()


def _on_replica(view, request, args, kwargs):
    state = _Reads()
    token = response = None

    def watch(execute, sql, params, many, context):
        try:
            return execute(sql, params, many, context)
        except (OperationalError, InterfaceError):
            # Lost (a closed or broken connection), as opposed to an error of the statement (a timeout).
            raw = context["connection"].connection
            state.lost = state.lost or raw is None or raw.closed or raw.broken
            raise

    try:
        with rls.tenant_transaction(
            tenant_id=request.membership.tenant_id, user_id=request.user.pk, using=REPLICA, read_only=True
        ):
            token = _active.set(state)
            with connections[REPLICA].execute_wrapper(watch):
                response = view(request, *args, **kwargs)
        return response
    except (OperationalError, InterfaceError) as exc:
        if response is not None:
            # Only the end of the read-only transaction failed: the page was read in full.
            _mark_down(exc)
            return response
        # Unreachable when the view started, or lost while it read: read the primary instead, unless the
        # view wrote (its writes are the request's: running it again would repeat them) or the error was
        # not the loss of the replica.
        if token is not None and (state.wrote or not state.lost):
            raise
        _mark_down(exc)
        raise _Unavailable from exc
    finally:
        if token is not None:
            _active.reset(token)


def replica_reads(view):
    """Mark a read-only, staleness-tolerant view: with a replica configured its reads of REPLICA_MODELS
    (and raw SQL through read_connection / queryset.db) come from there. Without one it is the view.
    Not for streaming responses: the replica transaction ends when the view returns."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not _eligible(request):
            return view(request, *args, **kwargs)
        try:
            return _on_replica(view, request, args, kwargs)
        except _Unavailable:
            return view(request, *args, **kwargs)

    return wrapper

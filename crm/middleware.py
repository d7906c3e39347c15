import zoneinfo

from django.db import transaction
from django.shortcuts import render
from django.utils import timezone

from . import db_router, rls
from .logcontext import tenant_id_var, user_id_var
from .models import Membership

SESSION_KEY = "active_tenant_id"
# Paths a signed-in user without any membership may still reach.
EXEMPT_PREFIXES = (
    "/login/",
    "/logout/",
    "/static/",
    "/admin/",
    "/healthz",
    "/readyz",
    "/metrics",
    "/api/",
    "/widget/",
)
# Paths that must answer without a tenant transaction: liveness answers while the database is down,
# readiness reports the database's state itself, /metrics reads only through an explicit bypass.
NO_TRANSACTION_PREFIXES = ("/healthz", "/readyz", "/metrics", "/static/")


class TenantMiddleware:
    """Sets ``request.tenant`` and ``request.membership`` once per request.

    The tenant is always the signed-in user's: the active one kept in the session, if the user is
    still an active member of it, otherwise their first active membership. Nothing else decides it.
    The request runs in one transaction acting as the row-level-security role with that tenant set
    (``crm.rls.tenant_transaction``), so the database itself sees to it that no other tenant's row is read
    or written; a 5xx answer rolls the request's writes back.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.tenant = None
        request.membership = None
        if request.path.startswith(NO_TRANSACTION_PREFIXES):
            return self._respond(request, in_transaction=False)
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            # Anonymous: the login page, the widget and the keyed APIs. No tenant until a key names one
            # (rls.set_tenant there); until then the application role sees no tenant rows.
            with rls.tenant_transaction():
                return self._respond(request, in_transaction=True)
        wanted = request.session.get(SESSION_KEY)
        # The platform superuser's deliberately cross-tenant door is Django admin, nothing else.
        platform = user.is_superuser and request.path.startswith("/admin/")
        # The session's active tenant is set up front (the usual case: no second query); memberships are
        # visible by user id whatever the tenant.
        with rls.tenant_transaction(tenant_id=wanted, user_id=user.pk, bypass=platform):
            memberships = list(
                Membership.objects.active()
                .filter(user=user)
                .select_related("tenant")
                .order_by("tenant__name")
            )
            request.memberships = memberships
            chosen = next((m for m in memberships if m.tenant_id == wanted), None) or (
                memberships[0] if memberships else None
            )
            user_id_var.set(user.pk)
            if chosen is not None:
                if chosen.tenant_id != wanted:
                    rls.set_tenant(chosen.tenant_id)
                    request.session[SESSION_KEY] = chosen.tenant_id
                tenant_id_var.set(chosen.tenant_id)
                _activate_time_zone(chosen.time_zone)
                request.membership = chosen
                request.tenant = chosen.tenant
            else:
                if wanted is not None:
                    rls.set_tenant(None)
                if not user.is_superuser and not request.path.startswith(EXEMPT_PREFIXES):
                    return render(request, "no_membership.html", status=403)
            return self._respond(request, in_transaction=True)

    def _respond(self, request, *, in_transaction: bool):
        try:
            response = self.get_response(request)
            if response.status_code >= 500 and in_transaction:
                # The view failed after the handler turned its exception into a response: keep nothing
                # it wrote (what ATOMIC_REQUESTS would do; the request's transaction is ours). Paths
                # without one (/readyz answering 503 with the database down) have nothing to undo.
                transaction.set_rollback(True)
            # With a read replica: after a write, this user's next pages read the primary (db_router).
            db_router.pin_after_write(request, response)
            return response
        finally:
            timezone.deactivate()


def _activate_time_zone(name: str) -> None:
    if not name:
        timezone.deactivate()
        return
    try:
        timezone.activate(zoneinfo.ZoneInfo(name))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        timezone.deactivate()

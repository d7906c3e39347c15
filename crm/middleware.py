import zoneinfo

from django.shortcuts import render
from django.utils import timezone

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


class TenantMiddleware:
    """Sets ``request.tenant`` and ``request.membership`` once per request.

    The tenant is always the signed-in user's: the active one kept in the session, if the user is
    still an active member of it, otherwise their first active membership. Nothing else decides it.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.tenant = None
        request.membership = None
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            memberships = list(
                Membership.objects.active()
                .filter(user=user)
                .select_related("tenant")
                .order_by("tenant__name")
            )
            request.memberships = memberships
            wanted = request.session.get(SESSION_KEY)
            chosen = next((m for m in memberships if m.tenant_id == wanted), None) or (
                memberships[0] if memberships else None
            )
            user_id_var.set(user.pk)
            if chosen is not None:
                tenant_id_var.set(chosen.tenant_id)
                _activate_time_zone(chosen.time_zone)
                request.membership = chosen
                request.tenant = chosen.tenant
                if wanted != chosen.tenant_id:
                    request.session[SESSION_KEY] = chosen.tenant_id
            elif not user.is_superuser and not request.path.startswith(EXEMPT_PREFIXES):
                return render(request, "no_membership.html", status=403)
        try:
            return self.get_response(request)
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

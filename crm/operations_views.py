"""The operations page for tenant admins (``/settings/operations/``, namespace "crm"): mail sync, the
outbox and the background workers, with "Sync now" and "Retry".

Admins only: managers and agents get a 403 before any lookup (as on the API keys page). An id of another
tenant's mailbox or email is a 404 like a missing one. The page refreshes its panel by htmx (the same URL
answers the partial) and works without JavaScript (the actions are plain POST forms that redirect back).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers, patch_vary_headers
from django.views.decorators.http import require_GET, require_POST

from emailsync import selectors as email_selectors
from emailsync import services as email_services

from . import operations

PAGE = "crm/operations/operations.html"
PANEL = "crm/operations/partials/_panel.html"


def _admin(request):
    membership = request.membership
    if membership is None:
        raise Http404("No tenant.")
    if not membership.is_admin:
        raise PermissionDenied("Only admins may open this page.")
    return membership


def _panel_response(request, notice: str = "", notice_level: str = "info"):
    """The page, or for htmx (not on history restore) only the panel it refreshes."""
    state = operations.operations_state(tenant=request.tenant)
    context = {"ops": state, "notice": notice, "notice_level": notice_level}
    partial = request.htmx and not request.htmx.history_restore_request
    response = render(request, PANEL if partial else PAGE, context)
    patch_vary_headers(response, ["HX-Request"])
    add_never_cache_headers(response)
    return response


def _done(request, text: str, level: str = "info"):
    if request.htmx:
        return _panel_response(request, notice=text, notice_level=level)
    getattr(messages, level)(request, text)
    return redirect("crm:operations")


@login_required
@require_GET
def operations_view(request):
    _admin(request)
    return _panel_response(request)


@login_required
@require_POST
def operations_mailbox_sync(request, pk: int):
    membership = _admin(request)
    mailbox = email_selectors.mailbox_get(membership=membership, pk=pk)
    email_services.mailbox_sync_now(mailbox=mailbox)
    return _done(request, f"Sync of {mailbox.email_address} queued.")


@login_required
@require_POST
def operations_outgoing_retry(request, pk: int):
    membership = _admin(request)
    outgoing = email_selectors.outgoing_get(membership=membership, pk=pk)
    try:
        requeued = email_services.outgoing_retry(tenant=request.tenant, actor=request.user, outgoing=outgoing)
    except ValidationError as exc:
        return _done(request, " ".join(exc.messages), "error")
    if requeued:
        return _done(request, f"“{outgoing.subject}” is queued for sending again.", "success")
    return _done(request, f"“{outgoing.subject}” has not failed (it is queued or sent): nothing to retry.")

from django.contrib.auth.decorators import login_required
from django.http import HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from activities import presentation, selectors

from .middleware import SESSION_KEY
from .models import Membership


@login_required
@require_GET
def home(request):
    rows = []
    if request.membership is not None:
        entries = selectors.feed_recent(membership=request.membership, limit=20)
        rows = presentation.present(entries, membership=request.membership)
    return render(request, "home.html", {"rows": rows})


@login_required
@require_POST
def tenant_switch(request):
    try:
        tenant_id = int(request.POST.get("tenant", ""))
    except ValueError:
        return HttpResponseBadRequest("Pick a tenant from the list.")
    membership = Membership.objects.active().filter(user=request.user, tenant_id=tenant_id).first()
    if membership is None:
        # Not a member (or no such tenant): indistinguishable, and the active tenant stays as it was.
        return HttpResponseBadRequest("You are not a member of that tenant.")
    request.session[SESSION_KEY] = membership.tenant_id
    next_url = request.POST.get("next") or "/"
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = "/"
    return redirect(next_url)

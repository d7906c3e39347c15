"""The activity grid: page or htmx partial from the same URL, lazy capped count, CSV export, saved
views. Thin function views: the form validates, selectors read, presentation names and redacts."""

from __future__ import annotations

from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import IntegrityError, transaction
from django.http import Http404, HttpResponseRedirect, QueryDict, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST

from crm import rls, visibility
from crm.db_router import replica_reads
from crm.models import Team

from . import export as csv_export
from . import presentation, selectors
from .filters import MULTI_PARAMS, PARAMS, GridFilterForm
from .models import SavedView
from .tables import grid_columns

CURSOR_MESSAGE = "That page link was invalid or has expired, so the grid starts again at the first page."


def _membership(request):
    if request.membership is None:
        raise Http404("No tenant")
    return request.membership


def _state_params(data: QueryDict) -> list[tuple[str, str]]:
    """The grid's own query parameters (no cursor), in a stable order, blanks dropped."""
    pairs = []
    for name in PARAMS:
        values = data.getlist(name) if name in MULTI_PARAMS else [data.get(name, "")]
        pairs.extend((name, v) for v in values if v not in ("", None))
    return pairs


def _qs(pairs, **extra) -> str:
    items = [(k, v) for k, v in pairs if k not in extra]
    items += [(k, v) for k, v in extra.items() if v not in (None, "")]
    return urlencode(items)


def _grid_state(request):
    membership = _membership(request)
    form = GridFilterForm(request.GET or None, tenant_id=membership.tenant_id)
    if form.is_bound:
        form.is_valid()
        query = form.grid_query()
    else:
        query = selectors.GridQuery()
        form.cleaned_data = {}
    filtered = selectors.feed_filtered(membership=membership, q=query)
    return membership, form, query, filtered


@login_required
@require_GET
@replica_reads
def grid(request):
    membership, form, query, filtered = _grid_state(request)
    cursor, cursor_error = None, ""
    token = request.GET.get("cursor", "")
    if token:
        try:
            cursor = selectors.Cursor.load(token)
        except ValueError:
            cursor_error = CURSOR_MESSAGE
    if filtered.empty:
        page = selectors.Page([], None, None)
    else:
        page = selectors.feed_page(
            filtered.queryset,
            cursor=cursor,
            descending=query.descending,
            per_page=query.per_page,
            selective=filtered.selective,
        )
    rows = presentation.present(page.entries, membership=membership)
    pairs = _state_params(request.GET)
    sort_value = "-created" if query.descending else "created"
    context = {
        "form": form,
        "query": query,
        "rows": rows,
        "columns": grid_columns(),
        "cursor_error": cursor_error,
        "capped": filtered.capped,
        "id_cap": selectors.NAME_ID_CAP,
        "state": _qs(pairs),
        "next_qs": _qs(pairs, cursor=page.next_cursor) if page.next_cursor else "",
        "prev_qs": _qs(pairs, cursor=page.prev_cursor) if page.prev_cursor else "",
        "first_qs": _qs(pairs) if cursor else "",
        "sort_qs": _qs(pairs, sort="created" if query.descending else "-created"),
        "sort_value": sort_value,
        "per_page_links": [(n, _qs(pairs, per_page=str(n))) for n in selectors.PAGE_SIZES],
        "count_qs": "" if filtered.empty else _qs(pairs),
        "empty_filter": filtered.empty,
        "is_first_page": cursor is None,
        "selected_agents": [str(a) for a in query.agents],
    }
    if request.htmx and not request.htmx.history_restore_request:
        response = render(request, "activities/partials/_grid.html", context)
    else:
        teams = Team.objects.for_tenant(membership.tenant_id).filter(id__in=visibility.team_ids(membership))
        context["saved_views"] = SavedView.objects.visible_to(membership).select_related("team")
        context["share_teams"] = teams
        response = render(request, "activities/grid.html", context)
    patch_vary_headers(response, ("HX-Request",))
    return response


@login_required
@require_GET
@replica_reads
def grid_count(request):
    """The lazily loaded total: exact up to 10,000, "10,000+" beyond, "many" when it takes too long."""
    membership, form, query, filtered = _grid_state(request)
    total = 0 if filtered.empty else selectors.feed_capped_count(filtered.queryset)
    if total is None:
        text = "Many activities (the count took too long)"
    elif total > selectors.COUNT_CAP:
        text = f"{selectors.COUNT_CAP:,}+ activities"
    else:
        text = f"{total:,} activit{'y' if total == 1 else 'ies'}"
    response = render(request, "activities/partials/_count.html", {"text": text})
    patch_vary_headers(response, ("HX-Request",))
    return response


@login_required
@require_GET
def export_csv(request):
    membership, form, query, filtered = _grid_state(request)
    if filtered.empty:
        chunks = iter([",".join(csv_export.EXPORT_HEADER) + "\r\n"])
    else:
        chunks = _in_own_transaction(
            csv_export.csv_rows(filtered.queryset, membership=membership, descending=query.descending),
            membership=membership,
        )
    response = StreamingHttpResponse(chunks, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="activities.csv"'
    response["Cache-Control"] = "no-store"
    return response


def _in_own_transaction(chunks, *, membership):
    """The rows are read while the response streams, after the request's transaction (and its time zone)
    ended: read them in a transaction of the export's own, for the same tenant and user, in the same zone."""
    zone = timezone.get_current_timezone()
    with (
        rls.tenant_transaction(tenant_id=membership.tenant_id, user_id=membership.user_id),
        timezone.override(zone),
    ):
        yield from chunks


# --- saved views -----------------------------------------------------------------------------------


class SavedViewForm(forms.Form):
    name = forms.CharField(max_length=80, strip=True)
    query = forms.CharField(max_length=2000, required=False)
    team = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)

    def __init__(self, data, *, teams, **kwargs):
        super().__init__(data, **kwargs)
        self.fields["team"].choices = [("", "Only me")] + [(str(t.id), t.name) for t in teams]


def _clean_query(raw: str) -> str:
    return _qs(_state_params(QueryDict(raw.lstrip("?"))))


@login_required
@require_POST
def saved_view_create(request):
    membership = _membership(request)
    teams = list(Team.objects.for_tenant(membership.tenant_id).filter(id__in=visibility.team_ids(membership)))
    form = SavedViewForm(request.POST, teams=teams)
    grid_url = reverse("activities:grid")
    if not form.is_valid():
        problems = "; ".join(f"{form.fields[f].label or f}: {' '.join(e)}" for f, e in form.errors.items())
        messages.error(request, f"The view was not saved. {problems}")
        query = _clean_query(request.POST.get("query", ""))
        return HttpResponseRedirect(f"{grid_url}?{query}" if query else grid_url)
    query = _clean_query(form.cleaned_data["query"])
    try:
        with transaction.atomic():
            SavedView.objects.create(
                tenant_id=membership.tenant_id,
                owner_id=membership.user_id,
                name=form.cleaned_data["name"],
                query=query,
                team_id=form.cleaned_data["team"],
            )
    except IntegrityError:
        name = form.cleaned_data["name"]
        messages.error(request, f"You already have a view named “{name}”; pick another name.")
    else:
        messages.success(request, f"Saved view “{form.cleaned_data['name']}”.")
    return HttpResponseRedirect(f"{grid_url}?{query}" if query else grid_url)


@login_required
@require_GET
def saved_view_open(request, pk: int):
    membership = _membership(request)
    view = get_object_or_404(SavedView.objects.visible_to(membership), pk=pk)
    grid_url = reverse("activities:grid")
    return HttpResponseRedirect(f"{grid_url}?{view.query}" if view.query else grid_url)


@login_required
@require_POST
def saved_view_delete(request, pk: int):
    membership = _membership(request)
    view = get_object_or_404(
        SavedView.objects.for_tenant(membership.tenant_id).filter(owner_id=membership.user_id), pk=pk
    )
    name = view.name
    view.delete()
    messages.success(request, f"Deleted saved view “{name}”.")
    return HttpResponseRedirect(reverse("activities:grid"))

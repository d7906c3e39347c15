"""Contacts, leads and accounts: the grids with activity badges, the detail pages and the timeline
windows. Thin function views: the reads live in ``crm.selectors`` and ``activities.timeline``."""

from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.paginator import EmptyPage, PageNotAnInteger
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.utils.html import format_html_join
from django.views.decorators.http import require_GET
from django_tables2 import RequestConfig
from django_tables2.paginators import LazyPaginator

from activities import timeline

from . import selectors
from .filters import FILTERS
from .tables import TABLES

GRID_TARGET = "grid"
MODAL_TARGET = "modal-root"
TIMELINE_TARGET = "timeline-body"
POLL_FROM_START = "start"  # the poller's cursor while the timeline shown is empty

TITLES = {"contact": "Contacts", "lead": "Leads", "account": "Accounts"}
LISTS = {
    "contact": selectors.contact_list,
    "lead": selectors.lead_list,
    "account": selectors.account_list,
}
GETTERS = {
    "contact": selectors.contact_get,
    "lead": selectors.lead_get,
    "account": selectors.account_get,
}


def _membership(request):
    if request.membership is None:
        raise Http404("No such record.")
    return request.membership


def _vary(response):
    patch_vary_headers(response, ("HX-Request", "HX-Target"))
    return response


def _is_partial(request) -> bool:
    return bool(request.htmx) and not request.htmx.history_restore_request


# --- grids ------------------------------------------------------------------------------------------


def _querystring(params, **changes) -> str:
    items = [(key, v) for key, values in params.lists() if key not in changes for v in values]
    for key, value in changes.items():
        if value not in (None, ""):
            items.append((key, value))
    return "?" + urlencode(items) if items else "?"


def _headers(table, params) -> list[dict]:
    current = table.order_by[0] if table.order_by else ""
    headers = []
    for column in table.columns:
        header = {"name": column.name, "label": column.header, "url": None, "sorted": None}
        if column.orderable:
            header["url"] = _querystring(params, sort=str(column.order_by_alias.next), page=None)
            if current.lstrip("-") == column.name:
                header["sorted"] = "desc" if current.startswith("-") else "asc"
        headers.append(header)
    return headers


_PK_PLACEHOLDER = 987654321


def _url_maker(name: str):
    """A fast ``pk -> URL`` for one URL name: reversed once per page, not once per row."""
    template = reverse(name, args=[_PK_PLACEHOLDER])
    return lambda pk: template.replace(str(_PK_PLACEHOLDER), str(int(pk)))


def _user_name(user) -> str:
    return user.get_full_name() or user.email or user.username


def _filter_fields(filterset) -> list[dict]:
    fields = []
    for bound in filterset.form.visible_fields():
        choices = None
        if bound.name != "q":
            choices = filterset.choice_lists.get(bound.name) or list(bound.field.choices)
        value = str(bound.value() or "")
        options = None
        if choices is not None:
            # Built once in Python (escaped by format_html_join): a template loop over a few hundred
            # options cost more than the whole rest of the page.
            options = format_html_join(
                "",
                '<option value="{}"{}>{}</option>',
                ((v, " selected" if str(v) == value else "", label) for v, label in choices),
            )
        fields.append({"bound": bound, "options": options, "value": value})
    return fields


def _grid(request, kind: str):
    membership = _membership(request)
    filterset = FILTERS[kind](
        request.GET or None, queryset=LISTS[kind](membership=membership), membership=membership
    )
    queryset = filterset.qs.order_by("name", "id")
    table = TABLES[kind](queryset)
    try:
        RequestConfig(request, paginate={"paginator_class": LazyPaginator, "per_page": 50}).configure(table)
    except (EmptyPage, PageNotAnInteger):
        table.paginate(paginator_class=LazyPaginator, per_page=50, page=1)
    records = [row.record for row in table.page.object_list]
    counts = timeline.badge_counts(membership=membership, kind=kind, ids=[r.pk for r in records])
    detail_url = _url_maker(f"crm:{kind}-detail")
    timeline_url = _url_maker(f"crm:{kind}-timeline")
    rows = [
        {
            "obj": r,
            "count": counts.get(r.pk, 0),
            "badge": timeline.badge_label(counts.get(r.pk, 0)),
            "detail_url": detail_url(r.pk),
            "timeline_url": timeline_url(r.pk),
            "owner_name": _user_name(r.owner) if r.owner_id else "",
        }
        for r in records
    ]
    page = table.page
    context = {
        "kind": kind,
        "title": TITLES[kind],
        "filter": filterset,
        "filter_fields": _filter_fields(filterset),
        "headers": _headers(table, request.GET),
        "rows": rows,
        "page_number": page.number,
        "prev_url": _querystring(request.GET, page=page.number - 1) if page.number > 1 else None,
        "next_url": _querystring(request.GET, page=page.number + 1) if page.has_next() else None,
        "list_url": reverse(f"crm:{kind}-list"),
    }
    template = (
        "crm/partials/_grid.html"
        if _is_partial(request) and request.htmx.target == GRID_TARGET
        else ("crm/entity_list.html")
    )
    return _vary(render(request, template, context))


@login_required
@require_GET
def contact_list(request):
    return _grid(request, "contact")


@login_required
@require_GET
def lead_list(request):
    return _grid(request, "lead")


@login_required
@require_GET
def account_list(request):
    return _grid(request, "account")


# --- timelines --------------------------------------------------------------------------------------


def _timeline_context(request, kind: str, obj, *, before=None) -> dict:
    membership = request.membership
    filters = timeline.TimelineFilters.from_params(request.GET)
    page = timeline.timeline_page(membership=membership, kind=kind, pk=obj.pk, filters=filters, before=before)
    base_url = reverse(f"crm:{kind}-timeline", args=[obj.pk])
    filter_items = filters.query_items(kind)
    older_url = (
        base_url + "?" + urlencode([*filter_items, ("before", page.older_cursor)])
        if page.older_cursor
        else None
    )
    return {
        "kind": kind,
        "obj": obj,
        "page": page,
        "rows": page.rows,
        "filters": filters,
        "type_choices": timeline.TYPE_CHOICES,
        "timeline_url": base_url,
        "older_url": older_url,
        "poll_url": _poll_url(base_url, filter_items, page.newest_cursor) if before is None else None,
        "is_deep": before is not None,
        "own_scope": filters.scope == timeline.SCOPE_OWN,
        "detail_url": reverse(f"crm:{kind}-detail", args=[obj.pk]),
    }


def _poll_url(base_url: str, filter_items, cursor: str | None) -> str:
    return base_url + "?" + urlencode([*filter_items, ("after", cursor or POLL_FROM_START)])


def _poll(request, kind: str, obj, after_token: str):
    """Rows newer than the newest shown. 204 (nothing to swap) when there are none."""
    membership = request.membership
    filters = timeline.TimelineFilters.from_params(request.GET)
    base_url = reverse(f"crm:{kind}-timeline", args=[obj.pk])
    filter_items = filters.query_items(kind)
    if after_token == POLL_FROM_START:
        # The timeline was empty when opened: anything that exists now is new.
        page = timeline.timeline_page(
            membership=membership, kind=kind, pk=obj.pk, filters=filters, page_size=20
        )
        rows = page.rows
    else:
        cursor = timeline.decode_cursor(after_token)
        if cursor is None:
            return _vary(HttpResponse("Bad cursor.", status=400, content_type="text/plain"))
        rows = timeline.timeline_newer(
            membership=membership, kind=kind, pk=obj.pk, filters=filters, after=cursor
        )
    if not rows:
        return _vary(HttpResponse(status=204))
    context = {
        "kind": kind,
        "obj": obj,
        "rows": rows,
        "poll_url": _poll_url(base_url, filter_items, rows[0].cursor),
        "new": True,
    }
    return _vary(render(request, "activities/timeline/_poll.html", context))


def _timeline(request, kind: str, pk):
    membership = _membership(request)
    obj = GETTERS[kind](membership=membership, pk=pk)
    after = request.GET.get("after")
    if after is not None and request.htmx:
        return _poll(request, kind, obj, after)
    before = None
    if request.GET.get("before"):
        before = timeline.decode_cursor(request.GET["before"])
        if before is None:
            return _vary(HttpResponse("Bad cursor.", status=400, content_type="text/plain"))
    context = _timeline_context(request, kind, obj, before=before)
    target = request.htmx.target if _is_partial(request) else None
    if before is not None and target:
        template = "activities/timeline/_older.html"
    elif target == MODAL_TARGET:
        template = "activities/timeline/_modal.html"
    elif target == TIMELINE_TARGET:
        template = "activities/timeline/_timeline.html"
    else:
        template = "activities/timeline/page.html"
    return _vary(render(request, template, context))


@login_required
@require_GET
def contact_timeline(request, pk):
    return _timeline(request, "contact", pk)


@login_required
@require_GET
def lead_timeline(request, pk):
    return _timeline(request, "lead", pk)


@login_required
@require_GET
def account_timeline(request, pk):
    return _timeline(request, "account", pk)


# --- detail pages -----------------------------------------------------------------------------------

CONTACT_TABS = (("activity", "Activity"), ("details", "Details"), ("analytics", "Analytics"))


@login_required
@require_GET
def contact_detail(request, pk):
    membership = _membership(request)
    contact = selectors.contact_get(membership=membership, pk=pk)
    tab = request.GET.get("tab") if request.GET.get("tab") in dict(CONTACT_TABS) else "activity"
    context = {"obj": contact, "contact": contact, "kind": "contact", "tab": tab, "tabs": CONTACT_TABS}
    if tab == "activity":
        context.update(_timeline_context(request, "contact", contact))
    elif tab == "details":
        context["converted_from"] = list(
            selectors.lead_visible(membership=membership)
            .filter(converted_contact=contact)
            .order_by("-converted_at")
        )
    return _vary(render(request, "crm/contact_detail.html", context))


@login_required
@require_GET
def lead_detail(request, pk):
    membership = _membership(request)
    lead = selectors.lead_get(membership=membership, pk=pk)
    context = {"obj": lead, "lead": lead, "kind": "lead"}
    context.update(_timeline_context(request, "lead", lead))
    return _vary(render(request, "crm/lead_detail.html", context))


@login_required
@require_GET
def account_detail(request, pk):
    membership = _membership(request)
    account = selectors.account_get(membership=membership, pk=pk)
    contacts = list(
        selectors.contact_visible(membership=membership).filter(account=account).order_by("name", "id")[:50]
    )
    context = {"obj": account, "account": account, "kind": "account", "contacts": contacts}
    context.update(_timeline_context(request, "account", account))
    return _vary(render(request, "crm/account_detail.html", context))

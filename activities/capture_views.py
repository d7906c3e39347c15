"""Logging, editing and deleting manual activities.

The same URL returns the full page (no JavaScript: a normal form with a redirect after POST) or, for an
htmx request, the form partial that opens in place. A successful write answers htmx with the
``HX-Trigger`` events ``activityLogged`` (new entry) or ``activityChanged`` (edit / delete / restore), so
the grid and timelines refresh.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

from crm import visibility
from crm.models import Account, Contact, Lead

from . import services
from .forms import ActivityForm, visible_entities
from .models import Activity

LOGGED_EVENT = "activityLogged"
CHANGED_EVENT = "activityChanged"


def _membership(request):
    if request.membership is None:
        raise Http404("No tenant.")
    return request.membership


def visible_activities(membership):
    """Alive activities of the tenant this member may see (the grid's rule, on the activities table)."""
    queryset = Activity.objects.for_tenant(membership.tenant_id).alive()
    return visibility.scope(queryset, membership, team_field="team", user_field="user")


def _pk(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _fixed_entities(request, membership) -> dict:
    """The contact / lead / account the form was opened for (?contact=, ?lead=, ?account=).

    404 when one is not visible to the member."""
    fixed = {}
    for name, model in (("contact", Contact), ("lead", Lead), ("account", Account)):
        raw = request.GET.get(name)
        if raw in (None, ""):
            continue
        pk = _pk(raw)
        if pk is None:
            raise Http404(f"No such {name}.")
        fixed[name] = get_object_or_404(visible_entities(model, membership), pk=pk)
    return fixed


def _next_url(request) -> str | None:
    target = request.POST.get("next") or request.GET.get("next")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return None


def _fallback_url(activity: Activity | None = None) -> str:
    for name, args in (
        ("crm:contact-detail", [activity.contact_id] if activity and activity.contact_id else None),
        ("activities:grid", []),
        ("home", []),
    ):
        if args is None:
            continue
        try:
            return reverse(name, args=args)
        except NoReverseMatch:
            continue
    return "/"


def _team_for(membership, data: dict):
    for name in ("contact", "lead", "account"):
        entity = data.get(name)
        if entity is not None and entity.team_id is not None:
            return entity.team
    teams = visibility.team_ids(membership)
    if len(teams) == 1:
        return membership.teams.get(pk=teams[0])
    return None


def _render(request, partial: str, page: str, context: dict, status: int = 200) -> HttpResponse:
    template = partial if request.htmx else page
    response = render(request, template, context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _trigger(response: HttpResponse, event: str, activity: Activity) -> HttpResponse:
    response["HX-Trigger"] = json.dumps({event: {"id": activity.pk, "type": activity.type}})
    return response


@login_required
@require_http_methods(["GET", "POST"])
def activity_log_view(request):
    membership = _membership(request)
    fixed = _fixed_entities(request, membership)
    if request.method == "POST":
        form = ActivityForm(request.POST, membership=membership, fixed=fixed)
        if form.is_valid():
            kwargs = form.service_kwargs()
            try:
                activity, _ = services.activity_log(
                    tenant=request.tenant,
                    actor=request.user,
                    team=_team_for(membership, kwargs),
                    **kwargs,
                )
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                label = activity.get_type_display()
                if request.htmx:
                    response = _render(
                        request,
                        "activities/partials/_log_form_done.html",
                        "activities/partials/_log_form_done.html",
                        {"activity": activity, "message": f"{label} logged."},
                    )
                    return _trigger(response, LOGGED_EVENT, activity)
                messages.success(request, f"{label} logged.")
                return redirect(_next_url(request) or _fallback_url(activity))
    else:
        form = ActivityForm(membership=membership, fixed=fixed, initial=dict(fixed))
    context = {
        "form": form,
        "fixed": fixed,
        "action": request.get_full_path(),
        "next": _next_url(request) or "",
        "title": "Log an activity",
        "submit_label": "Log",
    }
    status = 422 if request.method == "POST" and not request.htmx else 200
    return _render(
        request, "activities/partials/_log_form.html", "activities/capture/log_page.html", context, status
    )


def _same_minute(a, b) -> bool:
    return (
        a is not None
        and b is not None
        and a.replace(second=0, microsecond=0) == b.replace(second=0, microsecond=0)
    )


@login_required
@require_http_methods(["GET", "POST"])
def activity_edit_view(request, pk: int):
    membership = _membership(request)
    activity = get_object_or_404(visible_activities(membership), pk=pk)
    if not services.can_edit(membership, activity):
        raise PermissionDenied("You may not edit this activity.")
    initial = ActivityForm.initial_for(activity)
    if request.method == "POST":
        form = ActivityForm(request.POST, membership=membership, initial=initial)
        if form.is_valid():
            changes = form.service_kwargs()
            # The form shows minutes: an untouched time keeps its seconds.
            for name in ("occurred_at", "due_at"):
                if _same_minute(changes[name], getattr(activity, name)):
                    changes[name] = getattr(activity, name)
            try:
                services.activity_update(membership=membership, activity=activity, changes=changes)
            except services.ActivityPermissionDenied as exc:
                raise PermissionDenied(str(exc)) from exc
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                if request.htmx:
                    response = _render(
                        request,
                        "activities/partials/_log_form_done.html",
                        "activities/partials/_log_form_done.html",
                        {"activity": activity, "message": "Activity saved."},
                    )
                    return _trigger(response, CHANGED_EVENT, activity)
                messages.success(request, "Activity saved.")
                return redirect(_next_url(request) or _fallback_url(activity))
    else:
        form = ActivityForm(membership=membership, initial=initial)
    context = {
        "form": form,
        "activity": activity,
        "fixed": {},
        "action": request.get_full_path(),
        "next": _next_url(request) or "",
        "title": "Edit activity",
        "submit_label": "Save",
        "can_delete": services.can_delete(membership, activity),
    }
    status = 422 if request.method == "POST" and not request.htmx else 200
    return _render(
        request, "activities/partials/_log_form.html", "activities/capture/edit_page.html", context, status
    )


@login_required
@require_http_methods(["GET", "POST"])
def activity_delete_view(request, pk: int):
    membership = _membership(request)
    activity = get_object_or_404(visible_activities(membership), pk=pk)
    if not services.can_delete(membership, activity):
        raise PermissionDenied("You may not delete this activity.")
    if request.method == "POST":
        try:
            services.activity_delete(membership=membership, activity=activity)
        except services.ActivityPermissionDenied as exc:
            raise PermissionDenied(str(exc)) from exc
        if request.htmx:
            response = _render(
                request,
                "activities/partials/_log_form_done.html",
                "activities/partials/_log_form_done.html",
                {"activity": activity, "message": "Activity deleted. Admins can restore it."},
            )
            return _trigger(response, CHANGED_EVENT, activity)
        messages.success(request, "Activity deleted. Admins can restore it.")
        return redirect(_next_url(request) or _fallback_url(activity))
    return _render(
        request,
        "activities/capture/_delete_confirm.html",
        "activities/capture/delete_page.html",
        {"activity": activity, "next": _next_url(request) or ""},
    )

"""Settings pages for members and teams (namespace "crm").

Admins manage every member and team of their tenant; managers manage the agents of their own teams (see
``services.member_editable``); agents get 403 on the list and add pages. On pages with an id, another
tenant's member or team, or one outside the viewer's teams, is a 404 with the same body as a missing one;
a visible object the role may not change (an agent's own teammate, a manager's fellow manager) is a 403.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from . import selectors, services
from .forms import MemberAddForm, MemberEditForm, TeamForm
from .models import Membership


def _viewer(request) -> Membership:
    if request.membership is None:
        raise Http404("No tenant.")
    return request.membership


def _manager_or_admin(request) -> Membership:
    membership = _viewer(request)
    if not (membership.is_admin or membership.is_manager):
        raise PermissionDenied("Only admins and managers manage members.")
    return membership


def _errors_to_form(form, exc: ValidationError) -> None:
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc.messages)
        return
    for field, errors in exc.message_dict.items():
        form.add_error(field if field in form.fields else None, errors)


def _label(member: Membership) -> str:
    user = member.user
    return user.get_full_name() or user.email or user.username


# --- members ---------------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET"])
def member_list_view(request):
    actor = _manager_or_admin(request)
    members = list(selectors.member_list(membership=actor))
    rows = []
    for member in members:
        teams = list(member.teams.all())
        rows.append(
            {
                "member": member,
                "teams": teams,
                "editable": services.member_editable(actor, member, target_team_ids=[t.pk for t in teams]),
            }
        )
    return render(request, "crm/members/member_list.html", {"rows": rows, "actor": actor})


@login_required
@require_http_methods(["GET", "POST"])
def member_add_view(request):
    actor = _manager_or_admin(request)
    form = MemberAddForm(request.POST if request.method == "POST" else None, actor=actor)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            member = services.membership_create(
                tenant=request.tenant,
                actor=request.user,
                email=data["email"],
                password=data["password"],
                first_name=data["first_name"],
                last_name=data.get("last_name", ""),
                role=data["role"],
                teams=list(data["teams"]),
                can_manage_email=data["can_manage_email"],
            )
        except ValidationError as exc:
            _errors_to_form(form, exc)
        else:
            messages.success(request, f"{_label(member)} can now sign in as {member.user.email}.")
            return redirect("crm:member-list")
    status = 422 if request.method == "POST" else 200
    return render(request, "crm/members/member_add.html", {"form": form, "actor": actor}, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def member_edit_view(request, pk: int):
    actor = _viewer(request)
    member = selectors.member_get(membership=actor, pk=pk)
    if not services.member_editable(actor, member):
        raise PermissionDenied("You may not change this member.")
    form = MemberEditForm(request.POST if request.method == "POST" else None, actor=actor, member=member)
    if request.method == "POST" and form.is_valid():
        try:
            services.membership_update(
                tenant=request.tenant,
                actor=request.user,
                membership=member,
                role=form.cleaned_data["role"],
                teams=form.final_teams(),
                can_manage_email=form.cleaned_data["can_manage_email"],
            )
        except ValidationError as exc:
            _errors_to_form(form, exc)
        else:
            messages.success(request, f"{_label(member)} saved.")
            return redirect("crm:member-list")
    context = {
        "form": form,
        "member": member,
        "actor": actor,
        "may_activate": services.member_activation_allowed(actor, member),
        "is_self": member.user_id == actor.user_id,
    }
    status = 422 if request.method == "POST" else 200
    return render(request, "crm/members/member_edit.html", context, status=status)


def _set_active(request, pk: int, *, active: bool):
    actor = _viewer(request)
    member = selectors.member_get(membership=actor, pk=pk)
    if not services.member_activation_allowed(actor, member):
        raise PermissionDenied("Only admins add back or remove members.")
    service = services.membership_reactivate if active else services.membership_deactivate
    try:
        service(tenant=request.tenant, actor=request.user, membership=member)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("crm:member-edit", member.pk)
    if active:
        messages.success(request, f"{_label(member)} is a member again.")
    else:
        messages.success(request, f"{_label(member)} was removed: their next request has no access.")
    return redirect("crm:member-list")


@login_required
@require_POST
def member_deactivate_view(request, pk: int):
    return _set_active(request, pk, active=False)


@login_required
@require_POST
def member_reactivate_view(request, pk: int):
    return _set_active(request, pk, active=True)


# --- teams -------------------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def team_list_view(request):
    """The tenant's teams (a manager: their own, read-only) and, for admins, the form to create one."""
    actor = _manager_or_admin(request)
    form = None
    status = 200
    if actor.is_admin:
        form = TeamForm(request.POST if request.method == "POST" else None)
        if request.method == "POST":
            if form.is_valid():
                try:
                    team = services.team_create(
                        tenant=request.tenant, actor=request.user, name=form.cleaned_data["name"]
                    )
                except ValidationError as exc:
                    _errors_to_form(form, exc)
                else:
                    messages.success(request, f"Team {team.name} created.")
                    return redirect("crm:team-list")
            status = 422
    elif request.method == "POST":
        raise PermissionDenied("Only admins manage teams.")
    teams = list(selectors.team_list(membership=actor))
    return render(
        request, "crm/members/team_list.html", {"teams": teams, "form": form, "actor": actor}, status=status
    )


@login_required
@require_http_methods(["GET", "POST"])
def team_edit_view(request, pk: int):
    actor = _viewer(request)
    team = selectors.team_get(membership=actor, pk=pk)
    if not actor.is_admin:
        raise PermissionDenied("Only admins manage teams.")
    form = TeamForm(request.POST if request.method == "POST" else None, initial={"name": team.name})
    if request.method == "POST" and form.is_valid():
        try:
            team = services.team_rename(
                tenant=request.tenant, actor=request.user, team=team, name=form.cleaned_data["name"]
            )
        except ValidationError as exc:
            _errors_to_form(form, exc)
        else:
            messages.success(request, f"Team renamed to {team.name}.")
            return redirect("crm:team-list")
    status = 422 if request.method == "POST" else 200
    used_by = selectors.team_usage(team=team)
    return render(
        request, "crm/members/team_edit.html", {"form": form, "team": team, "used_by": used_by}, status=status
    )


@login_required
@require_POST
def team_delete_view(request, pk: int):
    actor = _viewer(request)
    team = selectors.team_get(membership=actor, pk=pk)
    if not actor.is_admin:
        raise PermissionDenied("Only admins manage teams.")
    try:
        services.team_delete(tenant=request.tenant, actor=request.user, team=team)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("crm:team-edit", team.pk)
    messages.success(request, f"Team {team.name} deleted.")
    return redirect("crm:team-list")

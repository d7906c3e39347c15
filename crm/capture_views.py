"""Lead conversion, contact edits, API keys and the deleted-activities audit page.

Another tenant's object, or one outside the member's teams, is a 404 like a missing one; pages for admins
only answer 403 to other roles.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.cache import add_never_cache_headers, patch_vary_headers
from django.views.decorators.http import require_http_methods, require_POST

from activities import services as activity_services
from activities.models import Activity

from . import services, visibility
from .forms import ApiKeyForm, ContactForm, LeadConvertForm
from .models import ActivityAuditEntry, ApiKey, Contact, Lead

DELETED_PAGE_SIZE = 50


def _membership(request):
    if request.membership is None:
        raise Http404("No tenant.")
    return request.membership


def _admin(request):
    membership = _membership(request)
    if not membership.is_admin:
        raise PermissionDenied("Only admins may open this page.")
    return membership


def _visible(model, membership):
    return visibility.scope(
        model.objects.for_tenant(membership.tenant_id), membership, team_field="team", user_field="owner"
    )


def _url(name: str, *args, default: str = "/") -> str:
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return default


def _render(request, partial: str, page: str, context: dict, status: int = 200):
    response = render(request, partial if request.htmx else page, context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _errors_to_form(form, exc: ValidationError) -> None:
    for field, errors in exc.message_dict.items():
        form.add_error(field if field in form.fields else None, errors)


# --- lead conversion -----------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def lead_convert_view(request, pk: int):
    membership = _membership(request)
    lead = get_object_or_404(_visible(Lead, membership), pk=pk)
    form = LeadConvertForm(request.POST if request.method == "POST" else None, membership=membership)
    if request.method == "POST" and form.is_valid():
        try:
            conversion = services.lead_convert(
                tenant=request.tenant,
                actor=request.user,
                lead=lead,
                account=form.cleaned_data.get("account"),
                create_account_name=form.cleaned_data.get("create_account_name", ""),
            )
        except ValidationError as exc:
            _errors_to_form(form, exc)
        else:
            contact = conversion.contact
            verb = "linked to the existing contact" if conversion.linked_existing_contact else "converted to"
            if visibility.can_see_entity(membership, contact):
                messages.success(request, f"Lead {lead.name} {verb} {contact.name}.")
                target = _url("crm:contact-detail", contact.pk, default=_url("crm:lead-detail", lead.pk))
            else:
                # The lead's email matched a contact outside the converter's teams: linked (no duplicate),
                # but neither named nor opened.
                messages.success(request, f"Lead {lead.name} {verb} a contact outside your teams.")
                target = _url("crm:lead-detail", lead.pk)
            if request.htmx:
                response = render(request, "crm/capture/_converted.html", {"lead": conversion.lead})
                response["HX-Redirect"] = target
                return response
            return redirect(target)
    lead.refresh_from_db()
    context = {"lead": lead, "form": form}
    status = 422 if request.method == "POST" and not request.htmx else 200
    return _render(
        request, "crm/capture/_convert_form.html", "crm/capture/convert_page.html", context, status
    )


# --- contact edits ---------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def contact_edit_view(request, pk: int):
    membership = _membership(request)
    contact = get_object_or_404(
        _visible(Contact, membership).select_related("team", "account", "owner"), pk=pk
    )
    initial = ContactForm.initial_for(contact)
    form = ContactForm(
        request.POST if request.method == "POST" else None,
        initial=initial,
        membership=membership,
        contact=contact,
    )
    if request.method == "POST" and form.is_valid():
        data = {name: form.cleaned_data.get(name) for name in services.SIGNIFICANT_FIELDS}
        try:
            contact, activity = services.contact_update(
                tenant=request.tenant, actor=request.user, contact=contact, data=data
            )
        except ValidationError as exc:
            _errors_to_form(form, exc)
        else:
            messages.success(request, "Contact saved." if activity else "Nothing changed.")
            target = _url("crm:contact-detail", contact.pk, default=request.path)
            if request.htmx:
                response = render(request, "crm/capture/_contact_saved.html", {"contact": contact})
                response["HX-Redirect"] = target
                if activity is not None:
                    response["HX-Trigger"] = "activityChanged"
                return response
            return redirect(target)
    context = {"contact": contact, "form": form}
    status = 422 if request.method == "POST" and not request.htmx else 200
    return _render(
        request, "crm/capture/_contact_form.html", "crm/capture/contact_edit_page.html", context, status
    )


# --- API keys ----------------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def api_key_list_view(request):
    membership = _admin(request)
    form = ApiKeyForm(request.POST if request.method == "POST" else None)
    new_key = None
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                _, new_key = services.api_key_create(
                    tenant=request.tenant, actor=request.user, name=form.cleaned_data["name"]
                )
            except ValidationError as exc:
                _errors_to_form(form, exc)
                status = 422
            else:
                form = ApiKeyForm()
        else:
            status = 422
    keys = ApiKey.objects.for_tenant(membership.tenant_id).select_related("created_by", "revoked_by")
    response = render(
        request,
        "crm/capture/api_keys.html",
        {"form": form, "keys": keys, "new_key": new_key, "schema_url": _url("activities:api-schema")},
        status=status,
    )
    add_never_cache_headers(response)  # the new key is shown once and must not be cached
    return response


@login_required
@require_POST
def api_key_revoke_view(request, pk: int):
    membership = _admin(request)
    key = get_object_or_404(ApiKey.objects.for_tenant(membership.tenant_id), pk=pk)
    services.api_key_revoke(tenant=request.tenant, actor=request.user, api_key=key)
    messages.success(request, f"Key {key.name} revoked: requests with it are refused from now on.")
    return redirect("crm:api-keys")


# --- deleted activities (admins) --------------------------------------------------------------------------


@login_required
@require_http_methods(["GET"])
def deleted_activity_list_view(request):
    membership = _admin(request)
    activities = list(
        Activity.objects.for_tenant(membership.tenant_id)
        .deleted()
        .select_related("deleted_by", "created_by", "contact", "lead", "account")
        .order_by("-deleted_at", "-id")[:DELETED_PAGE_SIZE]
    )
    audit = list(
        ActivityAuditEntry.objects.for_tenant(membership.tenant_id)
        .select_related("actor")
        .order_by("-at", "-id")[:DELETED_PAGE_SIZE]
    )
    return render(
        request,
        "crm/capture/deleted_activities.html",
        {"activities": activities, "audit": audit, "page_size": DELETED_PAGE_SIZE},
    )


@login_required
@require_POST
def activity_restore_view(request, pk: int):
    membership = _admin(request)
    activity = get_object_or_404(Activity.objects.for_tenant(membership.tenant_id).deleted(), pk=pk)
    try:
        activity_services.activity_restore(membership=membership, activity=activity)
    except activity_services.ActivityPermissionDenied as exc:
        raise PermissionDenied(str(exc)) from exc
    messages.success(request, f"Restored: {activity.summary[:80]}")
    return redirect("crm:activity-deleted-list")

"""Pages of the contact center: the interactions grid, the message viewer, live chats and tickets.

Thin function views: one selector or service each; the same URL returns the page or the htmx partial
(``Vary: HX-Request``). Anything the member may not see is a 404 like a missing row.
"""

from __future__ import annotations

from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from crm.models import Membership

from . import selectors, services
from .forms import ClosedInteractionFilter, ReplyForm, TicketForm, TicketStatusForm
from .models import InteractionStatus, TicketStatus


def _membership(request) -> Membership:
    if request.membership is None:
        raise Http404("No workspace.")
    return request.membership


def _is_htmx(request) -> bool:
    return bool(getattr(request, "htmx", False)) and not request.htmx.history_restore_request


# --- Interactions -----------------------------------------------------------------------------------


@login_required
@require_GET
@vary_on_headers("HX-Request")
def interaction_list(request):
    membership = _membership(request)
    filterset = ClosedInteractionFilter(
        request.GET, queryset=selectors.closed_visible(membership=membership), membership=membership
    )
    page = selectors.closed_interaction_page(
        membership=membership, queryset=filterset.qs, cursor=request.GET.get("after", "")
    )
    query = request.GET.copy()
    query.pop("after", None)
    context = {"filter": filterset, "page": page, "query": query.urlencode()}
    if _is_htmx(request):
        return render(request, "contactcenter/partials/_interaction_results.html", context)
    return render(request, "contactcenter/interaction_list.html", context)


@login_required
@require_GET
def interaction_open_list(request):
    membership = _membership(request)
    rows = selectors.open_interaction_list(membership=membership)
    return render(request, "contactcenter/interaction_open_list.html", {"rows": rows})


@login_required
@require_GET
@vary_on_headers("HX-Request")
def messages(request, pk: int):
    membership = _membership(request)
    closed = selectors.closed_interaction_get(membership=membership, pk=pk)
    items = list(selectors.interaction_messages(interaction=closed.interaction))
    context = {"closed": closed, "items": items}
    if _is_htmx(request):
        return render(request, "contactcenter/partials/_messages_modal.html", context)
    return render(request, "contactcenter/messages.html", context)


# --- Live chats -------------------------------------------------------------------------------------


@login_required
@require_GET
@vary_on_headers("HX-Request")
def live_chats(request):
    membership = _membership(request)
    chats = selectors.live_chat_list(membership=membership)
    if _is_htmx(request):
        return render(request, "contactcenter/partials/_live_chat_list.html", {"chats": chats})
    return render(request, "contactcenter/live_chats.html", {"chats": chats, "chat": None})


@login_required
@require_GET
def live_chat_detail(request, pk: int):
    membership = _membership(request)
    chat = selectors.live_chat_get(membership=membership, pk=pk)
    chats = selectors.live_chat_list(membership=membership)
    items = list(selectors.interaction_messages(interaction=chat))
    return render(
        request,
        "contactcenter/live_chats.html",
        {"chats": chats, "chat": chat, "items": items, "form": ReplyForm()},
    )


@login_required
@require_GET
def live_chat_messages(request, pk: int):
    membership = _membership(request)
    chat = selectors.live_chat_get(membership=membership, pk=pk)
    items = list(selectors.interaction_messages(interaction=chat))
    return render(request, "contactcenter/partials/_live_chat_messages.html", {"chat": chat, "items": items})


@login_required
@require_POST
def live_chat_reply(request, pk: int):
    membership = _membership(request)
    chat = selectors.live_chat_get(membership=membership, pk=pk)
    form = ReplyForm(request.POST)
    error = None
    if form.is_valid():
        try:
            services.agent_reply(
                tenant=request.tenant, actor=request.user, interaction=chat, text=form.cleaned_data["text"]
            )
        except ValidationError as exc:
            error = " ".join(exc.messages)
    else:
        error = " ".join(form.errors.get("text", ["Type a reply first."]))
    if not _is_htmx(request):
        if error:
            flash.error(request, error)
        return redirect("contactcenter:live-chat", pk=chat.pk)
    chat.refresh_from_db()
    items = list(selectors.interaction_messages(interaction=chat))
    response = render(
        request,
        "contactcenter/partials/_live_chat_messages.html",
        {"chat": chat, "items": items, "error": error},
        status=400 if error else 200,
    )
    return response


@login_required
@require_POST
def live_chat_end(request, pk: int):
    membership = _membership(request)
    chat = selectors.live_chat_get(membership=membership, pk=pk)
    if chat.status == InteractionStatus.OPEN:
        services.chat_end(interaction=chat, by="agent", actor=request.user)
        flash.success(request, "Chat ended; it is now in the interactions grid and the contact's timeline.")
    if _is_htmx(request):
        response = render(request, "contactcenter/partials/_empty.html")
        response["HX-Redirect"] = "/live-chats/"
        return response
    return redirect("contactcenter:live-chats")


# --- Tickets ----------------------------------------------------------------------------------------


@login_required
@require_GET
def ticket_list(request):
    membership = _membership(request)
    status = request.GET.get("status", "")
    if status not in TicketStatus.values:
        status = ""
    tickets = selectors.ticket_list(membership=membership, status=status)
    return render(
        request,
        "contactcenter/ticket_list.html",
        {"tickets": tickets, "status": status, "statuses": TicketStatus.choices},
    )


@login_required
@require_http_methods(["GET", "POST"])
def ticket_create(request):
    membership = _membership(request)
    if request.method == "POST":
        form = TicketForm(request.POST, membership=membership)
        if form.is_valid():
            data = form.cleaned_data
            try:
                ticket = services.ticket_create(
                    tenant=request.tenant,
                    actor=request.user,
                    subject=data["subject"],
                    description=data["description"],
                    contact=data["contact"],
                    interaction=data["interaction"],
                    assignee=data["assignee"],
                    team=data["team"],
                )
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                flash.success(request, f"Ticket #{ticket.pk} created.")
                return redirect("contactcenter:ticket-detail", pk=ticket.pk)
    else:
        initial = {"team": _default_team(membership)}
        # Context from the page the user came from; unknown or invisible ids are a 404.
        if request.GET.get("contact", "").isdigit():
            contact = selectors.contact_get(membership=membership, pk=int(request.GET["contact"]))
            initial["contact"] = contact.pk
        if request.GET.get("interaction", "").isdigit():
            interaction = selectors.interaction_get(membership=membership, pk=int(request.GET["interaction"]))
            initial["interaction"] = interaction.pk
            initial["contact"] = interaction.contact_id
        form = TicketForm(initial=initial, membership=membership)
    contact = None
    contact_id = form["contact"].value()
    if contact_id and str(contact_id).isdigit():
        contact = selectors.contacts_visible(membership=membership).filter(pk=int(contact_id)).first()
    return render(request, "contactcenter/ticket_form.html", {"form": form, "contact": contact})


def _default_team(membership: Membership):
    teams = membership.teams.order_by("name").values_list("pk", flat=True)
    return teams.first()


@login_required
@require_GET
def ticket_detail(request, pk: int):
    membership = _membership(request)
    ticket = selectors.ticket_get(membership=membership, pk=pk)
    form = TicketStatusForm(initial={"status": ticket.status, "version": ticket.status_version})
    return render(request, "contactcenter/ticket_detail.html", {"ticket": ticket, "form": form})


@login_required
@require_POST
def ticket_status(request, pk: int):
    membership = _membership(request)
    ticket = selectors.ticket_get(membership=membership, pk=pk)
    form = TicketStatusForm(request.POST)
    if form.is_valid():
        try:
            services.ticket_status_change(
                tenant=request.tenant,
                actor=request.user,
                ticket=ticket,
                status=form.cleaned_data["status"],
                expected_version=form.cleaned_data["version"],
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            flash.success(request, "Status changed.")
            return redirect("contactcenter:ticket-detail", pk=ticket.pk)
    return render(request, "contactcenter/ticket_detail.html", {"ticket": ticket, "form": form}, status=400)

"""Reads of the contact center. Every read is tenant-scoped and goes through the visibility rule
(crm/visibility.py): admins the whole tenant; managers and agents their teams' rows plus rows they are
the agent (assignee) of. Anything else is a 404 indistinguishable from a missing row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import Q, QuerySet
from django.http import Http404

from crm import visibility
from crm.models import Contact, Membership

from .models import (
    Channel,
    ClosedInteraction,
    Interaction,
    InteractionMessage,
    InteractionStatus,
    Ticket,
)

PAGE_SIZE = 50


def closed_visible(*, membership: Membership) -> QuerySet[ClosedInteraction]:
    queryset = ClosedInteraction.objects.for_tenant(membership.tenant_id)
    return visibility.scope(queryset, membership, team_field="team", user_field="agent")


def interactions_visible(*, membership: Membership) -> QuerySet[Interaction]:
    queryset = Interaction.objects.for_tenant(membership.tenant_id)
    return visibility.scope(queryset, membership, team_field="team", user_field="agent")


def closed_interaction_get(*, membership: Membership, pk: int) -> ClosedInteraction:
    closed = (
        closed_visible(membership=membership)
        .with_related(membership.tenant_id, "queue", "agent", "contact", "interaction")
        .filter(pk=pk)
        .first()
    )
    if closed is None:
        raise Http404("No such interaction.")
    return closed


def interaction_messages(*, interaction: Interaction) -> QuerySet[InteractionMessage]:
    """All messages of one conversation in order (rendered in one pass, no per-row queries)."""
    return (
        InteractionMessage.objects.for_tenant(interaction.tenant_id)
        .filter(interaction=interaction)
        .order_by("sent_at", "id")
        .only("id", "kind", "direction", "author_name", "text", "sent_at")
    )


@dataclass
class Page:
    rows: list
    next_cursor: str | None


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def encode_cursor(started_at: datetime, pk: int) -> str:
    """``<microseconds since epoch>_<id>``: exact, and nothing in it needs URL escaping."""
    return f"{(started_at - EPOCH) // timedelta(microseconds=1)}_{pk}"


def decode_cursor(value: str) -> tuple[datetime, int] | None:
    try:
        raw_time, raw_id = (value or "").split("_", 1)
        return EPOCH + timedelta(microseconds=int(raw_time)), int(raw_id)
    except (ValueError, OverflowError):
        return None


def closed_interaction_page(
    *, membership: Membership, queryset: QuerySet[ClosedInteraction], cursor: str = "", limit: int = PAGE_SIZE
) -> Page:
    """One page of the grid by keyset on (started_at, id), newest first; never OFFSET, never COUNT."""
    queryset = queryset.select_related("queue", "agent", "contact").order_by("-started_at", "-id")
    position = decode_cursor(cursor) if cursor else None
    if position is not None:
        when, pk = position
        queryset = queryset.filter(Q(started_at__lt=when) | Q(started_at=when, id__lt=pk))
    rows = list(queryset[: limit + 1])
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].started_at, rows[-1].pk)
    return Page(rows=rows, next_cursor=next_cursor)


def open_interaction_list(*, membership: Membership, limit: int = 200) -> list[Interaction]:
    return list(
        interactions_visible(membership=membership)
        .filter(status=InteractionStatus.OPEN)
        .select_related("queue", "agent", "contact")
        .order_by("-started_at", "-id")[:limit]
    )


def live_chat_list(*, membership: Membership) -> list[Interaction]:
    return list(
        interactions_visible(membership=membership)
        .filter(status=InteractionStatus.OPEN, channel=Channel.WEBCHAT)
        .select_related("queue", "agent", "contact")
        .order_by("started_at", "id")[:200]
    )


def live_chat_get(*, membership: Membership, pk: int) -> Interaction:
    interaction = (
        interactions_visible(membership=membership)
        .filter(pk=pk, channel=Channel.WEBCHAT)
        .select_related("queue", "agent", "contact", "tenant")
        .first()
    )
    if interaction is None:
        raise Http404("No such chat.")
    return interaction


def interaction_get(*, membership: Membership, pk: int) -> Interaction:
    interaction = interactions_visible(membership=membership).select_related("contact").filter(pk=pk).first()
    if interaction is None:
        raise Http404("No such interaction.")
    return interaction


def contacts_visible(*, membership: Membership) -> QuerySet[Contact]:
    return visibility.scope(
        Contact.objects.for_tenant(membership.tenant_id), membership, team_field="team", user_field="owner"
    )


def contact_get(*, membership: Membership, pk: int) -> Contact:
    contact = contacts_visible(membership=membership).filter(pk=pk).first()
    if contact is None:
        raise Http404("No such contact.")
    return contact


def tickets_visible(*, membership: Membership) -> QuerySet[Ticket]:
    queryset = Ticket.objects.for_tenant(membership.tenant_id)
    if visibility.sees_whole_tenant(membership):
        return queryset
    return queryset.filter(
        visibility.scope_q(membership, team_field="team", user_field="assignee")
        | Q(created_by_id=membership.user_id)
    )


def ticket_list(*, membership: Membership, status: str = "", limit: int = 200) -> list[Ticket]:
    queryset = tickets_visible(membership=membership).select_related("contact", "assignee", "team")
    if status:
        queryset = queryset.filter(status=status)
    return list(queryset.order_by("-created_at", "-id")[:limit])


def ticket_get(*, membership: Membership, pk: int) -> Ticket:
    ticket = (
        tickets_visible(membership=membership)
        .select_related("contact", "assignee", "team", "interaction", "created_by")
        .filter(pk=pk)
        .first()
    )
    if ticket is None:
        raise Http404("No such ticket.")
    return ticket

"""Per-entity timelines (contact, lead, account) and the activity-count badges of the entity grids.

Every read goes through ``selectors.feed_visible`` (the one visibility rule) and every page of rows
through ``presentation.present`` (names, email redaction). Pages are fetched by keyset on
``(occurred_at, id)``, newest first, so "load older" costs the same at any depth; the poller asks for
rows strictly newer than the newest one shown, so a row is never shown twice.

Definitions
- contact: rows with ``contact_id = X``, plus rows of the leads converted into X
  (``Lead.converted_contact``), which are marked "from lead ...". The lead's own timeline keeps them.
- lead: rows with ``lead_id = X``.
- account (default "all"): rows with ``account_id = X``. ``activity_log`` fills the account from the
  contact's account, so the account's contacts roll up. "own only": ``account_id = X AND contact_id IS
  NULL``, i.e. rows logged against the account itself and not about one of its people.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db.models import Case, Count, F, IntegerField, Q, QuerySet, Value, When
from django.urls import NoReverseMatch, reverse

from crm.models import Lead, Membership

from . import presentation, selectors
from .models import ActivityType, FeedEntry, FeedKind

PAGE_SIZE = 10
POLL_LIMIT = 20
ENTITY_KINDS = ("contact", "lead", "account")
SCOPE_ALL = "all"
SCOPE_OWN = "own"

# The types a timeline can be filtered by (the feed's own type column).
TYPE_CHOICES = [(value, label) for value, label in ActivityType.choices]
_TYPE_VALUES = {value for value, _ in TYPE_CHOICES}


# --- cursors -------------------------------------------------------------------------------------


def encode_cursor(occurred_at: datetime, pk: int) -> str:
    raw = f"{occurred_at.isoformat()}|{pk}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str | None) -> tuple[datetime, int] | None:
    """The (occurred_at, id) of a cursor token; None for a missing or malformed one."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        when, _, pk = raw.partition("|")
        occurred_at = datetime.fromisoformat(when)
        if occurred_at.tzinfo is None:
            return None
        return occurred_at, int(pk)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None


def _older_than(cursor: tuple[datetime, int]) -> Q:
    # (occurred_at, id) < (t, i), written so that "occurred_at <= t" is an index condition: the scan
    # starts at the cursor and the OR only rejects the few rows sharing the cursor's timestamp.
    when, pk = cursor
    return Q(occurred_at__lte=when) & (Q(occurred_at__lt=when) | Q(id__lt=pk))


def _newer_than(cursor: tuple[datetime, int]) -> Q:
    when, pk = cursor
    return Q(occurred_at__gte=when) & (Q(occurred_at__gt=when) | Q(id__gt=pk))


# --- the rows of one entity ------------------------------------------------------------------------


@dataclass
class TimelineFilters:
    types: list[str] = field(default_factory=list)
    q: str = ""
    scope: str = SCOPE_ALL  # accounts only

    @classmethod
    def from_params(cls, params) -> TimelineFilters:
        types = [t for t in params.getlist("type") if t in _TYPE_VALUES]
        q = (params.get("q") or "").strip()[:200]
        scope = SCOPE_OWN if params.get("scope") == SCOPE_OWN else SCOPE_ALL
        return cls(types=types, q=q, scope=scope)

    def query_items(self, kind: str) -> list[tuple[str, str]]:
        items = [("type", t) for t in self.types]
        if self.q:
            items.append(("q", self.q))
        if kind == "account" and self.scope == SCOPE_OWN:
            items.append(("scope", SCOPE_OWN))
        return items

    @property
    def active(self) -> bool:
        return bool(self.types or self.q)


def converted_lead_ids(*, membership: Membership, contact_id: int) -> list[int]:
    return list(
        Lead.objects.for_tenant(membership.tenant_id)
        .filter(converted_contact_id=contact_id)
        .order_by()
        .values_list("id", flat=True)
    )


def entity_q(kind: str, pk: int, *, lead_ids: list[int] | None = None, scope: str = SCOPE_ALL) -> Q:
    if kind == "contact":
        q = Q(contact_id=pk)
        if lead_ids:
            q |= Q(lead_id__in=lead_ids)
        return q
    if kind == "lead":
        return Q(lead_id=pk)
    if kind == "account":
        q = Q(account_id=pk)
        if scope == SCOPE_OWN:
            q &= Q(contact_id__isnull=True)
        return q
    raise ValueError(f"unknown entity kind {kind!r}")


def _search_q(q: str, membership: Membership) -> Q:
    text = Q(summary__icontains=q) | Q(first_message__icontains=q)
    if membership.is_admin or membership.can_manage_email:
        return text
    # Never let a search reveal words of an email the viewer may not read: email rows match only
    # when the viewer is their agent (mailbox participation is not checked here: it errs on hiding).
    return text & (~Q(type=ActivityType.EMAIL) | Q(agent_id=membership.user_id))


def timeline_queryset(
    *, membership: Membership, kind: str, pk: int, filters: TimelineFilters, lead_ids: list[int] | None = None
) -> QuerySet[FeedEntry]:
    queryset = selectors.feed_visible(membership=membership).filter(
        entity_q(kind, pk, lead_ids=lead_ids, scope=filters.scope)
    )
    return _apply_filters(queryset, membership, filters)


def _apply_filters(queryset: QuerySet, membership: Membership, filters: TimelineFilters) -> QuerySet:
    if filters.types:
        queryset = queryset.filter(type__in=filters.types)
    if filters.q:
        queryset = queryset.filter(_search_q(filters.q, membership))
    return queryset


# --- context of each entry (one query per kind, per page) -----------------------------------------


@dataclass
class TimelineRow:
    row: presentation.FeedRow
    from_lead_id: int | None = None
    from_lead_name: str | None = None
    email: Any = None  # IncomingEmail (subject, sender, snippet) when not redacted
    interaction: Any = None  # ClosedInteraction (channel, queue, first message, count)
    ticket: Any = None  # Ticket (subject, status)
    source_url: str | None = None
    cursor: str = ""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.row, name)

    @property
    def is_lead_conversion(self) -> bool:
        return self.row.entry.type == ActivityType.LEAD_CONVERSION


def _safe_reverse(name: str, pk) -> str | None:
    try:
        return reverse(name, kwargs={"pk": pk})
    except NoReverseMatch:
        return None


def _source_url(entry: FeedEntry, *, email=None, interaction=None, ticket=None) -> str | None:
    helper = getattr(presentation, "source_url", None)
    if helper is not None:
        try:
            url = helper(entry)
        except Exception:  # noqa: BLE001 - a link is optional; never break the timeline for it
            url = None
        if url:
            return url
    if interaction is not None:
        return _safe_reverse("contactcenter:messages", interaction.pk)
    if email is not None:
        return _safe_reverse("emailsync:email-detail", email.pk)
    if ticket is not None:
        return _safe_reverse("contactcenter:ticket-detail", ticket.pk)
    return None


def _content_type_ids() -> dict[str, int]:
    from contactcenter.models import ClosedInteraction, Ticket
    from emailsync.models import IncomingEmail

    # ContentType.objects caches these after the first lookup per process.
    return {
        "email": ContentType.objects.get_for_model(IncomingEmail).pk,
        "interaction": ContentType.objects.get_for_model(ClosedInteraction).pk,
        "ticket": ContentType.objects.get_for_model(Ticket).pk,
    }


def enrich(
    rows: list[presentation.FeedRow],
    *,
    membership: Membership,
    kind: str,
    pk: int,
    lead_ids: list[int] | None = None,
) -> list[TimelineRow]:
    from contactcenter.models import ClosedInteraction, Ticket
    from emailsync.models import IncomingEmail

    ct = _content_type_ids()
    email_ids, interaction_ids, ticket_ids = set(), set(), set()
    for r in rows:
        e = r.entry
        if e.kind == FeedKind.INTERACTION:
            interaction_ids.add(e.id)
        elif e.source_type_id == ct["interaction"] and e.source_id:
            interaction_ids.add(e.source_id)
        elif e.source_type_id == ct["email"] and e.source_id and not r.redacted:
            email_ids.add(e.source_id)
        elif e.source_type_id == ct["ticket"] and e.source_id:
            ticket_ids.add(e.source_id)
    tenant_id = membership.tenant_id
    emails = (
        {
            m.pk: m
            for m in IncomingEmail.objects.for_tenant(tenant_id)
            .filter(pk__in=email_ids)
            .only("subject", "sender", "sender_name", "snippet")
        }
        if email_ids
        else {}
    )
    interactions = (
        {
            ci.pk: ci
            for ci in ClosedInteraction.objects.for_tenant(tenant_id)
            .filter(pk__in=interaction_ids)
            .select_related("queue")
            .only(
                "channel",
                "first_message",
                "message_count",
                "interaction_id",
                "duration_seconds",
                "queue__name",
                "queue__channel",
            )
        }
        if interaction_ids
        else {}
    )
    tickets = (
        {
            t.pk: t
            for t in Ticket.objects.for_tenant(tenant_id).filter(pk__in=ticket_ids).only("subject", "status")
        }
        if ticket_ids
        else {}
    )
    out = []
    for r in rows:
        e = r.entry
        item = TimelineRow(row=r, cursor=encode_cursor(e.occurred_at, e.id))
        if e.kind == FeedKind.INTERACTION:
            item.interaction = interactions.get(e.id)
        elif e.source_type_id == ct["interaction"]:
            item.interaction = interactions.get(e.source_id)
        elif e.source_type_id == ct["email"] and not r.redacted:
            item.email = emails.get(e.source_id)
        elif e.source_type_id == ct["ticket"]:
            item.ticket = tickets.get(e.source_id)
        if item.interaction is not None and r.redacted:
            item.interaction = None  # an email-channel interaction: who/when/direction only
        if kind == "contact" and lead_ids and e.lead_id in lead_ids and e.contact_id != pk:
            item.from_lead_id = e.lead_id
            item.from_lead_name = r.lead_name
        if not r.redacted:
            item.source_url = _source_url(
                e, email=item.email, interaction=item.interaction, ticket=item.ticket
            )
        out.append(item)
    return out


# --- pages -----------------------------------------------------------------------------------------


def _fetch(
    *,
    membership: Membership,
    kind: str,
    pk: int,
    filters: TimelineFilters,
    lead_ids: list[int],
    keyset: Q,
    newest_first: bool,
    limit: int,
) -> list[FeedEntry]:
    """One keyset page. A contact with converted leads reads two index-ordered ranges (its own rows;
    its leads' rows not already about it) and merges them here: an OR of the two would make
    PostgreSQL collect and sort every row of the contact for each page."""
    order = ("-occurred_at", "-id") if newest_first else ("occurred_at", "id")
    if kind == "contact" and lead_ids:
        visible = selectors.feed_visible(membership=membership)
        own = _apply_filters(visible.filter(contact_id=pk), membership, filters)
        from_leads = _apply_filters(
            visible.filter(lead_id__in=lead_ids).exclude(contact_id=pk), membership, filters
        )
        merged = list(own.filter(keyset).order_by(*order)[:limit]) + list(
            from_leads.filter(keyset).order_by(*order)[:limit]
        )
        merged.sort(key=lambda e: (e.occurred_at, e.id), reverse=newest_first)
        return merged[:limit]
    queryset = timeline_queryset(membership=membership, kind=kind, pk=pk, filters=filters, lead_ids=lead_ids)
    return list(queryset.filter(keyset).order_by(*order)[:limit])


@dataclass
class TimelinePage:
    rows: list[TimelineRow]
    older_cursor: str | None  # set when there are older rows
    newest_cursor: str | None  # the newest row shown (for the poller)
    lead_ids: list[int] = field(default_factory=list)


def timeline_page(
    *,
    membership: Membership,
    kind: str,
    pk: int,
    filters: TimelineFilters,
    before: tuple[datetime, int] | None = None,
    page_size: int = PAGE_SIZE,
) -> TimelinePage:
    """One page, newest first, older than ``before`` when given."""
    lead_ids = converted_lead_ids(membership=membership, contact_id=pk) if kind == "contact" else []
    entries = _fetch(
        membership=membership,
        kind=kind,
        pk=pk,
        filters=filters,
        lead_ids=lead_ids,
        keyset=_older_than(before) if before is not None else Q(),
        newest_first=True,
        limit=page_size + 1,
    )
    has_more = len(entries) > page_size
    entries = entries[:page_size]
    rows = enrich(
        presentation.present(entries, membership=membership),
        membership=membership,
        kind=kind,
        pk=pk,
        lead_ids=lead_ids,
    )
    older = rows[-1].cursor if has_more and rows else None
    newest = rows[0].cursor if rows else None
    return TimelinePage(rows=rows, older_cursor=older, newest_cursor=newest, lead_ids=lead_ids)


def timeline_newer(
    *,
    membership: Membership,
    kind: str,
    pk: int,
    filters: TimelineFilters,
    after: tuple[datetime, int],
    limit: int = POLL_LIMIT,
) -> list[TimelineRow]:
    """Rows strictly newer than ``after``, newest first. At most ``limit`` of the oldest of them, so
    that the next poll (from the newest returned) continues without a gap or a repeat."""
    lead_ids = converted_lead_ids(membership=membership, contact_id=pk) if kind == "contact" else []
    entries = _fetch(
        membership=membership,
        kind=kind,
        pk=pk,
        filters=filters,
        lead_ids=lead_ids,
        keyset=_newer_than(after),
        newest_first=False,
        limit=limit,
    )
    entries.reverse()
    return enrich(
        presentation.present(entries, membership=membership),
        membership=membership,
        kind=kind,
        pk=pk,
        lead_ids=lead_ids,
    )


# --- badges ----------------------------------------------------------------------------------------


def badge_counts(*, membership: Membership, kind: str, ids: list[int]) -> dict[int, int]:
    """Feed rows per entity the viewer may see, for a whole page of entities: exactly what each
    entity's timeline shows (a contact's count includes its converted leads' rows; an account's
    includes its contacts'). One GROUP BY over the feed, plus for contacts one small query for the
    leads converted into the page's contacts. Constant in the number of rows."""
    ids = [int(i) for i in ids]
    if not ids:
        return {}
    feed = selectors.feed_visible(membership=membership)
    if kind == "contact":
        lead_to_contact = dict(
            Lead.objects.for_tenant(membership.tenant_id)
            .filter(converted_contact_id__in=ids)
            .order_by()
            .values_list("id", "converted_contact_id")
        )
        if not lead_to_contact:
            rows = feed.filter(contact_id__in=ids).values("contact_id").annotate(n=Count("id"))
            return {r["contact_id"]: r["n"] for r in rows}
        owner = Case(
            When(contact_id__in=ids, then=F("contact_id")),
            *[When(lead_id=lead, then=Value(contact)) for lead, contact in lead_to_contact.items()],
            output_field=IntegerField(),
        )
        rows = (
            feed.filter(Q(contact_id__in=ids) | Q(lead_id__in=list(lead_to_contact)))
            .annotate(owner=owner)
            .values("owner")
            .annotate(n=Count("id"))
        )
        return {r["owner"]: r["n"] for r in rows if r["owner"] is not None}
    column = {"lead": "lead_id", "account": "account_id"}[kind]
    rows = feed.filter(**{f"{column}__in": ids}).values(column).annotate(n=Count("id"))
    return {r[column]: r["n"] for r in rows}


def badge_label(count: int) -> str:
    if not count:
        return "No activity"
    if count == 1:
        return "1 Activity"
    return f"{count:,} Activities"

"""Reads of the audit trail. Every read goes through ``feed_visible`` so the visibility rule holds.

The grid reads ``activity_feed`` (a UNION ALL view over two single-table branches) by keyset on
``(occurred_at, id)``: never OFFSET, never an exact COUNT(*) over a big set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from django.core import signing
from django.db import connections, transaction
from django.db.models import QuerySet
from django.db.utils import OperationalError
from django.utils.dateparse import parse_datetime

from crm import visibility
from crm.models import Account, Contact, Lead, Membership

from .models import FeedEntry

# Name filters resolve to at most this many entity ids before seeking the feed (the UI says so).
NAME_ID_CAP = 5000
# Totals are exact up to this many rows, "10,000+" beyond.
COUNT_CAP = 10_000
COUNT_TIMEOUT_MS = 1500
PAGE_SIZES = (25, 50, 100)
DEFAULT_PAGE_SIZE = 50
CURSOR_SALT = "activities.grid.cursor"

# Matches the GIN expression indexes act_summary_tsv / ci_summary_tsv (activities.models.SummaryTsvector)
# through the view.
SUMMARY_TSVECTOR = "to_tsvector('simple'::regconfig, (summary)::text)"


def feed_visible(*, membership: Membership) -> QuerySet[FeedEntry]:
    """The tenant's feed rows this member may see (team scoping; redaction happens at presentation)."""
    queryset = FeedEntry.objects.for_tenant(membership.tenant_id)
    return visibility.scope(queryset, membership, team_field="team", user_field="agent")


def feed_recent(*, membership: Membership, limit: int = 20) -> list[FeedEntry]:
    return list(feed_visible(membership=membership).order_by("-occurred_at", "-id")[:limit])


# --- filters ---------------------------------------------------------------------------------------


def _ilike_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def entity_ids_by_name(model, *, tenant_id: int, text: str, cap: int = NAME_ID_CAP) -> tuple[list[int], bool]:
    """Ids of the tenant's contacts/leads/accounts whose name contains ``text`` (case-insensitive).

    ``name ILIKE '%x%'`` is what the ``gin_trgm_ops`` index on ``name`` serves (Django's icontains
    compiles to ``UPPER(name) LIKE`` which it cannot). Returns (ids, capped).
    """
    table = model._meta.db_table
    # model.objects.db: the read replica inside a replica view (crm.db_router), else the primary.
    with connections[model.objects.db].cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {table} WHERE tenant_id = %s AND name ILIKE %s LIMIT %s",  # noqa: S608
            [tenant_id, _ilike_pattern(text), cap + 1],
        )
        ids = [r[0] for r in cursor.fetchall()]
    return ids[:cap], len(ids) > cap


_WORD = re.compile(r"\w+", re.UNICODE)


def summary_tsquery(text: str) -> str | None:
    """A safe ``to_tsquery('simple', ...)`` string: words ANDed, the last one as a prefix."""
    words = [w.lower() for w in _WORD.findall(text or "")][:8]
    if not words:
        return None
    parts = [f"'{w}'" for w in words]
    parts[-1] += ":*"
    return " & ".join(parts)


NAME_MODELS = {"contact": Contact, "lead": Lead, "account": Account}


@dataclass
class GridQuery:
    """The validated grid state (what the filter form produced)."""

    types: list[str] = field(default_factory=list)
    agents: list[int] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    contact: str = ""
    lead: str = ""
    account: str = ""
    direction: str = ""
    summary: str = ""
    date_from: datetime | None = None  # inclusive
    date_to: datetime | None = None  # exclusive
    descending: bool = True
    per_page: int = DEFAULT_PAGE_SIZE


@dataclass
class Filtered:
    queryset: QuerySet
    capped: list[str]  # names of filters whose id list hit NAME_ID_CAP
    empty: bool = False  # a name filter matched nothing: no need to query the feed
    selective: bool = False  # a name or text filter: may match few rows (see feed_page)


def feed_filtered(*, membership: Membership, q: GridQuery) -> Filtered:
    qs = feed_visible(membership=membership)
    capped: list[str] = []
    if q.types:
        qs = qs.filter(type__in=q.types)
    if q.agents:
        qs = qs.filter(agent_id__in=q.agents)
    if q.sources:
        qs = qs.filter(source__in=q.sources)
    if q.direction:
        qs = qs.filter(direction=q.direction)
    if q.date_from:
        qs = qs.filter(occurred_at__gte=q.date_from)
    if q.date_to:
        qs = qs.filter(occurred_at__lt=q.date_to)
    for name, model in NAME_MODELS.items():
        text = getattr(q, name)
        if not text:
            continue
        ids, was_capped = entity_ids_by_name(model, tenant_id=membership.tenant_id, text=text)
        if was_capped:
            capped.append(name)
        if not ids:
            return Filtered(qs.none(), capped, empty=True)
        qs = qs.filter(**{f"{name}_id__in": ids})
    if q.summary:
        tsq = summary_tsquery(q.summary)
        if tsq is None:
            return Filtered(qs.none(), capped, empty=True)
        # extra(): the predicate must match the GIN expression index verbatim; the term is a bound param.
        qs = qs.extra(where=[f"{SUMMARY_TSVECTOR} @@ to_tsquery('simple'::regconfig, %s)"], params=[tsq])  # noqa: S610  # nosec B610  # constant SQL, bound term
    selective = any(getattr(q, name) for name in NAME_MODELS) or bool(q.summary)
    return Filtered(qs, capped, selective=selective)


# --- keyset paging ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    occurred_at: datetime
    id: int
    before: bool  # True: the page before this position (towards the top), False: after it

    def sign(self) -> str:
        payload = [self.occurred_at.isoformat(), self.id, "b" if self.before else "a"]
        return signing.dumps(payload, salt=CURSOR_SALT, compress=False)

    @classmethod
    def load(cls, token: str) -> Cursor:
        """Raises ValueError for anything not produced by :meth:`sign`."""
        try:
            when, pk, side = signing.loads(token, salt=CURSOR_SALT)
            moment = parse_datetime(when)
            if moment is None or side not in ("a", "b") or not isinstance(pk, int):
                raise ValueError("bad cursor")
        except (signing.BadSignature, TypeError, ValueError) as exc:
            raise ValueError("bad cursor") from exc
        return cls(occurred_at=moment, id=pk, before=side == "b")


@dataclass
class Page:
    entries: list[FeedEntry]
    next_cursor: str | None  # further in the current sort order
    prev_cursor: str | None  # back towards the top


# A selective filter (name, text) first tries to walk the tenant's time index in order for this long;
# if the matches are too rare to fill a page by then, the few matches are fetched through the filter's
# own index (GIN, contact ids) and sorted in memory instead.
WALK_TIMEOUT_MS = 60


def _fetch_within(qs: QuerySet, timeout_ms: int) -> list | None:
    """``list(qs)`` if it finishes within ``timeout_ms``, else None (statement cancelled)."""
    try:
        # On the connection the queryset reads (the replica inside a replica view, crm.db_router).
        with transaction.atomic(using=qs.db), connections[qs.db].cursor() as cursor:
            cursor.execute(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
            return list(qs)
    except OperationalError:
        return None


def _seek(
    qs: QuerySet, *, cursor: Cursor | None, descending: bool, small: bool = False
) -> tuple[QuerySet, bool]:
    """Apply the keyset predicate; returns (queryset ordered for fetching, reversed?).

    ``small``: order by an expression no index provides, so PostgreSQL fetches the few matches
    through the filter's own index (GIN, contact ids) and sorts them, instead of walking the tenant's
    time index hoping to meet them (a rare word: 3 s walk vs 2 ms).
    """
    # Fetch direction: "after" follows the sort order; "before" runs against it, then is reversed.
    forward = cursor is None or not cursor.before
    fetch_desc = descending if forward else not descending
    if cursor is not None:
        op = "<" if fetch_desc else ">"
        # A row-value comparison, which PostgreSQL uses as one index condition on (time desc, id desc).
        qs = qs.extra(where=[f"(occurred_at, id) {op} (%s, %s)"], params=[cursor.occurred_at, cursor.id])  # noqa: S610  # nosec B610  # op is "<" or ">", values bound
    if small:
        qs = qs.extra(select={"sort_at": "occurred_at + interval '0 seconds'"})  # noqa: S610
        order = ("-sort_at", "-id") if fetch_desc else ("sort_at", "id")
    else:
        order = ("-occurred_at", "-id") if fetch_desc else ("occurred_at", "id")
    return qs.order_by(*order), not forward


def feed_page(
    qs: QuerySet, *, cursor: Cursor | None, descending: bool, per_page: int, selective: bool = False
) -> Page:
    ordered, reverse = _seek(qs, cursor=cursor, descending=descending)
    rows = (
        _fetch_within(ordered[: per_page + 1], WALK_TIMEOUT_MS)
        if selective
        else list(ordered[: per_page + 1])
    )
    if rows is None:  # rare matches: fetch them by the filter's index and sort them
        ordered, reverse = _seek(qs, cursor=cursor, descending=descending, small=True)
        rows = list(ordered[: per_page + 1])
    more = len(rows) > per_page
    rows = rows[:per_page]
    if reverse:
        rows.reverse()
    if not rows:
        return Page([], None, None)
    first, last = rows[0], rows[-1]
    if reverse:
        has_next, has_prev = True, more
    else:
        has_next, has_prev = more, cursor is not None
    next_cursor = Cursor(last.occurred_at, last.id, before=False).sign() if has_next else None
    prev_cursor = Cursor(first.occurred_at, first.id, before=True).sign() if has_prev else None
    return Page(rows, next_cursor, prev_cursor)


def feed_iter_batches(qs: QuerySet, *, fields: list[str], descending: bool = True, batch: int = 5000):
    """Yield lists of value tuples in keyset batches (each batch a fresh indexed seek; no OFFSET, no
    server-side cursor held open). ``fields`` must include ``occurred_at`` and ``id``."""
    i_when, i_id = fields.index("occurred_at"), fields.index("id")
    cursor = None
    while True:
        ordered, _ = _seek(qs, cursor=cursor, descending=descending)
        rows = list(ordered.values_list(*fields)[:batch])
        if not rows:
            return
        yield rows
        if len(rows) < batch:
            return
        last = rows[-1]
        cursor = Cursor(last[i_when], last[i_id], before=False)


def feed_capped_count(
    qs: QuerySet, *, cap: int = COUNT_CAP, timeout_ms: int = COUNT_TIMEOUT_MS
) -> int | None:
    """min(count, cap + 1), or None when it would take longer than ``timeout_ms``."""
    sql, params = qs.order_by().values("id")[: cap + 1].query.sql_with_params()
    try:
        with transaction.atomic(using=qs.db), connections[qs.db].cursor() as cursor:
            cursor.execute(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
            cursor.execute(f"SELECT count(*) FROM ({sql}) AS capped", params)  # noqa: S608
            return cursor.fetchone()[0]
    except OperationalError:
        return None

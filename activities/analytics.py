"""Reads for communication analytics (issue 9). Figures come from the trigger-maintained aggregates in
``activities/analytics_sql.py``; only email response times are computed at request time, from an index
range of the period's email activities.

Visibility: the same rule as everywhere (crm/visibility.py): admins count the whole tenant, managers and
agents count rows of their teams plus rows they are the agent of. Response-time samples are attributed
to the inbound row's team and agent.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from django.db import connection
from django.utils import timezone

from crm import visibility
from crm.models import Account, Contact, Membership, Team

from .models import ActivityType

# Communication channels shown in volume and mix charts (notes, tasks, conversions are not channels).
CHANNEL_TYPES = [
    ActivityType.CALL,
    ActivityType.EMAIL,
    ActivityType.SMS,
    ActivityType.WHATSAPP,
    ActivityType.CHAT,
    ActivityType.TICKET,
    ActivityType.MEETING,
]
INTERACTION_TYPES = [ActivityType.CALL, ActivityType.SMS, ActivityType.WHATSAPP, ActivityType.CHAT]
PRESETS = {"7": 7, "30": 30, "90": 90}
MAX_DAYS = 366


@dataclass(frozen=True)
class Period:
    start: date  # inclusive
    end: date  # inclusive

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def previous(self) -> Period:
        return Period(self.start - timedelta(days=self.days), self.start - timedelta(days=1))

    @property
    def start_dt(self) -> datetime:
        return datetime.combine(self.start, time.min, tzinfo=UTC)

    @property
    def end_dt(self) -> datetime:  # exclusive
        return datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=UTC)

    @property
    def bucket(self) -> str:
        return "day" if self.days <= 31 else "week"


def parse_period(params, *, today: date | None = None) -> tuple[Period, list[str]]:
    """Period from ?range=7|30|90|custom&start=YYYY-MM-DD&end=YYYY-MM-DD; errors in words, never a crash."""
    today = today or timezone.now().astimezone(UTC).date()
    errors: list[str] = []
    choice = params.get("range") or "30"
    if choice in PRESETS:
        return Period(today - timedelta(days=PRESETS[choice] - 1), today), errors
    if choice != "custom":
        errors.append("Unknown range: choose 7, 30 or 90 days, or a custom range.")
        return Period(today - timedelta(days=29), today), errors
    try:
        start = date.fromisoformat(params.get("start", ""))
        end = date.fromisoformat(params.get("end", ""))
    except ValueError:
        errors.append("Enter both dates of the custom range as YYYY-MM-DD.")
        return Period(today - timedelta(days=29), today), errors
    if end < start:
        errors.append("The end date is before the start date.")
        return Period(today - timedelta(days=29), today), errors
    if (end - start).days + 1 > MAX_DAYS:
        errors.append(f"A custom range covers at most {MAX_DAYS} days.")
        return Period(end - timedelta(days=MAX_DAYS - 1), end), errors
    return Period(start, end), errors


def visible_teams(membership: Membership):
    teams = Team.objects.for_tenant(membership.tenant_id)
    if not visibility.sees_whole_tenant(membership):
        teams = teams.filter(pk__in=visibility.team_ids(membership))
    return teams.order_by("name")


@dataclass
class Scope:
    """The SQL predicate for rows of aggregate tables this viewer may count (plus a team filter)."""

    sql: str
    params: dict

    @classmethod
    def build(cls, membership: Membership, *, team_id: int | None = None) -> Scope:
        parts = ["tenant_id = %(tenant)s"]
        params: dict = {"tenant": membership.tenant_id}
        if not visibility.sees_whole_tenant(membership):
            parts.append("(team_id = ANY(%(teams)s) OR agent_id = %(me)s)")
            params["teams"] = visibility.team_ids(membership)
            params["me"] = membership.user_id
        if team_id is not None:
            parts.append("team_id = %(team)s")
            params["team"] = team_id
        return cls(" AND ".join(parts), params)


def _rows(sql: str, params: dict) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


# --- Volume, mix, teams --------------------------------------------------------------------------------


@dataclass
class VolumeSeries:
    buckets: list[date]
    # (type, direction) -> counts aligned with buckets
    series: dict[tuple[str, str], list[int]] = field(default_factory=dict)

    def by_type(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for (type_, _direction), counts in self.series.items():
            acc = out.setdefault(type_, [0] * len(self.buckets))
            for i, n in enumerate(counts):
                acc[i] += n
        return out

    def by_direction(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for (_type, direction), counts in self.series.items():
            out[direction] = out.get(direction, 0) + sum(counts)
        return out


def _bucket_start(day: date, bucket: str) -> date:
    return day if bucket == "day" else day - timedelta(days=day.weekday())


def volume(*, membership: Membership, period: Period, team_id: int | None = None) -> VolumeSeries:
    scope = Scope.build(membership, team_id=team_id)
    rows = _rows(
        f"""SELECT day, type, direction, sum(n) FROM analytics_daily_all
             WHERE {scope.sql} AND day BETWEEN %(start)s AND %(end)s AND type = ANY(%(types)s)
             GROUP BY 1, 2, 3""",  # noqa: S608 - scope.sql is built from constants, values are parameters
        {**scope.params, "start": period.start, "end": period.end, "types": [str(t) for t in CHANNEL_TYPES]},
    )
    first = _bucket_start(period.start, period.bucket)
    step = 1 if period.bucket == "day" else 7
    buckets = []
    d = first
    while d <= period.end:
        buckets.append(d)
        d += timedelta(days=step)
    index = {b: i for i, b in enumerate(buckets)}
    result = VolumeSeries(buckets=buckets)
    for day, type_, direction, n in rows:
        counts = result.series.setdefault((type_, direction), [0] * len(buckets))
        counts[index[_bucket_start(day, period.bucket)]] += int(n)
    return result


def channel_mix(series: VolumeSeries) -> list[tuple[str, str, int, float]]:
    """(type, label, count, share %) for every channel, largest first."""
    totals = {t: sum(c) for t, c in series.by_type().items()}
    grand = sum(totals.values())
    labels = dict(ActivityType.choices)
    out = [(str(t), labels[t], totals.get(str(t), 0), 0.0) for t in CHANNEL_TYPES]
    out = [(t, label, n, round(100 * n / grand, 1) if grand else 0.0) for t, label, n, _ in out]
    return sorted(out, key=lambda row: (-row[2], row[1]))


# --- Response times ------------------------------------------------------------------------------------


@dataclass
class Sample:
    kind: str  # "interaction" or "email"
    channel: str  # activity type: call / sms / whatsapp / chat / email
    team_id: int
    agent_id: int
    contact_id: int
    seconds: float | None  # None: no reply (yet)


CHANNEL_OF = {"voice": "call", "sms": "sms", "whatsapp": "whatsapp", "webchat": "chat", "email": "email"}


def interaction_samples(
    *,
    membership: Membership,
    period: Period,
    team_id: int | None = None,
    contact_ids: list[int] | None = None,
) -> list[Sample]:
    scope = Scope.build(membership, team_id=team_id)
    extra = " AND contact_id = ANY(%(contacts)s)" if contact_ids is not None else ""
    rows = _rows(
        f"""SELECT channel, team_id, agent_id, contact_id, EXTRACT(EPOCH FROM first_out - first_in)
              FROM analytics_interaction_response
             WHERE {scope.sql} AND first_in >= %(start)s AND first_in < %(end)s{extra}""",  # noqa: S608
        {**scope.params, "start": period.start_dt, "end": period.end_dt, "contacts": contact_ids or []},
    )
    return [
        Sample(
            "interaction", CHANNEL_OF.get(ch, ch), team, agent, contact, float(s) if s is not None else None
        )
        for ch, team, agent, contact, s in rows
    ]


def email_samples(
    *,
    membership: Membership,
    period: Period,
    team_id: int | None = None,
    contact_ids: list[int] | None = None,
) -> list[Sample]:
    """An inbound email that starts a run of inbound mail from a contact, to the next outbound email to
    that contact (replies after the period still count). Overnight gaps count as elapsed time."""
    scope = Scope.build(membership, team_id=team_id)
    extra = " AND contact_id = ANY(%(contacts)s)" if contact_ids is not None else ""
    rows = _rows(
        f"""WITH e AS (
              SELECT tenant_id, contact_id, occurred_at, direction, COALESCE(team_id, 0) AS team_id,
                     COALESCE(user_id, 0) AS agent_id,
                     lag(direction) OVER w AS prev_direction,
                     min(occurred_at) FILTER (WHERE direction = 'outbound') OVER (
                         PARTITION BY contact_id ORDER BY occurred_at, id
                         ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING) AS next_out
                FROM crm_activities
               WHERE tenant_id = %(tenant)s AND type = 'email' AND deleted_at IS NULL
                 AND contact_id IS NOT NULL AND occurred_at >= %(start)s{extra}
              WINDOW w AS (PARTITION BY contact_id ORDER BY occurred_at, id))
            SELECT team_id, agent_id, contact_id, EXTRACT(EPOCH FROM next_out - occurred_at) FROM e
             WHERE direction = 'inbound' AND prev_direction IS DISTINCT FROM 'inbound'
               AND occurred_at < %(end)s AND {scope.sql}""",  # noqa: S608
        {**scope.params, "start": period.start_dt, "end": period.end_dt, "contacts": contact_ids or []},
    )
    return [
        Sample("email", "email", team, agent, contact, float(s) if s is not None else None)
        for team, agent, contact, s in rows
    ]


@dataclass
class ResponseStats:
    answered: int
    unanswered: int
    median: float | None
    p90: float | None


def response_stats(samples: list[Sample]) -> ResponseStats:
    values = sorted(s.seconds for s in samples if s.seconds is not None)
    if not values:
        return ResponseStats(0, len(samples), None, None)
    return ResponseStats(
        answered=len(values),
        unanswered=len(samples) - len(values),
        median=statistics.median(values),
        p90=_percentile(values, 0.9),
    )


def _percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (PostgreSQL's percentile_cont)."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = (len(sorted_values) - 1) * q
    lower = int(pos)
    upper = min(lower + 1, len(sorted_values) - 1)
    return sorted_values[lower] + (sorted_values[upper] - sorted_values[lower]) * (pos - lower)


def grouped_stats(samples: list[Sample], key) -> dict:
    groups: dict = {}
    for s in samples:
        groups.setdefault(key(s), []).append(s)
    return {k: response_stats(v) for k, v in groups.items()}


# --- Team and agent performance --------------------------------------------------------------------------


@dataclass
class PerformanceRow:
    label: str
    handled: int
    logged: int
    median_response: float | None
    previous_handled: int
    previous_logged: int
    previous_median: float | None

    @property
    def handled_trend(self) -> float | None:
        return _trend(self.handled, self.previous_handled)

    @property
    def logged_trend(self) -> float | None:
        return _trend(self.logged, self.previous_logged)


def _trend(now: int, before: int) -> float | None:
    if before == 0:
        return None
    return round(100 * (now - before) / before, 1)


def _counts_by(
    membership: Membership, period: Period, team_id: int | None, column: str
) -> dict[int, tuple[int, int]]:
    scope = Scope.build(membership, team_id=team_id)
    rows = _rows(
        f"""SELECT {column},
                   sum(n) FILTER (WHERE source = 'interaction' AND type = ANY(%(interaction_types)s)),
                   sum(n) FILTER (WHERE source = 'manual')
              FROM analytics_daily_all
             WHERE {scope.sql} AND day BETWEEN %(start)s AND %(end)s
             GROUP BY 1""",  # noqa: S608 - column is one of two constants
        {
            **scope.params,
            "start": period.start,
            "end": period.end,
            "interaction_types": [str(t) for t in INTERACTION_TYPES],
        },
    )
    return {key: (int(h or 0), int(m or 0)) for key, h, m in rows}


def response_samples(*, membership: Membership, period: Period, team_id: int | None = None) -> list[Sample]:
    """Interaction and email response-time samples of the period."""
    return interaction_samples(membership=membership, period=period, team_id=team_id) + email_samples(
        membership=membership, period=period, team_id=team_id
    )


def performance(
    *, membership: Membership, period: Period, team_id: int | None = None, samples: list[Sample] | None = None
) -> tuple[list[PerformanceRow], list[PerformanceRow]]:
    """Rows per team and per agent: interactions handled, activities logged, median response time, and
    the same for the previous period of equal length. ``samples``: the period's response samples when the
    caller already has them (the dashboard does), so they are not computed twice."""
    from django.contrib.auth import get_user_model

    prev = period.previous
    if samples is None:
        samples = response_samples(membership=membership, period=period, team_id=team_id)
    prev_samples = response_samples(membership=membership, period=prev, team_id=team_id)
    tables = []
    for column, key in (("team_id", lambda s: s.team_id), ("agent_id", lambda s: s.agent_id)):
        now = _counts_by(membership, period, team_id, column)
        before = _counts_by(membership, prev, team_id, column)
        stats_now = grouped_stats(samples, key)
        stats_before = grouped_stats(prev_samples, key)
        ids = set(now) | set(before) | set(stats_now)
        if column == "team_id":
            names = dict(
                Team.objects.for_tenant(membership.tenant_id).filter(pk__in=ids).values_list("pk", "name")
            )
        else:
            names = {
                u.pk: u.get_full_name() or u.email
                for u in get_user_model().objects.filter(pk__in=ids).only("first_name", "last_name", "email")
            }
        rows = []
        for pk in ids:
            h, m = now.get(pk, (0, 0))
            ph, pm = before.get(pk, (0, 0))
            rows.append(
                PerformanceRow(
                    label=names.get(pk) or ("No team" if column == "team_id" else "Unassigned"),
                    handled=h,
                    logged=m,
                    median_response=stats_now[pk].median if pk in stats_now else None,
                    previous_handled=ph,
                    previous_logged=pm,
                    previous_median=stats_before[pk].median if pk in stats_before else None,
                )
            )
        tables.append(sorted(rows, key=lambda r: (-(r.handled + r.logged), r.label)))
    return tables[0], tables[1]


# --- Engagement -----------------------------------------------------------------------------------------


@dataclass
class Engagement:
    most_contacts: list[tuple[Contact, int]]
    least_contacts: list[tuple[Contact, int]]
    most_accounts: list[tuple[Account, int]]
    least_accounts: list[tuple[Account, int]]
    quiet: list[QuietContact]


@dataclass
class QuietContact:
    contact: Contact
    count: int
    last_at: datetime
    usual_gap_days: float
    silent_days: float


def _ranked(membership, period, team_id, column: str, descending: bool, limit: int) -> list[tuple[int, int]]:
    scope = Scope.build(membership, team_id=team_id)
    order = "DESC" if descending else "ASC"
    return _rows(
        f"""SELECT {column}, sum(n) AS total FROM analytics_contact_daily_all
             WHERE {scope.sql} AND day BETWEEN %(start)s AND %(end)s AND {column} <> 0
             GROUP BY 1 HAVING sum(n) > 0 ORDER BY total {order}, 1 LIMIT %(limit)s""",  # noqa: S608 - constants only
        {**scope.params, "start": period.start, "end": period.end, "limit": limit},
    )


def engagement(
    *, membership: Membership, period: Period, team_id: int | None = None, limit: int = 10
) -> Engagement:
    ranked = {
        (col, desc): _ranked(membership, period, team_id, col, desc, limit)
        for col in ("contact_id", "account_id")
        for desc in (True, False)
    }
    contact_ids = {pk for key in ranked if key[0] == "contact_id" for pk, _ in ranked[key]}
    account_ids = {pk for key in ranked if key[0] == "account_id" for pk, _ in ranked[key]}
    quiet = going_quiet(membership=membership, limit=limit)
    contacts = Contact.objects.for_tenant(membership.tenant_id).in_bulk(contact_ids)
    accounts = Account.objects.for_tenant(membership.tenant_id).in_bulk(account_ids)

    def named(key, objects):
        return [(objects[pk], int(n)) for pk, n in ranked[key] if pk in objects]

    return Engagement(
        most_contacts=named(("contact_id", True), contacts),
        least_contacts=named(("contact_id", False), contacts),
        most_accounts=named(("account_id", True), accounts),
        least_accounts=named(("account_id", False), accounts),
        quiet=quiet,
    )


def going_quiet(
    *, membership: Membership, limit: int = 10, now: datetime | None = None
) -> list[QuietContact]:
    """Contacts silent for more than twice their usual gap between activities (and at least a week),
    among those with three or more activities; the longest silence relative to their rhythm first.
    Listed only for contacts the viewer may see (their teams' or owned by them; admins: all)."""
    now = now or timezone.now()
    params: dict = {"now": now, "tenant": membership.tenant_id, "limit": limit}
    visible = ""
    if not visibility.sees_whole_tenant(membership):
        visible = """AND EXISTS (SELECT 1 FROM crm_contact c
                            WHERE c.id = s.contact_id AND c.tenant_id = s.tenant_id
                              AND (c.team_id = ANY(%(teams)s) OR c.owner_id = %(me)s))"""
        params.update(teams=visibility.team_ids(membership), me=membership.user_id)
    rows = _rows(
        f"""SELECT s.contact_id, s.n, s.last_at,
                   EXTRACT(EPOCH FROM (s.last_at - s.first_at)) / 86400.0 / (s.n - 1) AS gap_days,
                   EXTRACT(EPOCH FROM (%(now)s - s.last_at)) / 86400.0 AS silent_days
              FROM analytics_contact_summary_all s
             WHERE s.tenant_id = %(tenant)s AND s.n >= 3
               AND %(now)s - s.last_at > GREATEST(2 * (s.last_at - s.first_at) / (s.n - 1), interval '7 days')
               {visible}
             ORDER BY (EXTRACT(EPOCH FROM (%(now)s - s.last_at)) + 1)
                      / (EXTRACT(EPOCH FROM (s.last_at - s.first_at)) / (s.n - 1) + 1) DESC, s.contact_id
             LIMIT %(limit)s""",  # noqa: S608 - the visibility clause is a constant
        params,
    )
    objects = Contact.objects.for_tenant(membership.tenant_id).in_bulk([r[0] for r in rows])
    return [
        QuietContact(objects[pk], int(n), last_at, float(gap), float(silent))
        for pk, n, last_at, gap, silent in rows
        if pk in objects
    ]


# --- Per contact / account -------------------------------------------------------------------------------


@dataclass
class EntityMetrics:
    total: int
    per_week: float
    mix: list[tuple[str, str, int, float]]
    last_at: datetime | None
    their_response: ResponseStats  # how fast the contact answers our outbound email
    our_response: ResponseStats  # how fast we answer them (email and interactions)
    weeks: list[date]
    weekly: list[int]


def contact_responsiveness(
    *, membership: Membership, contact_ids: list[int], since: datetime
) -> ResponseStats:
    """An outbound email that starts a run of outbound mail to a contact, to the contact's next inbound."""
    scope = Scope.build(membership)
    rows = _rows(
        f"""WITH e AS (
              SELECT tenant_id, occurred_at, direction, COALESCE(team_id, 0) AS team_id,
                     COALESCE(user_id, 0) AS agent_id, lag(direction) OVER w AS prev_direction,
                     min(occurred_at) FILTER (WHERE direction = 'inbound') OVER (
                         PARTITION BY contact_id ORDER BY occurred_at, id
                         ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING) AS next_in
                FROM crm_activities
               WHERE tenant_id = %(tenant)s AND type = 'email' AND deleted_at IS NULL
                 AND contact_id = ANY(%(contacts)s) AND occurred_at >= %(since)s
              WINDOW w AS (PARTITION BY contact_id ORDER BY occurred_at, id))
            SELECT EXTRACT(EPOCH FROM next_in - occurred_at) FROM e
             WHERE direction = 'outbound' AND prev_direction IS DISTINCT FROM 'outbound' AND {scope.sql}""",  # noqa: S608
        {**scope.params, "contacts": contact_ids, "since": since},
    )
    return response_stats(
        [Sample("email", "email", 0, 0, 0, float(s) if s is not None else None) for (s,) in rows]
    )


def entity_metrics(
    *,
    membership: Membership,
    contact_ids: list[int] | None = None,
    account_id: int | None = None,
    days: int = 90,
) -> EntityMetrics:
    """Figures for one contact (contact_ids=[pk]) or one account (its rolled-up rows) over the last days."""
    from .selectors import feed_visible

    today = timezone.now().astimezone(UTC).date()
    period = Period(today - timedelta(days=days - 1), today)
    scope = Scope.build(membership)
    if account_id is not None:
        where, params = "account_id = %(account)s", {"account": account_id}
        contact_ids = list(
            Contact.objects.for_tenant(membership.tenant_id)
            .filter(account_id=account_id)
            .values_list("pk", flat=True)
        )
    else:
        where, params = "contact_id = ANY(%(contacts)s)", {"contacts": contact_ids}
    weeks_back = 26
    first_week = _bucket_start(today - timedelta(weeks=weeks_back - 1), "week")
    rows = _rows(
        f"""SELECT day, type, sum(n) FROM analytics_contact_daily_all
             WHERE {scope.sql} AND {where} AND day >= %(since)s
             GROUP BY 1, 2""",  # noqa: S608 - constants only
        {**scope.params, **params, "since": min(first_week, period.start)},
    )
    weeks = [first_week + timedelta(weeks=i) for i in range(weeks_back)]
    weekly = [0] * weeks_back
    mix_counts: dict[str, int] = {}
    total = 0
    for day, type_, n in rows:
        n = int(n)
        index = (day - first_week).days // 7
        if 0 <= index < weeks_back:
            weekly[index] += n
        if day >= period.start:
            total += n
            mix_counts[type_] = mix_counts.get(type_, 0) + n
    labels = dict(ActivityType.choices)
    mix = sorted(
        (
            (t, labels.get(t, t), n, round(100 * n / total, 1) if total else 0.0)
            for t, n in mix_counts.items()
        ),
        key=lambda r: (-r[2], r[1]),
    )
    feed = feed_visible(membership=membership)
    feed = (
        feed.filter(account_id=account_id)
        if account_id is not None
        else feed.filter(contact_id__in=contact_ids)
    )
    last = feed.order_by("-occurred_at", "-id").values_list("occurred_at", flat=True).first()
    ours = interaction_samples(membership=membership, period=period, contact_ids=contact_ids) + email_samples(
        membership=membership, period=period, contact_ids=contact_ids
    )
    return EntityMetrics(
        total=total,
        per_week=round(total / (days / 7), 1),
        mix=mix,
        last_at=last,
        their_response=contact_responsiveness(
            membership=membership, contact_ids=contact_ids, since=period.start_dt
        ),
        our_response=response_stats(ours),
        weeks=weeks,
        weekly=weekly,
    )


def humanize_seconds(value: float | None) -> str:
    if value is None:
        return "–"
    value = float(value)
    if value < 60:
        return f"{value:.0f} s"
    if value < 3600:
        return f"{value / 60:.0f} min"
    if value < 86400:
        return f"{value / 3600:.1f} h"
    return f"{value / 86400:.1f} d"

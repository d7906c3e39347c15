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

from django.utils import timezone

from crm import visibility
from crm.db_router import read_connection
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
    # read_connection(): the read replica inside a @replica_reads view (crm.db_router), else the primary.
    with read_connection().cursor() as cursor:
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


@dataclass
class DailyRollup:
    """What the volume chart, the channel mix and the team / agent tables need, for the period and the
    previous one, from the per-team and per-agent daily tables (before: five scans of analytics_daily,
    whose agent dimension barely compresses a busy tenant's days)."""

    period: Period
    volume: list[tuple[date, str, str, int]]  # (day, type, direction, n), current period, channel types
    # (column, current?) -> {team or agent id: (handled, logged)}
    counts: dict[tuple[str, bool], dict[int, tuple[int, int]]]


def daily_rollup(*, membership: Membership, period: Period, team_id: int | None = None) -> DailyRollup:
    """Visibility as Scope: a manager's teams come from analytics_team_daily; their own rows in other
    teams (or in none) from analytics_daily through its agent index; the agent table is small enough to
    filter as it is."""
    params: dict = {
        "tenant": membership.tenant_id,
        "prev_start": period.previous.start,
        "start": period.start,
        "end": period.end,
        "interaction_types": [str(t) for t in INTERACTION_TYPES],
        "team": team_id,
    }
    team_filter = " AND team_id = %(team)s" if team_id is not None else ""
    days = "tenant_id = %(tenant)s AND day BETWEEN %(prev_start)s AND %(end)s" + team_filter
    team_rows = "SELECT day, team_id, type, direction, n, handled, logged FROM analytics_team_daily_all"
    team_rows += " WHERE " + days
    agent_scope = ""
    if not visibility.sees_whole_tenant(membership):
        params.update(teams=visibility.team_ids(membership), me=membership.user_id)
        team_rows += f""" AND team_id = ANY(%(teams)s)
            UNION ALL
            SELECT day, team_id, type, direction, n,
                   CASE WHEN source = 'interaction' AND type = ANY(%(interaction_types)s) THEN n ELSE 0 END,
                   CASE WHEN source = 'manual' THEN n ELSE 0 END
              FROM analytics_daily_all
             WHERE {days} AND agent_id = %(me)s AND team_id <> ALL(%(teams)s)"""  # noqa: S608 - constants only
        agent_scope = " AND (team_id = ANY(%(teams)s) OR agent_id = %(me)s)"
    rows = _rows(
        f"""SELECT GROUPING(day, type, direction) = 0, day, type, direction, team_id, cur,
                   sum(n), sum(handled), sum(logged)
              FROM (SELECT *, day >= %(start)s AS cur FROM ({team_rows}) r) d
             GROUP BY GROUPING SETS ((day, type, direction), (team_id, cur))""",  # noqa: S608 - constants only
        params,
    )
    channels = {str(t) for t in CHANNEL_TYPES}
    volume_rows = []
    counts: dict[tuple[str, bool], dict[int, tuple[int, int]]] = {
        (c, cur): {} for c in ("team_id", "agent_id") for cur in (True, False)
    }
    for is_volume, day, type_, direction, team, cur, n, handled, logged in rows:
        if is_volume:
            if day >= period.start and type_ in channels:
                volume_rows.append((day, type_, direction, int(n)))
        elif handled or logged:
            counts[("team_id", cur)][team] = (int(handled), int(logged))
    agents = _rows(
        f"""SELECT agent_id, day >= %(start)s, sum(handled), sum(logged) FROM analytics_agent_daily_all
             WHERE {days}{agent_scope} GROUP BY 1, 2""",  # noqa: S608 - constants only
        params,
    )
    for agent, cur, handled, logged in agents:
        if handled or logged:
            counts[("agent_id", cur)][agent] = (int(handled), int(logged))
    return DailyRollup(period=period, volume=volume_rows, counts=counts)


def volume(
    *, membership: Membership, period: Period, team_id: int | None = None, rollup: DailyRollup | None = None
) -> VolumeSeries:
    rollup = rollup or daily_rollup(membership=membership, period=period, team_id=team_id)
    first = _bucket_start(period.start, period.bucket)
    step = 1 if period.bucket == "day" else 7
    buckets = []
    d = first
    while d <= period.end:
        buckets.append(d)
        d += timedelta(days=step)
    index = {b: i for i, b in enumerate(buckets)}
    result = VolumeSeries(buckets=buckets)
    for day, type_, direction, n in rollup.volume:
        counts = result.series.setdefault((type_, direction), [0] * len(buckets))
        counts[index[_bucket_start(day, period.bucket)]] += n
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


def _interaction_sample_sql(scope: Scope, period: Period, contact_ids: list[int] | None) -> tuple[str, dict]:
    """Rows (channel, team_id, agent_id, contact_id, seconds) of the period's interaction samples."""
    extra = " AND contact_id = ANY(%(contacts)s)" if contact_ids is not None else ""
    sql = f"""SELECT channel, team_id, agent_id, contact_id, date_part('epoch', first_out - first_in)
                FROM analytics_interaction_response
               WHERE {scope.sql} AND first_in >= %(start)s AND first_in < %(end)s{extra}"""  # noqa: S608
    params = {**scope.params, "start": period.start_dt, "end": period.end_dt, "contacts": contact_ids or []}
    return sql, params


def interaction_samples(
    *,
    membership: Membership,
    period: Period,
    team_id: int | None = None,
    contact_ids: list[int] | None = None,
) -> list[Sample]:
    sql, params = _interaction_sample_sql(Scope.build(membership, team_id=team_id), period, contact_ids)
    return [
        Sample(
            "interaction", CHANNEL_OF.get(ch, ch), team, agent, contact, float(s) if s is not None else None
        )
        for ch, team, agent, contact, s in _rows(sql, params)
    ]


def email_samples(
    *,
    membership: Membership,
    period: Period,
    team_id: int | None = None,
    contact_ids: list[int] | None = None,
) -> list[Sample]:
    """An inbound email that starts a run of inbound mail from a contact, to the next outbound email to
    that contact (replies after the period still count). Overnight gaps count as elapsed time. A run is
    looked for from the period's start: the first inbound email of the period starts one."""
    return _email_samples_of(
        membership=membership, periods=[period], team_id=team_id, contact_ids=contact_ids
    )[0]


def _email_samples_of(
    *,
    membership: Membership,
    periods: list[Period],
    team_id: int | None = None,
    contact_ids: list[int] | None = None,
) -> list[list[Sample]]:
    """email_samples() for several periods in one pass: an inbound email starts a run in a period when it
    lies in the period and the contact's email before it is not inbound or lies before the period's start
    (exactly what a window over the emails from that start sees)."""
    sql, params = _email_sample_sql(Scope.build(membership, team_id=team_id), periods, contact_ids)
    out: list[list[Sample]] = [[] for _ in periods]
    for team, agent, contact, s, member in _rows(sql, params):
        sample = Sample("email", "email", team, agent, contact, float(s) if s is not None else None)
        for i, inside in enumerate(member):
            if inside:
                out[i].append(sample)
    return out


def _email_sample_sql(scope: Scope, periods: list[Period], contact_ids: list[int] | None) -> tuple[str, dict]:
    """Rows (team_id, agent_id, contact_id, seconds, member) of the periods' email samples; member[i]: the
    row is a sample of periods[i].

    Read from analytics_email_response (one row per inbound email, kept by the fold), except for contacts
    whose email changed since the last fold (analytics_email_dirty): those are computed from the raw rows,
    so the figures are exact at every instant."""
    dirty = [
        pk
        for (pk,) in _rows(
            "SELECT DISTINCT contact_id FROM analytics_email_dirty WHERE tenant_id = %(tenant)s",
            {"tenant": scope.params["tenant"]},
        )
    ]
    if contact_ids is not None:
        wanted = set(contact_ids)
        dirty = [pk for pk in dirty if pk in wanted]
    params = {**scope.params, "contacts": contact_ids or [], "dirty": dirty}
    flags = []
    for i, p in enumerate(periods):
        params[f"s{i}"], params[f"e{i}"] = p.start_dt, p.end_dt
        flags.append(
            f"(occurred_at >= %(s{i})s AND occurred_at < %(e{i})s"
            f" AND (prev_in_at IS NULL OR prev_in_at < %(s{i})s))"
        )
    params["start"] = min(p.start_dt for p in periods)
    params["end"] = max(p.end_dt for p in periods)
    member = f"ARRAY[{', '.join(flags)}]"
    only = " AND contact_id = ANY(%(contacts)s)" if contact_ids is not None else ""
    sql = f"""SELECT team_id, agent_id, contact_id, date_part('epoch', next_out_at - occurred_at), {member}
                FROM analytics_email_response
               WHERE {scope.sql} AND occurred_at >= %(start)s AND occurred_at < %(end)s{only}
                 AND NOT (contact_id = ANY(%(dirty)s))"""  # noqa: S608 - constants only
    if dirty:
        sql += f"""
              UNION ALL
              SELECT team_id, agent_id, contact_id, date_part('epoch', next_out_at - occurred_at), {member}
                FROM ({EMAIL_RUNS_SQL}) e
               WHERE direction = 'inbound' AND occurred_at >= %(start)s AND occurred_at < %(end)s
                 AND {scope.sql}"""  # noqa: S608 - constants only
    return f"SELECT * FROM ({sql}) q(t, a, c, s, member) WHERE true = ANY(member)", params  # noqa: S608


# The email runs of the contacts in %(dirty)s from the raw rows: analytics_email_fill()'s computation
# (activities/analytics_sql.py), for contacts the fold has not recomputed yet. Every email of theirs is
# read (not only the period's): a run's previous email may lie before the period.
EMAIL_RUNS_SQL = """
    SELECT tenant_id, contact_id, occurred_at, direction, COALESCE(team_id, 0) AS team_id,
           COALESCE(user_id, 0) AS agent_id,
           CASE WHEN lag(direction) OVER w = 'inbound' THEN lag(occurred_at) OVER w END AS prev_in_at,
           min(occurred_at) FILTER (WHERE direction = 'outbound') OVER (
               PARTITION BY contact_id ORDER BY occurred_at DESC, id DESC
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS next_out_at
      FROM crm_activities
     WHERE tenant_id = %(tenant)s AND type = 'email' AND deleted_at IS NULL AND contact_id = ANY(%(dirty)s)
    WINDOW w AS (PARTITION BY contact_id ORDER BY occurred_at, id)"""


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


@dataclass
class ResponseSummary:
    """response_stats() of a period's samples, overall and grouped, as the dashboard shows them."""

    overall: ResponseStats
    by_channel: dict[str, ResponseStats]
    by_team: dict[int, ResponseStats]
    by_agent: dict[int, ResponseStats]


def response_summary(
    *, membership: Membership, period: Period, team_id: int | None = None
) -> ResponseSummary:
    """The same figures as response_stats() / grouped_stats() over response_samples(), computed by
    PostgreSQL in one statement (percentile_cont interpolates as _percentile does): the samples of a busy
    tenant's quarter never become Python objects."""
    scope = Scope.build(membership, team_id=team_id)
    interaction_sql, params = _interaction_sample_sql(scope, period, None)
    email_sql, email_params = _email_sample_sql(scope, [period], None)
    rows = _rows(
        f"""WITH s AS (
                SELECT channel, team_id, agent_id, seconds
                  FROM ({interaction_sql}) i(channel, team_id, agent_id, contact_id, seconds)
                UNION ALL
                SELECT 'email', t, a, s FROM ({email_sql}) e)
            SELECT GROUPING(channel, team_id, agent_id), channel, team_id, agent_id, count(*), count(seconds),
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds),
                   percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds)
              FROM s GROUP BY GROUPING SETS ((), (channel), (team_id), (agent_id))""",  # noqa: S608
        {**params, **email_params},
    )
    summary = ResponseSummary(ResponseStats(0, 0, None, None), {}, {}, {})
    for grouping, channel, team, agent, n, answered, median, p90 in rows:
        stats = ResponseStats(answered=answered, unanswered=n - answered, median=median, p90=p90)
        if grouping == 0b111:
            summary.overall = stats
        elif grouping == 0b011:
            summary.by_channel[CHANNEL_OF.get(channel, channel)] = stats
        elif grouping == 0b101:
            summary.by_team[team] = stats
        else:
            summary.by_agent[agent] = stats
    return summary


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
    key: int = 0  # the team or agent id (0: none)

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


def response_samples(*, membership: Membership, period: Period, team_id: int | None = None) -> list[Sample]:
    """Interaction and email response-time samples of the period."""
    return interaction_samples(membership=membership, period=period, team_id=team_id) + email_samples(
        membership=membership, period=period, team_id=team_id
    )


def response_samples_both(
    *, membership: Membership, period: Period, team_id: int | None = None
) -> tuple[list[Sample], list[Sample]]:
    """response_samples() of the period and of the previous one, the email part in one pass."""
    prev = period.previous
    now_email, prev_email = _email_samples_of(membership=membership, periods=[period, prev], team_id=team_id)
    return (
        interaction_samples(membership=membership, period=period, team_id=team_id) + now_email,
        interaction_samples(membership=membership, period=prev, team_id=team_id) + prev_email,
    )


def performance(
    *,
    membership: Membership,
    period: Period,
    team_id: int | None = None,
    samples: list[Sample] | None = None,
    prev_samples: list[Sample] | None = None,
    rollup: DailyRollup | None = None,
    previous_median: bool = True,
    summary: ResponseSummary | None = None,
) -> tuple[list[PerformanceRow], list[PerformanceRow]]:
    """Rows per team and per agent: interactions handled, activities logged, median response time, and
    the same for the previous period of equal length. ``samples``: the period's response samples when the
    caller already has them (the dashboard does), so they are not computed twice; likewise ``prev_samples``
    and ``rollup``. ``previous_median=False``: leave the previous period's median out (None), which spares
    its response samples; the dashboard shows trends of the counts only. ``summary``: the period's
    response_summary() instead of its samples."""
    from django.contrib.auth import get_user_model

    if summary is not None:
        samples = []
    if samples is None and previous_median:
        samples, prev_samples = response_samples_both(membership=membership, period=period, team_id=team_id)
    elif samples is None:
        samples = response_samples(membership=membership, period=period, team_id=team_id)
    if prev_samples is None:
        prev_samples = (
            response_samples(membership=membership, period=period.previous, team_id=team_id)
            if previous_median
            else []
        )
    rollup = rollup or daily_rollup(membership=membership, period=period, team_id=team_id)
    tables = []
    for column, key in (("team_id", lambda s: s.team_id), ("agent_id", lambda s: s.agent_id)):
        now = rollup.counts[(column, True)]
        before = rollup.counts[(column, False)]
        if summary is not None:
            stats_now = summary.by_team if column == "team_id" else summary.by_agent
        else:
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
                    key=pk,
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


def _period_totals(membership, period, team_id, contact_ids: list[int]) -> dict[int, int]:
    """Visible activity count in the period of each given contact (only those above zero)."""
    scope = Scope.build(membership, team_id=team_id)
    rows = _rows(
        f"""SELECT contact_id, sum(n) FROM analytics_contact_daily_all
             WHERE {scope.sql} AND contact_id = ANY(%(contacts)s) AND day BETWEEN %(start)s AND %(end)s
             GROUP BY 1 HAVING sum(n) > 0""",  # noqa: S608 - constants only
        {**scope.params, "contacts": contact_ids, "start": period.start, "end": period.end},
    )
    return {pk: int(n) for pk, n in rows}


def _ranked_full(membership, period, team_id, column: str, limit: int) -> tuple[list, list]:
    """Most and least engaged by one aggregation of the period's rows: (most, least) as (id, count)."""
    scope = Scope.build(membership, team_id=team_id)
    rows = _rows(
        f"""WITH t AS MATERIALIZED (
                SELECT {column} AS pk, sum(n) AS total FROM analytics_contact_daily_all
                 WHERE {scope.sql} AND day BETWEEN %(start)s AND %(end)s AND {column} <> 0
                 GROUP BY 1 HAVING sum(n) > 0)
            (SELECT true, pk, total FROM t ORDER BY total DESC, pk LIMIT %(limit)s)
            UNION ALL
            (SELECT false, pk, total FROM t ORDER BY total ASC, pk LIMIT %(limit)s)""",  # noqa: S608 - constants only
        {**scope.params, "start": period.start, "end": period.end, "limit": limit},
    )
    most = [(pk, int(n)) for top, pk, n in rows if top]
    least = [(pk, int(n)) for top, pk, n in rows if not top]
    return most, least


# Contacts examined by the pruned rankings before they give up and aggregate the whole period.
RANK_SCAN_LIMIT = 20000
RANK_BATCH = 1000


def _most_contacts(membership, period, team_id, limit: int) -> list[tuple[int, int]] | None:
    """The most engaged contacts without aggregating every contact of the period: a contact's count in
    any period is at most its all-time count (analytics_contact_summary, base + pending increments), so
    contacts are examined in descending all-time count until the next one cannot beat the current
    ``limit``-th (a tie could still win on id, so it is examined). None when that takes too long."""
    tenant = membership.tenant_id
    pending = dict(
        _rows(
            """SELECT contact_id, sum(n) FROM analytics_contact_summary_delta
                WHERE tenant_id = %(tenant)s GROUP BY 1""",
            {"tenant": tenant},
        )
    )
    max_pending = max(pending.values(), default=0)
    best: dict[int, int] = {}

    def consider(ids):
        best.update(_period_totals(membership, period, team_id, ids))

    def threshold():
        ranked = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
        return ranked, (ranked[-1][1] if len(ranked) == limit else 0)

    if pending:
        consider(list(pending))
    after: tuple[int, int] | None = None
    scanned = 0
    while scanned < RANK_SCAN_LIMIT:
        keyset = "AND (n < %(n)s OR (n = %(n)s AND contact_id > %(id)s))" if after else ""
        batch = _rows(
            f"""SELECT contact_id, n FROM analytics_contact_summary WHERE tenant_id = %(tenant)s {keyset}
                 ORDER BY n DESC, contact_id LIMIT %(batch)s""",  # noqa: S608 - constants only
            {"tenant": tenant, "batch": RANK_BATCH, "n": after[0] if after else 0, "id": after and after[1]},
        )
        if not batch:
            return threshold()[0]
        _, bar = threshold()
        # Only contacts whose bound can still reach the bar.
        ids = [pk for pk, n in batch if n + max_pending >= bar]
        if ids:
            consider(ids)
        scanned += len(batch)
        after = (batch[-1][1], batch[-1][0])
        ranked, bar = threshold()
        if len(ranked) == limit and after[0] + max_pending < bar:
            return ranked
    return None


def _least_contacts(membership, period, team_id, limit: int) -> list[tuple[int, int]] | None:
    """The least engaged contacts (fewest visible activities in the period, then lowest id) without
    aggregating every contact: no count is below 1, so the first ``limit`` contacts in id order whose
    count is exactly 1 are the answer. None when they are not found quickly (counts above 1)."""
    tenant = membership.tenant_id
    found: list[tuple[int, int]] = []
    after = 0
    scanned = 0
    while scanned < RANK_SCAN_LIMIT:
        ids = [
            pk
            for (pk,) in _rows(
                """(SELECT contact_id FROM analytics_contact_summary
                     WHERE tenant_id = %(tenant)s AND contact_id > %(after)s ORDER BY 1 LIMIT %(batch)s)
                   UNION
                   (SELECT contact_id FROM analytics_contact_summary_delta
                     WHERE tenant_id = %(tenant)s AND contact_id > %(after)s ORDER BY 1 LIMIT %(batch)s)
                   ORDER BY 1 LIMIT %(batch)s""",
                {"tenant": tenant, "after": after, "batch": RANK_BATCH},
            )
        ]
        if not ids:
            return None  # every contact examined, fewer than ``limit`` with a count of 1
        totals = _period_totals(membership, period, team_id, ids)
        for pk in ids:
            if totals.get(pk) == 1:
                found.append((pk, 1))
                if len(found) == limit:
                    return found
        scanned += len(ids)
        after = ids[-1]
    return None


def engagement(
    *, membership: Membership, period: Period, team_id: int | None = None, limit: int = 10
) -> Engagement:
    most_c = _most_contacts(membership, period, team_id, limit)
    least_c = _least_contacts(membership, period, team_id, limit)
    if most_c is None or least_c is None:
        full_most, full_least = _ranked_full(membership, period, team_id, "contact_id", limit)
        most_c = full_most if most_c is None else most_c
        least_c = full_least if least_c is None else least_c
    most_a, least_a = _ranked_full(membership, period, team_id, "account_id", limit)
    ranked = {
        ("contact_id", True): most_c,
        ("contact_id", False): least_c,
        ("account_id", True): most_a,
        ("account_id", False): least_a,
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
    params["week_ago"] = now - timedelta(days=7)
    # Candidates without reading every contact: by power-of-two bucket of the usual gap (an index on it
    # and last_at), first the oldest ``limit`` silences of each bucket; their ``limit``-th best ratio R
    # then bounds every bucket (ratio >= R needs silence + 1 >= R * (2^bucket + 1) seconds), and only the
    # contacts past that bound, plus those with pending increments, are ranked exactly below. (OFFSET 0
    # keeps the bound a plain value: inlined, its make_interval() is not leakproof and row-level security
    # would keep it out of the index condition.)
    per_bucket = f"""
        SELECT s.contact_id, s.n, s.first_at, s.last_at
          FROM (SELECT bucket, LEAST(%(week_ago)s, %(now)s - make_interval(
                           secs => LEAST(%(bar)s * (2 ^ bucket + 1) - 2, 1e10))) AS before
                  FROM generate_series(0, 40) AS bucket OFFSET 0) b, LATERAL (
               SELECT s.contact_id, s.n, s.first_at, s.last_at FROM analytics_contact_summary s
                WHERE s.tenant_id = %(tenant)s AND s.n >= 3 AND s.gap_bucket = b.bucket
                  AND s.last_at < b.before {visible} {{extra}}
                ORDER BY s.last_at {{limit}}) s"""  # noqa: S608 - the visibility clause is a constant
    # R must not exceed the true limit-th ratio: contacts with pending increments (stale base rows) are
    # left out of this first pass and always ranked below.
    stale = """AND NOT EXISTS (SELECT 1 FROM analytics_contact_summary_delta d
                                WHERE d.tenant_id = s.tenant_id AND d.contact_id = s.contact_id)"""
    first = _rows(
        f"""SELECT contact_id, (date_part('epoch', %(now)s - last_at) + 1)
                   / (date_part('epoch', last_at - first_at) / (n - 1) + 1)
              FROM ({per_bucket.format(limit="LIMIT %(limit)s", extra=stale)}) c
             WHERE date_part('epoch', %(now)s - last_at)
                   > GREATEST(2 * date_part('epoch', last_at - first_at) / (n - 1), 604800)""",  # noqa: S608
        {**params, "bar": 0},
    )
    ratios = sorted((r for _, r in first), reverse=True)
    bar = ratios[limit - 1] if len(ratios) >= limit else 0.0
    candidates = _rows(
        f"""SELECT contact_id FROM ({per_bucket.format(limit="", extra="")}) c
            UNION
            SELECT contact_id FROM analytics_contact_summary_delta WHERE tenant_id = %(tenant)s""",  # noqa: S608
        {**params, "bar": bar},
    )
    params["candidates"] = [pk for (pk,) in candidates]
    # Arithmetic in float8 seconds (EXTRACT yields numeric, several times slower).
    rows = _rows(
        f"""SELECT contact_id, n, last_at, gap / 86400.0, silent / 86400.0
              FROM (SELECT s.contact_id, s.n, s.last_at,
                           date_part('epoch', s.last_at - s.first_at) / (s.n - 1) AS gap,
                           date_part('epoch', %(now)s - s.last_at) AS silent
                      FROM analytics_contact_summary_all s
                     WHERE s.tenant_id = %(tenant)s AND s.contact_id = ANY(%(candidates)s)
                       AND s.n >= 3 AND s.last_at < %(week_ago)s
                       {visible}) q
             WHERE silent > GREATEST(2 * gap, 604800)
             ORDER BY (silent + 1) / (gap + 1) DESC, contact_id
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

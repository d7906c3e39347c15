"""Communication analytics (issue 9): every figure against hand-computed expectations on small fixtures,
visibility per role, and the trigger-maintained aggregates agreeing with the raw rows."""

import random
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from activities import analytics
from activities.models import Activity, ActivitySource, Direction
from contactcenter.models import Channel, MessageKind
from crm.models import Role
from tests.factories import (
    AccountFactory,
    ActivityFactory,
    ClosedInteractionFactory,
    ContactFactory,
    InteractionFactory,
    InteractionMessageFactory,
    MembershipFactory,
    QueueFactory,
    TeamFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

DAY = date(2026, 3, 10)


def at(day: date, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def period(start: date, end: date) -> analytics.Period:
    return analytics.Period(start, end)


@pytest.fixture
def admin(tenant, team, other_team):
    return MembershipFactory(tenant=tenant, role=Role.ADMIN, teams=[team, other_team], can_manage_email=True)


# --- Volume and channel mix ------------------------------------------------------------------------------


def test_volume_per_day_by_channel_and_direction(tenant, team, admin):
    # given 2 inbound calls and 1 outbound email on day 1, 1 SMS on day 3, a note (not a channel)
    ActivityFactory(tenant=tenant, team=team, type="call", direction="inbound", occurred_at=at(DAY))
    ActivityFactory(tenant=tenant, team=team, type="call", direction="inbound", occurred_at=at(DAY, 23, 59))
    ActivityFactory(tenant=tenant, team=team, type="email", direction="outbound", occurred_at=at(DAY))
    ActivityFactory(
        tenant=tenant, team=team, type="sms", direction="inbound", occurred_at=at(DAY + timedelta(2))
    )
    ActivityFactory(tenant=tenant, team=team, type="note", occurred_at=at(DAY))
    ActivityFactory(
        tenant=tenant, team=team, type="call", direction="inbound", occurred_at=at(DAY - timedelta(1))
    )
    # when
    series = analytics.volume(membership=admin, period=period(DAY, DAY + timedelta(2)))
    # then
    assert series.buckets == [DAY, DAY + timedelta(1), DAY + timedelta(2)]
    assert series.series[("call", "inbound")] == [2, 0, 0]
    assert series.series[("email", "outbound")] == [1, 0, 0]
    assert series.series[("sms", "inbound")] == [0, 0, 1]
    assert ("note", "none") not in series.series
    assert series.by_direction() == {"inbound": 3, "outbound": 1}
    mix = {t: (n, share) for t, _, n, share in analytics.channel_mix(series)}
    assert mix["call"] == (2, 50.0)
    assert mix["email"] == (1, 25.0)
    assert mix["sms"] == (1, 25.0)
    assert mix["whatsapp"] == (0, 0.0)


def test_weekly_buckets_for_long_periods(tenant, team, admin):
    monday = date(2026, 3, 2)
    ActivityFactory(tenant=tenant, team=team, type="call", direction="inbound", occurred_at=at(monday))
    ActivityFactory(
        tenant=tenant, team=team, type="call", direction="inbound", occurred_at=at(monday + timedelta(6))
    )
    ActivityFactory(
        tenant=tenant, team=team, type="call", direction="inbound", occurred_at=at(monday + timedelta(7))
    )
    series = analytics.volume(membership=admin, period=period(monday, monday + timedelta(40)))
    assert series.buckets[0] == monday and series.buckets[1] == monday + timedelta(7)
    assert series.series[("call", "inbound")][:2] == [2, 1]


def test_closed_interactions_count_once(tenant, team, admin):
    """An interaction whose close logged an activity is counted through that activity only."""
    imported = ClosedInteractionFactory(tenant=tenant, team=team, started_at=at(DAY), direction="inbound")
    logged = ClosedInteractionFactory(tenant=tenant, team=team, started_at=at(DAY), activity_logged=True)
    ActivityFactory(
        tenant=tenant,
        team=team,
        type=logged.type,
        direction="inbound",
        source="interaction",
        occurred_at=at(DAY),
    )
    series = analytics.volume(membership=admin, period=period(DAY, DAY))
    assert imported.type == "chat"
    assert series.series[("chat", "inbound")] == [2]


# --- Response times ---------------------------------------------------------------------------------------


def conversation(tenant, team, *messages, channel=Channel.WEBCHAT, agent=None, contact=None):
    queue = QueueFactory(tenant=tenant, channel=channel)
    interaction = InteractionFactory(tenant=tenant, queue=queue, team=team, agent=agent, contact=contact)
    for direction, when, *kind in messages:
        InteractionMessageFactory(
            tenant=tenant,
            interaction=interaction,
            direction=direction,
            sent_at=when,
            kind=kind[0] if kind else MessageKind.MESSAGE,
        )
    return interaction


def test_interaction_response_time_first_inbound_to_first_reply(tenant, team, admin):
    conversation(
        tenant, team, ("inbound", at(DAY, 9)), ("inbound", at(DAY, 9, 1)), ("outbound", at(DAY, 9, 5))
    )
    samples = analytics.interaction_samples(membership=admin, period=period(DAY, DAY))
    assert [s.seconds for s in samples] == [300.0]
    assert samples[0].channel == "chat"


def test_no_reply_is_counted_as_unanswered(tenant, team, admin):
    conversation(tenant, team, ("inbound", at(DAY, 9)))
    stats = analytics.response_stats(analytics.interaction_samples(membership=admin, period=period(DAY, DAY)))
    assert (stats.answered, stats.unanswered, stats.median) == (0, 1, None)


def test_reply_before_the_inbound_is_ignored(tenant, team, admin):
    """An agent's opening message is not a reply: the clock starts at the customer's first message."""
    conversation(
        tenant,
        team,
        ("outbound", at(DAY, 8, 50)),
        ("inbound", at(DAY, 9)),
        ("outbound", at(DAY, 9, 2)),
        channel="sms",
    )
    samples = analytics.interaction_samples(membership=admin, period=period(DAY, DAY))
    assert [s.seconds for s in samples] == [120.0]


def test_overnight_gap_is_elapsed_time(tenant, team, admin):
    conversation(tenant, team, ("inbound", at(DAY, 23)), ("outbound", at(DAY + timedelta(1), 7)))
    samples = analytics.interaction_samples(membership=admin, period=period(DAY, DAY))
    assert [s.seconds for s in samples] == [8 * 3600.0]


def test_system_events_and_out_of_order_messages(tenant, team, admin):
    # given the reply stored before an earlier inbound arrives, and a system note in between
    interaction = conversation(
        tenant, team, ("outbound", at(DAY, 10)), ("none", at(DAY, 9, 30), MessageKind.SYSTEM)
    )
    InteractionMessageFactory(tenant=tenant, interaction=interaction, direction="inbound", sent_at=at(DAY, 9))
    samples = analytics.interaction_samples(membership=admin, period=period(DAY, DAY))
    assert [s.seconds for s in samples] == [3600.0]


def test_email_response_time_from_first_unanswered_inbound(tenant, team, admin):
    contact = ContactFactory(tenant=tenant, team=team)
    for minutes, direction in [(0, "inbound"), (10, "inbound"), (60, "outbound"), (120, "outbound")]:
        ActivityFactory(
            tenant=tenant,
            team=team,
            contact=contact,
            type="email",
            direction=direction,
            occurred_at=at(DAY, 9) + timedelta(minutes=minutes),
        )
    other = ContactFactory(tenant=tenant, team=team)
    ActivityFactory(
        tenant=tenant, team=team, contact=other, type="email", direction="inbound", occurred_at=at(DAY)
    )
    samples = analytics.email_samples(membership=admin, period=period(DAY, DAY))
    assert sorted((s.contact_id, s.seconds) for s in samples) == sorted(
        [(contact.pk, 3600.0), (other.pk, None)]
    )


def test_email_samples_of_two_periods_match_a_reference(tenant, team, admin):
    """Random mail (ties in time included) against a plain reading of the rule, for one period and for
    the dashboard's single pass over the period and the previous one (runs looked for from each start)."""
    rng = random.Random(99)
    contacts = [ContactFactory(tenant=tenant, team=team) for _ in range(4)]
    for _ in range(120):
        ActivityFactory(
            tenant=tenant,
            team=team,
            contact=rng.choice(contacts),
            type="email",
            direction=rng.choice(["inbound", "inbound", "outbound", "none"]),
            occurred_at=at(DAY + timedelta(days=rng.randint(-12, 8)), rng.choice([9, 9, 13, 22])),
        )
    rows = list(
        Activity.objects.filter(tenant=tenant, type="email").order_by("contact_id", "occurred_at", "id")
    )

    def reference(p):
        out = []
        for contact in contacts:
            mine = [a for a in rows if a.contact_id == contact.pk and a.occurred_at >= p.start_dt]
            for i, a in enumerate(mine):
                if a.direction != "inbound" or a.occurred_at >= p.end_dt:
                    continue
                if i and mine[i - 1].direction == "inbound":
                    continue
                reply = next((b.occurred_at for b in mine[i + 1 :] if b.direction == "outbound"), None)
                out.append((contact.pk, (reply - a.occurred_at).total_seconds() if reply else None))
        return sorted(out, key=repr)

    now = period(DAY - timedelta(days=3), DAY + timedelta(days=2))

    def check():
        got = analytics.email_samples(membership=admin, period=now)
        assert sorted(((x.contact_id, x.seconds) for x in got), key=repr) == reference(now)
        both = analytics._email_samples_of(membership=admin, periods=[now, now.previous])
        for p, samples in zip([now, now.previous], both, strict=True):
            assert sorted(((x.contact_id, x.seconds) for x in samples), key=repr) == reference(p)
            assert samples, "no samples in a period"
        mine = analytics.email_samples(membership=admin, period=now, contact_ids=[contacts[0].pk])
        assert sorted(((x.contact_id, x.seconds) for x in mine), key=repr) == [
            r for r in reference(now) if r[0] == contacts[0].pk
        ]

    def dirty() -> set[int]:
        with connection.cursor() as c:
            c.execute("SELECT DISTINCT contact_id FROM analytics_email_dirty")
            return {pk for (pk,) in c.fetchall()}

    # Every contact changed since the last fold: computed from the raw rows.
    assert dirty() == {c.pk for c in contacts}
    check()
    # Folded: read from analytics_email_response alone.
    with connection.cursor() as c:
        c.execute("SELECT analytics_fold()")
    assert dirty() == set()
    check()
    # Mixed: an outbound reply moved, one email deleted, one added; those contacts are raw again.
    moved = next(a for a in rows if a.direction == "outbound" and a.contact_id == contacts[1].pk)
    moved.occurred_at -= timedelta(days=2)
    moved.save(update_fields=["occurred_at"])
    gone = next(a for a in rows if a.direction == "inbound" and a.contact_id == contacts[2].pk)
    Activity.objects.filter(pk=gone.pk).delete()
    ActivityFactory(
        tenant=tenant, team=team, contact=contacts[3], type="email", direction="outbound",
        occurred_at=at(DAY - timedelta(days=1), 10),
    )  # fmt: skip
    assert dirty() == {contacts[1].pk, contacts[2].pk, contacts[3].pk}
    rows = list(
        Activity.objects.filter(tenant=tenant, type="email").order_by("contact_id", "occurred_at", "id")
    )
    check()


def test_median_and_p90_match_hand_computation():
    samples = [analytics.Sample("email", "email", 0, 0, 0, float(s)) for s in (10, 20, 30, 40, 1000)]
    samples.append(analytics.Sample("email", "email", 0, 0, 0, None))
    stats = analytics.response_stats(samples)
    assert stats.median == 30.0
    assert stats.p90 == pytest.approx(40 + 0.6 * 960)  # percentile_cont: rank 3.6 of 0..4
    assert (stats.answered, stats.unanswered) == (5, 1)


def test_response_summary_in_sql_matches_the_samples(tenant, team, other_team, admin, make_member):
    """The dashboard's response figures come from one SQL statement (percentile_cont per grouping set);
    they equal response_stats() / grouped_stats() over the samples, for interactions and emails, with
    some contacts folded and some pending, for an admin, a team filter and a manager."""
    rng = random.Random(7)
    agents = [make_member(tenant, Role.AGENT, teams=[team]).user, None]
    contacts = [ContactFactory(tenant=tenant, team=rng.choice([team, other_team])) for _ in range(5)]
    for _ in range(60):
        ActivityFactory(
            tenant=tenant,
            team=rng.choice([team, other_team, None]),
            user=rng.choice(agents),
            contact=rng.choice(contacts),
            type="email",
            direction=rng.choice(["inbound", "inbound", "outbound"]),
            occurred_at=at(DAY + timedelta(days=rng.randint(0, 6)), rng.randint(0, 23), rng.randint(0, 59)),
        )
    for channel in (Channel.WEBCHAT, Channel.SMS, Channel.VOICE) * 3:
        first = at(DAY + timedelta(days=rng.randint(0, 6)), rng.randint(0, 22))
        replies = [("outbound", first + timedelta(minutes=rng.randint(1, 90)))] if rng.random() < 0.7 else []
        conversation(
            tenant, rng.choice([team, other_team]), ("inbound", first), *replies,
            channel=channel, agent=rng.choice(agents),
        )  # fmt: skip
    with connection.cursor() as c:
        c.execute("SELECT analytics_fold()")
    for contact in contacts[:2]:  # these two are computed from raw rows (pending)
        ActivityFactory(
            tenant=tenant, team=team, contact=contact, type="email", direction="outbound",
            occurred_at=at(DAY + timedelta(days=3), 8),
        )  # fmt: skip
    manager = make_member(tenant, Role.MANAGER, teams=[team])
    p = period(DAY, DAY + timedelta(days=6))
    checked = 0
    for membership, team_id in ((admin, None), (admin, team.pk), (manager, None)):
        samples = analytics.response_samples(membership=membership, period=p, team_id=team_id)
        summary = analytics.response_summary(membership=membership, period=p, team_id=team_id)

        def same(a, b):
            assert (a.answered, a.unanswered) == (b.answered, b.unanswered)
            for x, y in ((a.median, b.median), (a.p90, b.p90)):
                assert x == (None if y is None else pytest.approx(y))

        same(summary.overall, analytics.response_stats(samples))
        for mine, key in (
            (summary.by_channel, lambda x: x.channel),
            (summary.by_team, lambda x: x.team_id),
            (summary.by_agent, lambda x: x.agent_id),
        ):
            expected = analytics.grouped_stats(samples, key)
            assert mine.keys() == expected.keys()
            for k in expected:
                same(mine[k], expected[k])
                checked += 1
        assert samples and summary.overall.answered and summary.overall.unanswered
        if membership is admin and team_id is None:
            assert set(summary.by_channel) == {"email", "chat", "sms", "call"}
            assert len(summary.by_team) == 3 and len(summary.by_agent) == 2
    assert checked > 15


# --- Performance ------------------------------------------------------------------------------------------


def test_team_and_agent_performance_with_trend(tenant, team, other_team, admin, make_member):
    agent = make_member(tenant, Role.AGENT, teams=[team]).user
    p = period(DAY, DAY + timedelta(6))
    for when in (DAY, DAY + timedelta(1), DAY + timedelta(2)):  # 3 handled this week
        ActivityFactory(
            tenant=tenant, team=team, user=agent, type="call", source="interaction", occurred_at=at(when)
        )
    ActivityFactory(
        tenant=tenant,
        team=team,
        user=agent,
        type="call",
        source="interaction",
        occurred_at=at(DAY - timedelta(3)),
    )
    ActivityFactory(tenant=tenant, team=team, user=agent, type="note", source="manual", occurred_at=at(DAY))
    ActivityFactory(tenant=tenant, team=other_team, type="note", source="manual", occurred_at=at(DAY))
    teams, agents = analytics.performance(membership=admin, period=p)
    sales = next(r for r in teams if r.label == team.name)
    assert (sales.handled, sales.logged, sales.previous_handled) == (3, 1, 1)
    assert sales.handled_trend == 200.0
    me = next(r for r in agents if r.label == agent.get_full_name())
    assert (me.handled, me.logged) == (3, 1)
    support = next(r for r in teams if r.label == other_team.name)
    assert (support.handled, support.logged, support.logged_trend) == (0, 1, None)


# --- Engagement -------------------------------------------------------------------------------------------


def test_previous_median_computed_unless_left_out(tenant, team, admin):
    conversation(
        tenant, team, ("inbound", at(DAY - timedelta(1), 9)), ("outbound", at(DAY - timedelta(1), 9, 5))
    )
    contact = ContactFactory(tenant=tenant, team=team)
    ActivityFactory(
        tenant=tenant,
        team=team,
        contact=contact,
        type="email",
        direction="inbound",
        occurred_at=at(DAY - timedelta(1), 10),
    )
    ActivityFactory(
        tenant=tenant,
        team=team,
        contact=contact,
        type="email",
        direction="outbound",
        occurred_at=at(DAY - timedelta(1), 10, 15),
    )
    conversation(tenant, team, ("inbound", at(DAY, 9)), ("outbound", at(DAY, 9, 1)))
    teams, _ = analytics.performance(membership=admin, period=period(DAY, DAY))
    row = next(r for r in teams if r.label == team.name)
    assert (row.median_response, row.previous_median) == (60.0, 600.0)  # previous: median of 300 and 900
    teams, _ = analytics.performance(membership=admin, period=period(DAY, DAY), previous_median=False)
    row = next(r for r in teams if r.label == team.name)
    assert (row.median_response, row.previous_median) == (60.0, None)


def test_most_and_least_engaged_and_accounts(tenant, team, admin):
    account = AccountFactory(tenant=tenant, name="Busy Corp")
    busy = ContactFactory(tenant=tenant, team=team, name="Busy", account=account)
    calm = ContactFactory(tenant=tenant, team=team, name="Calm")
    for i in range(3):
        ActivityFactory(
            tenant=tenant, team=team, contact=busy, account=account, type="call", occurred_at=at(DAY, 9 + i)
        )
    ActivityFactory(tenant=tenant, team=team, contact=calm, type="call", occurred_at=at(DAY))
    e = analytics.engagement(membership=admin, period=period(DAY, DAY))
    assert [(c.name, n) for c, n in e.most_contacts] == [("Busy", 3), ("Calm", 1)]
    assert [(c.name, n) for c, n in e.least_contacts] == [("Calm", 1), ("Busy", 3)]
    assert [(a.name, n) for a, n in e.most_accounts] == [("Busy Corp", 3)]


def test_pruned_engagement_rankings_match_a_full_aggregation(
    tenant, team, other_team, admin, make_member, monkeypatch
):
    """Most engaged (examined in descending all-time count, stopping early) and least engaged (first
    contacts in id order with a count of 1) equal one aggregation over every contact, for the whole tenant
    and a manager's scope, with pending (unfolded) increments and tiny batches so the loops run."""
    monkeypatch.setattr(analytics, "RANK_BATCH", 3)
    manager = make_member(tenant, Role.MANAGER, teams=[team], email=True)
    rng = random.Random(7)
    contacts = [ContactFactory(tenant=tenant) for _ in range(30)]
    for i, contact in enumerate(contacts):
        for _ in range(rng.choice([0, 1, 1, 2, 3, 8]) + (20 if i % 11 == 0 else 0)):
            ActivityFactory(
                tenant=tenant,
                team=rng.choice([team, other_team, None]),
                contact=contact,
                occurred_at=at(DAY + timedelta(days=rng.randint(-40, 5)), rng.randint(0, 23)),
            )
        if i == 15:
            with connection.cursor() as c:
                c.execute("SELECT analytics_fold()")  # some counts folded, the rest pending
    p = period(DAY - timedelta(days=10), DAY)
    for membership in (admin, manager):
        for team_id in (None, team.pk):
            full_most, full_least = analytics._ranked_full(membership, p, team_id, "contact_id", 5)
            assert analytics._most_contacts(membership, p, team_id, 5) == full_most
            least = analytics._least_contacts(membership, p, team_id, 5)
            assert least is None or least == full_least
            e = analytics.engagement(membership=membership, period=p, team_id=team_id, limit=5)
            assert [(c.pk, n) for c, n in e.most_contacts] == full_most
            assert [(c.pk, n) for c, n in e.least_contacts] == full_least


def test_manager_team_and_agent_tables_count_own_rows_outside_their_teams(
    tenant, team, other_team, make_member
):
    manager = make_member(tenant, Role.MANAGER, teams=[team], email=True)
    colleague = make_member(tenant, Role.AGENT, teams=[other_team])
    ActivityFactory(tenant=tenant, team=team, user=colleague.user, source="manual", occurred_at=at(DAY))
    ActivityFactory(tenant=tenant, team=other_team, user=manager.user, source="manual", occurred_at=at(DAY))
    ActivityFactory(tenant=tenant, team=None, user=manager.user, source="manual", occurred_at=at(DAY))
    ActivityFactory(tenant=tenant, team=other_team, user=colleague.user, source="manual", occurred_at=at(DAY))
    teams, agents = analytics.performance(membership=manager, period=period(DAY, DAY))
    assert {(r.label, r.logged) for r in teams} == {(team.name, 1), (other_team.name, 1), ("No team", 1)}
    by_agent = {r.label: r.logged for r in agents}
    assert sorted(by_agent.values()) == [1, 2]  # the colleague's row in my team; my two rows


def test_going_quiet_against_own_rhythm(tenant, team, admin):
    now = at(DAY + timedelta(60))
    regular = ContactFactory(tenant=tenant, team=team, name="Weekly")
    quiet = ContactFactory(tenant=tenant, team=team, name="Was Daily")
    for i in range(8):  # weekly, last one 3 days ago: not quiet
        ActivityFactory(
            tenant=tenant, team=team, contact=regular, occurred_at=now - timedelta(days=3 + 7 * i)
        )
    for i in range(5):  # every 2 days, silent for 20 days: quiet
        ActivityFactory(tenant=tenant, team=team, contact=quiet, occurred_at=now - timedelta(days=20 + 2 * i))
    rows = analytics.going_quiet(membership=admin, now=now)
    assert [(q.contact.name, q.count) for q in rows] == [("Was Daily", 5)]
    assert rows[0].usual_gap_days == pytest.approx(2.0)
    assert rows[0].silent_days == pytest.approx(20.0)


def test_going_quiet_pruned_by_gap_bucket_matches_every_contact_ranked(
    tenant, team, other_team, admin, make_member
):
    """The bucketed candidate search returns exactly the top of a ranking over every contact (computed
    here from the raw rows), with some counts folded and some pending, for an admin and a manager."""
    manager = make_member(tenant, Role.MANAGER, teams=[team], email=True)
    now = at(DAY + timedelta(200))
    rng = random.Random(5)
    contacts = [ContactFactory(tenant=tenant, team=rng.choice([team, other_team])) for _ in range(40)]
    for i, contact in enumerate(contacts):
        start = now - timedelta(days=rng.randint(10, 190), hours=rng.randint(0, 23))
        step = timedelta(hours=rng.choice([1, 5, 30, 24 * 4, 24 * 15]))
        for k in range(rng.randint(1, 7)):
            if start + step * k < now:
                ActivityFactory(tenant=tenant, team=team, contact=contact, occurred_at=start + step * k)
        if i == 25:
            with connection.cursor() as c:
                c.execute("SELECT analytics_fold()")

    def reference(membership, limit):
        visible = {c.pk for c in contacts if membership.is_admin or c.team_id == team.pk}
        out = []
        for contact in contacts:
            times = sorted(Activity.objects.filter(contact=contact).values_list("occurred_at", flat=True))
            if contact.pk not in visible or len(times) < 3:
                continue
            gap = (times[-1] - times[0]).total_seconds() / (len(times) - 1)
            silent = (now - times[-1]).total_seconds()
            if silent > max(2 * gap, 7 * 86400):
                out.append(((silent + 1) / (gap + 1), contact.pk))
        return [pk for _, pk in sorted(out, key=lambda r: (-r[0], r[1]))[:limit]]

    for membership in (admin, manager):
        for limit in (3, 10):
            got = analytics.going_quiet(membership=membership, now=now, limit=limit)
            assert [q.contact.pk for q in got] == reference(membership, limit)
            assert got


def test_going_quiet_lists_only_contacts_the_viewer_may_see(tenant, team, other_team, make_member):
    manager = make_member(tenant, Role.MANAGER, teams=[team], email=True)
    now = at(DAY + timedelta(60))
    mine = ContactFactory(tenant=tenant, team=team, name="Mine")
    owned = ContactFactory(tenant=tenant, team=other_team, owner=manager.user, name="Owned")
    hidden = ContactFactory(tenant=tenant, team=other_team, name="Hidden")
    for contact in (mine, owned, hidden):
        for i in range(4):
            ActivityFactory(
                tenant=tenant, team=team, contact=contact, occurred_at=now - timedelta(days=30 + i)
            )
    names = {q.contact.name for q in analytics.going_quiet(membership=manager, now=now)}
    assert names == {"Mine", "Owned"}


# --- Visibility -------------------------------------------------------------------------------------------


def test_manager_counts_only_their_teams_and_own_rows(tenant, team, other_team, other_tenant, make_member):
    manager = make_member(tenant, Role.MANAGER, teams=[team], email=True)
    ActivityFactory(tenant=tenant, team=team, type="call", direction="inbound", occurred_at=at(DAY))
    ActivityFactory(tenant=tenant, team=other_team, type="call", direction="inbound", occurred_at=at(DAY))
    ActivityFactory(
        tenant=tenant,
        team=other_team,
        user=manager.user,
        type="sms",
        direction="inbound",
        occurred_at=at(DAY),
    )
    ActivityFactory(tenant=other_tenant, type="call", direction="inbound", occurred_at=at(DAY))
    series = analytics.volume(membership=manager, period=period(DAY, DAY))
    assert series.series == {("call", "inbound"): [1], ("sms", "inbound"): [1]}
    # a team filter for a team they are not in shows nothing of it
    view = reverse("activities:analytics") + f"?range=custom&start={DAY}&end={DAY}&team={other_team.pk}"
    from django.test import Client

    client = Client()
    client.force_login(manager.user)
    page = client.get(view).content.decode()
    assert "Unknown team" in page


def test_other_tenant_never_counted_for_admins(tenant, other_tenant, admin):
    ActivityFactory(tenant=other_tenant, type="call", direction="inbound", occurred_at=at(DAY))
    conversation(
        other_tenant, TeamFactory(tenant=other_tenant), ("inbound", at(DAY)), ("outbound", at(DAY, 13))
    )
    assert analytics.volume(membership=admin, period=period(DAY, DAY)).series == {}
    assert analytics.interaction_samples(membership=admin, period=period(DAY, DAY)) == []


# --- Aggregates agree with raw rows -----------------------------------------------------------------------


def _aggregates():
    with connection.cursor() as c:
        c.execute(
            "SELECT tenant_id, day, team_id, agent_id, type, source, direction, sum(n)::int"
            " FROM analytics_daily_all GROUP BY 1, 2, 3, 4, 5, 6, 7 HAVING sum(n) <> 0"
        )
        daily = set(c.fetchall())
        c.execute(
            """SELECT tenant_id, (occurred_at AT TIME ZONE 'UTC')::date, COALESCE(team_id, 0),
                      COALESCE(agent_id, 0), type, source, direction, count(*)::int
                 FROM activity_feed GROUP BY 1, 2, 3, 4, 5, 6, 7"""
        )
        daily_raw = set(c.fetchall())
        c.execute(
            "SELECT tenant_id, contact_id, day, account_id, team_id, agent_id, type, sum(n)::int"
            " FROM analytics_contact_daily_all GROUP BY 1, 2, 3, 4, 5, 6, 7 HAVING sum(n) <> 0"
        )
        contact = set(c.fetchall())
        c.execute(
            """SELECT tenant_id, contact_id, (occurred_at AT TIME ZONE 'UTC')::date, COALESCE(account_id, 0),
                      COALESCE(team_id, 0), COALESCE(agent_id, 0), type, count(*)::int
                 FROM activity_feed WHERE contact_id IS NOT NULL GROUP BY 1, 2, 3, 4, 5, 6, 7"""
        )
        contact_raw = set(c.fetchall())
        c.execute("SELECT tenant_id, contact_id, n, first_at, last_at FROM analytics_contact_summary_all")
        summary = set(c.fetchall())
        c.execute(
            """SELECT tenant_id, contact_id, count(*)::int, min(occurred_at), max(occurred_at)
                 FROM activity_feed WHERE contact_id IS NOT NULL GROUP BY 1, 2"""
        )
        summary_raw = set(c.fetchall())
        handled = "source = 'interaction' AND type IN ('call', 'sms', 'whatsapp', 'chat')"
        assert [str(t) for t in analytics.INTERACTION_TYPES] == ["call", "sms", "whatsapp", "chat"]
        c.execute(
            "SELECT tenant_id, day, team_id, type, direction, sum(n)::int, sum(handled)::int,"
            " sum(logged)::int"
            " FROM analytics_team_daily_all GROUP BY 1, 2, 3, 4, 5"
            " HAVING sum(n) <> 0 OR sum(handled) <> 0 OR sum(logged) <> 0"
        )
        team = set(c.fetchall())
        c.execute(
            f"""SELECT tenant_id, (occurred_at AT TIME ZONE 'UTC')::date, COALESCE(team_id, 0), type,
                       direction, count(*)::int, (count(*) FILTER (WHERE {handled}))::int,
                       (count(*) FILTER (WHERE source = 'manual'))::int
                  FROM activity_feed GROUP BY 1, 2, 3, 4, 5"""  # noqa: S608 - constants only
        )
        team_raw = set(c.fetchall())
        c.execute(
            "SELECT tenant_id, day, team_id, agent_id, sum(handled)::int, sum(logged)::int"
            " FROM analytics_agent_daily_all GROUP BY 1, 2, 3, 4 HAVING sum(handled) <> 0 OR sum(logged) <> 0"
        )
        agent = set(c.fetchall())
        c.execute(
            f"""SELECT * FROM (
                  SELECT tenant_id, (occurred_at AT TIME ZONE 'UTC')::date AS day, COALESCE(team_id, 0),
                         COALESCE(agent_id, 0), (count(*) FILTER (WHERE {handled}))::int AS h,
                         (count(*) FILTER (WHERE source = 'manual'))::int AS l
                    FROM activity_feed GROUP BY 1, 2, 3, 4) a
                 WHERE h <> 0 OR l <> 0"""  # noqa: S608 - constants only
        )
        agent_raw = set(c.fetchall())
        c.execute("SELECT DISTINCT tenant_id, contact_id FROM analytics_email_dirty")
        dirty = set(c.fetchall())  # recomputed by the next fold; readers compute them from raw rows
        c.execute(
            "SELECT activity_id, tenant_id, contact_id, occurred_at, team_id, agent_id, prev_in_at,"
            " next_out_at FROM analytics_email_response"
        )
        email = {r for r in c.fetchall() if (r[1], r[2]) not in dirty}
    email_raw = {r for r in _email_runs_from_rows() if (r[1], r[2]) not in dirty}
    return (
        (daily, contact, summary, team, agent, email),
        (daily_raw, contact_raw, summary_raw, team_raw, agent_raw, email_raw),
    )


def _email_runs_from_rows() -> set[tuple]:
    """analytics_email_response as a plain reading of the rule over the activities: per inbound email with
    a contact, the previous email's time if it was inbound, and the next outbound email's time."""
    emails = list(
        Activity.objects.filter(type="email", deleted_at__isnull=True, contact__isnull=False)
        .order_by("tenant_id", "contact_id", "occurred_at", "id")
        .values_list("id", "tenant_id", "contact_id", "occurred_at", "team_id", "user_id", "direction")
    )
    out = set()
    for i, (pk, tenant, contact, when, team, user, direction) in enumerate(emails):
        if direction != "inbound":
            continue
        same = [e for e in emails if e[1] == tenant and e[2] == contact]
        k = same.index(emails[i])
        prev_in = same[k - 1][3] if k and same[k - 1][6] == "inbound" else None
        reply = next((e[3] for e in same[k + 1 :] if e[6] == "outbound"), None)
        out.add((pk, tenant, contact, when, team or 0, user or 0, prev_in, reply))
    return out


def test_aggregates_agree_with_raw_rows_after_random_writes(tenant, other_tenant, team, other_team):
    rng = random.Random(20261124)
    tenants = [tenant, other_tenant]
    teams = {tenant.pk: [team, other_team, None], other_tenant.pk: [TeamFactory(tenant=other_tenant), None]}
    contacts = {t.pk: [ContactFactory(tenant=t) for _ in range(4)] + [None] for t in tenants}
    # agents: the per-agent table keeps handled / logged per (day, team, agent)
    agents = {t.pk: [UserFactory(), UserFactory(), None] for t in tenants}
    activities, closed = [], []
    types = ["call", "email", "sms", "note", "meeting"]
    for step in range(160):
        op = rng.random()
        t = rng.choice(tenants)
        if op < 0.35 or not activities:
            activities.append(
                ActivityFactory(
                    tenant=t,
                    team=rng.choice(teams[t.pk]),
                    contact=rng.choice(contacts[t.pk]),
                    type=rng.choice(types),
                    direction=rng.choice(Direction.values),
                    source=rng.choice(ActivitySource.values),
                    user=rng.choice(agents[t.pk]),
                    occurred_at=at(DAY + timedelta(days=rng.randint(0, 5)), rng.randint(0, 23)),
                )
            )
        elif op < 0.45:
            closed.append(
                ClosedInteractionFactory(
                    tenant=t,
                    team=rng.choice(teams[t.pk]),
                    contact=rng.choice(contacts[t.pk]),
                    agent=rng.choice(agents[t.pk]),
                    started_at=at(DAY + timedelta(days=rng.randint(0, 5))),
                )
            )
        elif op < 0.55 and closed:
            c = rng.choice(closed)
            c.activity_logged = not c.activity_logged
            c.save(update_fields=["activity_logged"])
        elif op < 0.75:
            a = rng.choice(activities)
            a.type = rng.choice(types)
            a.contact = rng.choice(contacts[a.tenant_id])
            a.team = rng.choice(teams[a.tenant_id])
            a.user = rng.choice(agents[a.tenant_id])
            a.source = rng.choice(ActivitySource.values)
            a.occurred_at = a.occurred_at + timedelta(hours=rng.randint(-30, 30))
            a.save()
        elif op < 0.9:
            a = rng.choice(activities)
            a.deleted_at = None if a.deleted_at else timezone.now()  # delete or restore
            a.save(update_fields=["deleted_at"])
        else:
            a = activities.pop(rng.randrange(len(activities)))
            Activity.objects.filter(pk=a.pk).delete()
        if step % 40 == 39:
            stored, raw = _aggregates()
            assert stored == raw, f"aggregates drifted at step {step}"
        if step % 50 == 49:  # the beat task folds buffered increments in between writes
            with connection.cursor() as c:
                c.execute("SELECT analytics_fold()")
    stored, raw = _aggregates()
    assert stored == raw
    assert stored[0], "the random mix produced no rows at all"
    assert stored[3] and stored[4], "no per-team or per-agent rows"
    assert {agent for *_, agent, _h, _lg in stored[4]} - {0}, "no row with an agent"
    assert any(h for *_, h, _l in stored[4]) and any(lg for *_, lg in stored[4]), "no handled / logged rows"
    # after a final fold the base tables alone agree, and nothing is left pending
    with connection.cursor() as c:
        c.execute("SELECT analytics_fold()")
        c.execute(
            "SELECT (SELECT count(*) FROM analytics_daily_delta)"
            " + (SELECT count(*) FROM analytics_contact_daily_delta)"
            " + (SELECT count(*) FROM analytics_team_daily_delta)"
            " + (SELECT count(*) FROM analytics_agent_daily_delta)"
        )
        assert c.fetchone()[0] == 0
        c.execute(
            "SELECT tenant_id, day, team_id, agent_id, type, source, direction, n"
            " FROM analytics_daily WHERE n <> 0"
        )
        assert set(c.fetchall()) == raw[0]
        c.execute(
            "SELECT tenant_id, day, team_id, type, direction, n, handled, logged FROM analytics_team_daily"
            " WHERE n <> 0 OR handled <> 0 OR logged <> 0"
        )
        assert set(c.fetchall()) == raw[3]
        c.execute(
            "SELECT tenant_id, day, team_id, agent_id, handled, logged FROM analytics_agent_daily"
            " WHERE handled <> 0 OR logged <> 0"
        )
        assert set(c.fetchall()) == raw[4]
        c.execute("SELECT count(*) FROM analytics_email_dirty")
        assert c.fetchone()[0] == 0
        c.execute("SELECT * FROM analytics_email_response")
        runs = _email_runs_from_rows()
        assert set(c.fetchall()) == runs
    assert runs, "no inbound email with a contact in the random mix"


# --- Pages ------------------------------------------------------------------------------------------------


def test_dashboard_page_shows_figures(client, client_for, tenant, team, admin):
    ActivityFactory(tenant=tenant, team=team, type="call", direction="inbound", occurred_at=timezone.now())
    page = client_for(admin).get(reverse("activities:analytics") + "?range=7")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="volume-chart"' in html and "<title" in html
    assert "Inbound <strong>1</strong>" in html


def test_dashboard_and_csv_show_reply_times_by_channel_team_and_agent(
    client_for, tenant, team, admin, make_member
):
    """Median and 90th percentile per agent too (the issue asks for channel, team and agent)."""
    agent = make_member(tenant, Role.AGENT, teams=[team]).user
    contact = ContactFactory(tenant=tenant, team=team)
    start = timezone.now().replace(microsecond=0) - timedelta(days=2)
    for minutes, direction in ((0, "inbound"), (60, "outbound")):
        ActivityFactory(
            tenant=tenant, team=team, user=agent, contact=contact, type="email", direction=direction,
            occurred_at=start + timedelta(minutes=minutes),
        )  # fmt: skip
    client = client_for(admin)
    html = client.get(reverse("activities:analytics") + "?range=7").content.decode()
    name = agent.get_full_name()
    assert f'<td>Agent: {name}</td><td class="text-end">1.0 h</td><td class="text-end">1.0 h</td>' in html
    assert f'<td>Team: {team.name}</td><td class="text-end">1.0 h</td>' in html
    assert "<td>Channel: Email</td>" in html
    body = client.get(reverse("activities:analytics-export") + "?range=7&section=response").content.decode()
    rows = [line.split(",") for line in body.strip().splitlines()]
    assert rows[0] == ["group", "answered", "unanswered", "median_seconds", "p90_seconds"]
    assert ["all", "1", "0", "3600.0", "3600.0"] in rows
    assert ["channel: Email", "1", "0", "3600.0", "3600.0"] in rows
    assert [f"team: {team.name}", "1", "0", "3600.0", "3600.0"] in rows
    assert [f"agent: {name}", "1", "0", "3600.0", "3600.0"] in rows


@pytest.mark.parametrize(
    "query, message",
    [
        ("range=12", "Unknown range"),
        ("range=custom&start=2026-02-30&end=2026-03-01", "YYYY-MM-DD"),
        ("range=custom&start=2026-03-10&end=2026-03-01", "end date is before"),
        ("range=custom&start=2020-01-01&end=2026-03-01", "at most 366 days"),
        ("team=abc", "Unknown team"),
    ],
)
def test_dashboard_bad_input_gives_a_message(client_for, admin, query, message):
    response = client_for(admin).get(reverse("activities:analytics") + "?" + query)
    assert response.status_code == 200
    assert message in response.content.decode()


def test_csv_sections_and_formula_neutralisation(client_for, tenant, team, admin):
    evil = ContactFactory(tenant=tenant, team=team, name='=HYPERLINK("http://x")')
    ActivityFactory(tenant=tenant, team=team, contact=evil, type="call", occurred_at=timezone.now())
    client = client_for(admin)
    for section in analytics_sections():
        response = client.get(reverse("activities:analytics-export") + f"?range=7&section={section}")
        assert response.status_code == 200, section
        assert response["Content-Type"].startswith("text/csv")
    body = client.get(reverse("activities:analytics-export") + "?range=7&section=engagement").content.decode()
    assert "'=HYPERLINK" in body
    assert client.get(reverse("activities:analytics-export") + "?section=nope").status_code == 400


def analytics_sections():
    from activities.analytics_views import SECTIONS

    return SECTIONS


def test_contact_analytics_figures(client_for, tenant, team, admin):
    contact = ContactFactory(tenant=tenant, team=team)
    now = timezone.now()
    ActivityFactory(
        tenant=tenant,
        team=team,
        contact=contact,
        type="email",
        direction="outbound",
        occurred_at=now - timedelta(hours=5),
    )
    ActivityFactory(
        tenant=tenant,
        team=team,
        contact=contact,
        type="email",
        direction="inbound",
        occurred_at=now - timedelta(hours=3),
    )
    ActivityFactory(
        tenant=tenant,
        team=team,
        contact=contact,
        type="email",
        direction="outbound",
        occurred_at=now - timedelta(hours=2),
    )
    ActivityFactory(
        tenant=tenant,
        team=team,
        contact=contact,
        type="call",
        direction="inbound",
        occurred_at=now - timedelta(hours=1),
    )
    m = analytics.entity_metrics(membership=admin, contact_ids=[contact.pk])
    assert m.total == 4
    assert m.their_response.median == pytest.approx(7200, abs=1)  # they answered our email in 2 h
    assert m.our_response.median == pytest.approx(3600, abs=1)  # we answered theirs in 1 h
    assert {t: n for t, _, n, _ in m.mix} == {"email": 3, "call": 1}
    assert (
        m.last_at
        == ActivityFactory._meta.model.objects.filter(contact=contact).latest("occurred_at").occurred_at
    )
    assert sum(m.weekly) == 4
    page = client_for(admin).get(reverse("activities:contact-analytics", args=[contact.pk]))
    assert page.status_code == 200 and "4 activities" in page.content.decode()


def test_account_analytics_rolls_up_its_contacts(client_for, tenant, team, admin):
    account = AccountFactory(tenant=tenant, team=team)
    for _ in range(2):
        contact = ContactFactory(tenant=tenant, team=team, account=account)
        ActivityFactory(
            tenant=tenant,
            team=team,
            contact=contact,
            account=account,
            type="call",
            occurred_at=timezone.now(),
        )
    m = analytics.entity_metrics(membership=admin, account_id=account.pk)
    assert m.total == 2
    assert (
        client_for(admin).get(reverse("activities:account-analytics", args=[account.pk])).status_code == 200
    )


def test_entity_analytics_of_other_tenant_or_team_is_404(
    client_for, tenant, other_tenant, other_team, make_member
):
    agent = make_member(tenant, Role.AGENT, teams=[TeamFactory(tenant=tenant)])
    foreign = ContactFactory(tenant=other_tenant)
    other_team_contact = ContactFactory(tenant=tenant, team=other_team)
    foreign_account = AccountFactory(tenant=other_tenant)
    client = client_for(agent)
    missing = client.get(reverse("activities:contact-analytics", args=[99_999_999]))
    for url in (
        reverse("activities:contact-analytics", args=[foreign.pk]),
        reverse("activities:contact-analytics", args=[other_team_contact.pk]),
        reverse("activities:account-analytics", args=[foreign_account.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 404 == missing.status_code


def test_contact_page_has_an_analytics_tab_and_account_page_a_section(client_for, tenant, team, admin):
    """Issue 9: the figures are on the contact and account pages (lazily by htmx, linked without JS)."""
    account = AccountFactory(tenant=tenant, team=team)
    contact = ContactFactory(tenant=tenant, team=team, account=account)
    client = client_for(admin)
    page = client.get(reverse("crm:contact-detail", args=[contact.pk]) + "?tab=analytics").content.decode()
    assert reverse("activities:contact-analytics", args=[contact.pk]) in page
    assert 'data-testid="contact-analytics-tab"' in page
    page = client.get(reverse("crm:account-detail", args=[account.pk])).content.decode()
    assert reverse("activities:account-analytics", args=[account.pk]) in page
    partial = client.get(reverse("activities:contact-analytics", args=[contact.pk]), HTTP_HX_REQUEST="true")
    assert partial.status_code == 200 and "<html" not in partial.content.decode()

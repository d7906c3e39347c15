"""Communication analytics pages (issue 9): the tenant dashboard, its CSV, and per contact / account."""

import csv

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from crm import selectors as crm_selectors
from crm.db_router import replica_reads

from . import analytics, charts
from .export import neutralise
from .models import ActivityType

SECTIONS = ("volume", "mix", "response", "teams", "agents", "engagement")


def _filters(request):
    """Period and team from the query string; bad input becomes messages, never an error page."""
    period, errors = analytics.parse_period(request.GET)
    teams = list(analytics.visible_teams(request.membership))
    team_id = None
    raw_team = request.GET.get("team", "")
    if raw_team:
        if raw_team.isdigit() and int(raw_team) in {t.pk for t in teams}:
            team_id = int(raw_team)
        else:
            errors.append("Unknown team: showing every team you can see.")
    return period, team_id, teams, errors


def _dashboard_context(request):
    period, team_id, teams, errors = _filters(request)
    membership = request.membership
    rollup = analytics.daily_rollup(membership=membership, period=period, team_id=team_id)
    series = analytics.volume(membership=membership, period=period, team_id=team_id, rollup=rollup)
    mix = analytics.channel_mix(series)
    response = analytics.response_summary(membership=membership, period=period, team_id=team_id)
    type_names = dict(ActivityType.choices)
    by_channel = {type_names.get(k, k): v for k, v in response.by_channel.items()}
    team_rows, agent_rows = analytics.performance(
        membership=membership,
        period=period,
        team_id=team_id,
        summary=response,
        rollup=rollup,
        previous_median=False,  # not shown: the table's trends are of the counts
    )
    team_names = {t.pk: t.name for t in teams}
    by_team = {team_names.get(k, "No team"): v for k, v in response.by_team.items()}
    agent_names = {r.key: r.label for r in agent_rows}
    by_agent = {agent_names.get(k, "Unassigned"): v for k, v in response.by_agent.items()}
    labels = [b.strftime("%b %d") for b in series.buckets]
    by_type = series.by_type()
    type_labels = {t: label for t, label, _, _ in mix}
    volume_chart = charts.stacked_bars(
        title=f"Communication volume per {period.bucket} by channel",
        labels=labels,
        series={type_labels[t]: by_type.get(t, [0] * len(labels)) for t, _, n, _ in mix if n},
    )
    directions = series.by_direction()
    return {
        "period": period,
        "team_id": team_id,
        "teams": teams,
        "errors": errors,
        "range": request.GET.get("range") or "30",
        "series": series,
        "labels": labels,
        "volume_chart": volume_chart,
        "volume_rows": [(type_labels[t], by_type.get(t, [])) for t, _, n, _ in mix if n],
        "inbound": directions.get("inbound", 0),
        "outbound": directions.get("outbound", 0),
        "mix": mix,
        "overall": response.overall,
        "by_channel": sorted(by_channel.items()),
        "by_team": sorted(by_team.items()),
        "by_agent": sorted(by_agent.items()),
        "team_rows": team_rows,
        "agent_rows": agent_rows,
        "engagement": analytics.engagement(membership=membership, period=period, team_id=team_id),
        "query": request.GET.urlencode(),
    }


@login_required
@require_GET
@vary_on_headers("HX-Request")
@replica_reads
def dashboard(request):
    context = _dashboard_context(request)
    partial = request.htmx and not request.htmx.history_restore_request
    template = (
        "activities/analytics/partials/_dashboard.html" if partial else "activities/analytics/dashboard.html"
    )
    return render(request, template, context)


@login_required
@require_GET
@replica_reads
def export_csv(request):
    section = request.GET.get("section", "volume")
    if section not in SECTIONS:
        return HttpResponse(
            f"Unknown section {section!r}: use one of {', '.join(SECTIONS)}.",
            status=400,
            content_type="text/plain",
        )
    c = _dashboard_context(request)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="analytics-{section}.csv"'
    writer = csv.writer(response)

    def row(*cells):
        writer.writerow([neutralise(str(cell)) if cell is not None else "" for cell in cells])

    if section == "volume":
        row("channel", *[b.isoformat() for b in c["series"].buckets])
        for label, counts in c["volume_rows"]:
            row(label, *counts)
    elif section == "mix":
        row("channel", "count", "share_percent")
        for _, label, n, share in c["mix"]:
            row(label, n, share)
    elif section == "response":
        row("group", "answered", "unanswered", "median_seconds", "p90_seconds")
        row("all", c["overall"].answered, c["overall"].unanswered, c["overall"].median, c["overall"].p90)
        for prefix, groups in (
            ("channel", c["by_channel"]),
            ("team", c["by_team"]),
            ("agent", c["by_agent"]),
        ):
            for name, stats in groups:
                row(f"{prefix}: {name}", stats.answered, stats.unanswered, stats.median, stats.p90)
    elif section in ("teams", "agents"):
        row("name", "handled", "handled_previous", "logged", "logged_previous", "median_response_seconds")
        for r in c["team_rows" if section == "teams" else "agent_rows"]:
            row(r.label, r.handled, r.previous_handled, r.logged, r.previous_logged, r.median_response)
    else:
        e = c["engagement"]
        row("list", "name", "activities")
        for name, items in (
            ("most engaged contacts", e.most_contacts),
            ("least engaged contacts", e.least_contacts),
        ):
            for contact, n in items:
                row(name, contact.name, n)
        for name, items in (
            ("most engaged accounts", e.most_accounts),
            ("least engaged accounts", e.least_accounts),
        ):
            for account, n in items:
                row(name, account.name, n)
        for q in e.quiet:
            row("going quiet", q.contact.name, q.count)
    return response


def _entity_page(request, *, entity, kind, metrics):
    chart = charts.stacked_bars(
        title="Activities per week (last 26 weeks)",
        labels=[w.strftime("%b %d") for w in metrics.weeks],
        series={"Activities": metrics.weekly},
        height=160,
    )
    context = {"entity": entity, "kind": kind, "m": metrics, "chart": chart}
    partial = request.htmx and not request.htmx.history_restore_request
    template = "activities/analytics/partials/_entity.html" if partial else "activities/analytics/entity.html"
    return render(request, template, context)


@login_required
@require_GET
@vary_on_headers("HX-Request")
def contact_analytics(request, pk):
    contact = crm_selectors.contact_get(membership=request.membership, pk=pk)
    metrics = analytics.entity_metrics(membership=request.membership, contact_ids=[contact.pk])
    return _entity_page(request, entity=contact, kind="contact", metrics=metrics)


@login_required
@require_GET
@vary_on_headers("HX-Request")
def account_analytics(request, pk):
    account = crm_selectors.account_get(membership=request.membership, pk=pk)
    metrics = analytics.entity_metrics(membership=request.membership, account_id=account.pk)
    return _entity_page(request, entity=account, kind="account", metrics=metrics)

"""CSV export (/activities/export.csv): streamed, same filters and visibility as the grid, formula
cells neutralised, other tenants never included."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.http import StreamingHttpResponse

from activities.export import neutralise
from activities.models import ActivityType
from tests.factories import ActivityFactory, ClosedInteractionFactory, ContactFactory

EXPORT = "/activities/export.csv"
BASE = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def read(response) -> list[dict]:
    assert isinstance(response, StreamingHttpResponse)
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=SUM(A1)", "'=SUM(A1)"),
        ("+1", "'+1"),
        ("-2+3", "'-2+3"),
        ("@cmd", "'@cmd"),
        ("\t=x", "'\t=x"),
        ("\rfoo", "'\rfoo"),
        ("  =HYPERLINK(1)", "'  =HYPERLINK(1)"),
        ("\x01=1", "'\x01=1"),
        ("plain text", "plain text"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_neutralise_formula_cells(value, expected):
    """OWASP CSV injection: text a spreadsheet would evaluate gets a leading apostrophe."""
    assert neutralise(value) == expected


@pytest.mark.django_db
def test_export_streams_filtered_rows_with_names(tenant, other_tenant, admin_member, client_for):
    contact = ContactFactory(tenant=tenant, name="=cmd|' /C calc'!A0")
    call = ActivityFactory(
        tenant=tenant, type=ActivityType.CALL, contact=contact, summary="@SUM(1)", occurred_at=BASE
    )
    ActivityFactory(tenant=tenant, type=ActivityType.NOTE, occurred_at=BASE - timedelta(minutes=1))
    ActivityFactory(tenant=other_tenant, type=ActivityType.CALL, summary="foreign")

    response = client_for(admin_member).get(EXPORT + "?type=call")

    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = read(response)
    assert [r["id"] for r in rows] == [str(call.pk)]
    assert rows[0]["contact"] == "'=cmd|' /C calc'!A0"
    assert rows[0]["summary"] == "'@SUM(1)"
    assert rows[0]["type"] == "Call"


@pytest.mark.django_db
def test_export_spans_many_batches_in_order(tenant, admin_member, client_for, monkeypatch):
    monkeypatch.setattr("activities.export.BATCH", 3)
    made = [ActivityFactory(tenant=tenant, occurred_at=BASE - timedelta(minutes=i)) for i in range(8)]
    made.append(ClosedInteractionFactory(tenant=tenant, started_at=BASE - timedelta(minutes=20)))
    rows = read(client_for(admin_member).get(EXPORT))
    assert [int(r["id"]) for r in rows] == [m.pk for m in made]
    rows_asc = read(client_for(admin_member).get(EXPORT + "?sort=created"))
    assert [int(r["id"]) for r in rows_asc] == [m.pk for m in reversed(made)]


@pytest.mark.django_db
def test_export_applies_team_visibility_and_email_redaction(
    tenant, team, other_team, agent_member, client_for
):
    visible_email = ActivityFactory(
        tenant=tenant,
        team=team,
        type=ActivityType.EMAIL,
        summary="secret subject",
        first_message="body",
        occurred_at=BASE,
    )
    ActivityFactory(tenant=tenant, team=other_team, summary="other team", occurred_at=BASE)

    rows = read(client_for(agent_member).get(EXPORT))

    assert [int(r["id"]) for r in rows] == [visible_email.pk]
    assert rows[0]["summary"] == "" and rows[0]["first_message"] == ""
    assert rows[0]["type"] == "Email"


@pytest.mark.django_db
def test_export_of_other_tenant_user_shows_only_their_rows(tenant, foreign_member, client_for):
    ActivityFactory(tenant=tenant, summary="acme only")
    rows = read(client_for(foreign_member).get(EXPORT))
    assert rows == []


@pytest.mark.django_db
def test_export_with_bad_input_and_no_match_still_answers(tenant, admin_member, client_for):
    ActivityFactory(tenant=tenant)
    assert len(read(client_for(admin_member).get(EXPORT + "?type=bogus&date_from=x"))) == 1
    assert read(client_for(admin_member).get(EXPORT + "?contact=nobody-matches")) == []


@pytest.mark.django_db
def test_export_requires_login(client):
    response = client.get(EXPORT)
    assert response.status_code == 302 and "/login/" in response["Location"]

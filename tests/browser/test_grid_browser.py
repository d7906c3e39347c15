"""The activity grid in the system Chromium: filter, page older and back newer, the URL holds the state."""

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from activities.models import ActivityType
from crm.models import Role
from tests.conftest import PASSWORD
from tests.factories import ActivityFactory, MembershipFactory, TeamFactory, TenantFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
BASE = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def visible_ids(page) -> list[str]:
    return page.locator("[data-testid=grid-row]").evaluate_all("rows => rows.map(r => r.dataset.id)")


def test_filter_then_page_forward_and_back(page, live_server, browser_login):
    # given 60 calls and 5 notes in Acme, and a call of another tenant
    tenant = TenantFactory(name="Acme Grid")
    team = TeamFactory(tenant=tenant)
    user = UserFactory(email="admin.grid@example.test", username="admin.grid@example.test")
    MembershipFactory(tenant=tenant, user=user, role=Role.ADMIN, teams=[team], can_manage_email=True)
    calls = [
        ActivityFactory(
            tenant=tenant, team=team, type=ActivityType.CALL, occurred_at=BASE - timedelta(minutes=i)
        )
        for i in range(60)
    ]
    for i in range(5):
        ActivityFactory(
            tenant=tenant, team=team, type=ActivityType.NOTE, occurred_at=BASE + timedelta(minutes=i)
        )
    ActivityFactory(tenant=TenantFactory(), type=ActivityType.CALL, summary="foreign call", occurred_at=BASE)
    browser_login(page, live_server, "admin.grid@example.test", PASSWORD)

    # when the grid is filtered to calls (htmx swaps the table and pushes the URL)
    page.goto(f"{live_server.url}/activities/")
    assert len(visible_ids(page)) == 50
    page.select_option("#id_type", ["call"])
    page.wait_for_url("**/activities/?*type=call*")
    page.wait_for_function("() => document.querySelectorAll('[data-testid=grid-row]').length == 50")
    # then the rows are the 50 newest calls, the URL holds the filter, and the lazy count arrived
    assert visible_ids(page) == [str(a.pk) for a in calls[:50]]
    assert parse_qs(urlsplit(page.url).query)["type"] == ["call"]
    page.get_by_test_id("grid-count").wait_for()
    assert page.get_by_test_id("grid-count").inner_text() == "60 activities"
    assert "foreign call" not in page.content()

    # when paging older
    page.get_by_test_id("page-next").click()
    page.wait_for_url("**cursor=*")
    page.wait_for_function("() => document.querySelectorAll('[data-testid=grid-row]').length == 10")
    assert visible_ids(page) == [str(a.pk) for a in calls[50:]]
    older_url = page.url
    assert parse_qs(urlsplit(older_url).query)["type"] == ["call"]

    # and back newer
    page.get_by_test_id("page-prev").click()
    page.wait_for_function("() => document.querySelectorAll('[data-testid=grid-row]').length == 50")
    assert visible_ids(page) == [str(a.pk) for a in calls[:50]]

    # then the older page's URL, opened in a fresh tab, shows the same rows
    other = page.context.new_page()
    other.goto(older_url)
    assert [
        r for r in other.locator("[data-testid=grid-row]").evaluate_all("rs => rs.map(r => r.dataset.id)")
    ] == [str(a.pk) for a in calls[50:]]
    other.close()

    # and the browser's back button restores the filtered first page
    page.go_back()
    page.go_back()
    page.wait_for_function("() => document.querySelectorAll('[data-testid=grid-row]').length == 50")
    assert page.console_errors == []

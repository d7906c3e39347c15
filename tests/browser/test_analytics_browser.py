"""A manager opens the analytics dashboard and a contact's analytics in Chromium; screenshots are saved
to test-artifacts/ for a person to look at."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from crm.models import Role
from tests.conftest import PASSWORD
from tests.factories import (
    ActivityFactory,
    ContactFactory,
    InteractionFactory,
    InteractionMessageFactory,
    MembershipFactory,
    QueueFactory,
    TeamFactory,
    TenantFactory,
    UserFactory,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def test_dashboard_and_contact_analytics(page, live_server, browser_login):
    # given a manager of Sales, a few weeks of calls and emails, and a chat answered in 5 minutes
    tenant = TenantFactory(name="Analytics Inc")
    sales = TeamFactory(tenant=tenant, name="Sales")
    user = UserFactory(email="mgr.analytics@example.test", username="mgr.analytics@example.test")
    MembershipFactory(tenant=tenant, user=user, role=Role.MANAGER, teams=[sales], can_manage_email=True)
    contact = ContactFactory(tenant=tenant, team=sales, name="Grace Hopper")
    now = timezone.now()
    for day in range(20):
        for kind, direction in (("call", "inbound"), ("email", "outbound"), ("sms", "inbound")):
            if (day + len(kind)) % 3:
                ActivityFactory(
                    tenant=tenant,
                    team=sales,
                    contact=contact,
                    type=kind,
                    direction=direction,
                    occurred_at=now - timedelta(days=day, hours=2),
                )
    chat = InteractionFactory(tenant=tenant, queue=QueueFactory(tenant=tenant), team=sales, contact=contact)
    InteractionMessageFactory(
        tenant=tenant, interaction=chat, direction="inbound", sent_at=now - timedelta(hours=1)
    )
    InteractionMessageFactory(
        tenant=tenant, interaction=chat, direction="outbound", sent_at=now - timedelta(minutes=55)
    )
    ActivityFactory(
        tenant=TenantFactory(), type="call", direction="inbound", occurred_at=now
    )  # never counted
    browser_login(page, live_server, "mgr.analytics@example.test", PASSWORD)
    ARTIFACTS.mkdir(exist_ok=True)

    # when the dashboard opens for 30 days
    page.goto(f"{live_server.url}/analytics/?range=30")
    # then the chart, the figures and the reply time are there
    assert page.get_by_test_id("volume-chart").is_visible()
    assert page.locator("[data-testid=volume-chart] rect[fill^='url(']").count() > 10
    mix = page.get_by_test_id("mix-table").inner_text()
    assert "Call" in mix and "Email" in mix and "SMS" in mix
    assert "5 min" in page.get_by_test_id("response-table").inner_text()
    page.screenshot(path=str(ARTIFACTS / "analytics-dashboard.png"), full_page=True)

    # when the period changes to 7 days through the filter (htmx, URL updated)
    page.select_option("#an-range", "7")
    page.wait_for_url("**range=7**")
    assert "range=7" in page.url

    # and a contact's analytics
    page.goto(f"{live_server.url}/contacts/{contact.pk}/analytics/")
    assert "per week" in page.get_by_test_id("frequency").inner_text()
    assert page.get_by_test_id("contact-weekly-chart").is_visible()
    page.screenshot(path=str(ARTIFACTS / "analytics-contact.png"), full_page=True)
    assert not page.console_errors

"""A person logs in with the system Chromium and sees the home page of their tenant."""

import pytest

from activities.models import ActivityType
from crm.models import Role
from tests.conftest import PASSWORD
from tests.factories import ActivityFactory, MembershipFactory, TeamFactory, TenantFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_login_and_see_the_home_page(page, live_server, browser_login):
    # given an agent of Acme with one note on their team, and a note of another tenant
    tenant = TenantFactory(name="Acme Browser")
    team = TeamFactory(tenant=tenant)
    user = UserFactory(email="agent.browser@example.test", username="agent.browser@example.test")
    MembershipFactory(tenant=tenant, user=user, role=Role.AGENT, teams=[team])
    summary = "Called <b>Ada</b> about renewal"
    ActivityFactory(tenant=tenant, team=team, type=ActivityType.NOTE, summary=summary)
    ActivityFactory(tenant=TenantFactory(name="Elsewhere"), type=ActivityType.NOTE, summary="not yours")
    # when
    browser_login(page, live_server, "agent.browser@example.test", PASSWORD)
    # then
    assert page.url.rstrip("/") == live_server.url.rstrip("/")
    assert page.get_by_test_id("tenant-name").inner_text() == "Acme Browser"
    recent = page.get_by_test_id("recent-activity")
    assert summary in recent.inner_text()  # escaped, shown as text
    assert "not yours" not in page.content()
    page.locator("nav .dropdown-toggle").click()
    assert page.locator("form[action='/logout/'] button").is_visible()

"""A manager opens a contact's timeline from the badge on the contacts grid, pages it, filters it, and
sees a new activity appear at the top without a reload, exactly once."""

from datetime import timedelta

import pytest
from django.utils import timezone

from activities.models import ActivityType
from activities.services import activity_log
from crm.models import Role
from tests.conftest import PASSWORD
from tests.factories import (
    ActivityFactory,
    ContactFactory,
    MembershipFactory,
    TeamFactory,
    TenantFactory,
    UserFactory,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_badge_opens_timeline_that_pages_filters_and_updates_live(page, live_server, browser_login):
    # given a manager and a contact with 12 activities (8 notes, 4 calls) of the manager's team
    tenant = TenantFactory(name="Acme Timeline")
    team = TeamFactory(tenant=tenant)
    user = UserFactory(email="mgr.timeline@example.test", username="mgr.timeline@example.test")
    MembershipFactory(tenant=tenant, user=user, role=Role.MANAGER, teams=[team], can_manage_email=True)
    contact = ContactFactory(tenant=tenant, team=team, name="Ada Timeline")
    ContactFactory(tenant=tenant, team=team, name="Bob Quiet")
    start = timezone.now() - timedelta(days=2)
    for i in range(12):
        kind = ActivityType.CALL if i % 3 == 0 else ActivityType.NOTE
        ActivityFactory(
            tenant=tenant,
            team=team,
            contact=contact,
            type=kind,
            summary=f"History item {i}",
            occurred_at=start + timedelta(minutes=i),
        )
    browser_login(page, live_server, "mgr.timeline@example.test", PASSWORD)

    # when the manager opens the contacts grid and clicks Ada's badge
    page.goto(f"{live_server.url}/contacts/")
    row = page.locator(f'[data-testid="grid-row"][data-pk="{contact.pk}"]')
    badge = row.get_by_test_id("activity-badge")
    assert badge.inner_text() == "12 Activities"
    assert (
        page.locator('[data-testid="grid-row"]', has_text="Bob Quiet")
        .get_by_test_id("activity-badge")
        .inner_text()
        == "No activity"
    )
    badge.click()

    # then a modal shows the 10 newest entries
    modal = page.get_by_test_id("timeline-modal")
    modal.wait_for(state="visible")
    entries = modal.get_by_test_id("timeline-entry")
    entries.nth(9).wait_for()
    assert entries.count() == 10
    assert "History item 11" in entries.first.inner_text()
    assert page.url.rstrip("/").endswith("/contacts")  # still over the grid

    # when "load older" is clicked, then the last two appear below
    modal.get_by_test_id("timeline-older").click()
    entries.nth(11).wait_for()
    assert entries.count() == 12
    assert "History item 0" in entries.nth(11).inner_text()
    assert modal.get_by_test_id("timeline-older").count() == 0

    # when filtered to calls, then only the 4 calls remain, in the open window
    modal.locator("#timeline-type").select_option("call")
    page.wait_for_function(
        "() => document.querySelectorAll('#timeline-modal [data-testid=timeline-entry]').length === 4"
    )
    types = modal.locator('[data-testid="timeline-entry"]').evaluate_all(
        "els => els.map(e => e.dataset.type)"
    )
    assert types == ["call"] * 4
    assert modal.is_visible()

    # when a new call is logged for Ada (elsewhere), then it appears at the top without a reload
    new, _ = activity_log(
        tenant=tenant,
        actor=user,
        type=ActivityType.CALL,
        team=team,
        contact=contact,
        summary="Brand new call",
    )
    page.locator(f'#timeline-modal [data-testid="timeline-entry"][data-id="{new.pk}"]').wait_for(
        timeout=10_000
    )
    assert "Brand new call" in modal.get_by_test_id("timeline-entry").first.inner_text()
    # and it is shown exactly once, also after a few more polls
    page.wait_for_timeout(7_000)
    assert page.locator(f'#timeline-modal [data-testid="timeline-entry"][data-id="{new.pk}"]').count() == 1
    assert modal.get_by_test_id("timeline-entry").count() == 5
    assert page.console_errors == []

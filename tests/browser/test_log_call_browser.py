"""An agent opens a contact's timeline window from the contacts grid, logs a call in place (htmx), and sees
it appear in the timeline without a reload; bad input shows an error next to the field first. Then the
author edits the entry in place and the timeline shows the change."""

import pytest

from activities.models import Activity, ActivityType
from crm.models import Role
from tests.conftest import PASSWORD
from tests.factories import ContactFactory, MembershipFactory, TeamFactory, TenantFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_log_a_call_from_the_timeline_window(page, live_server, browser_login):
    # given an agent and a contact of the agent's team without any activity
    tenant = TenantFactory(name="Acme Capture")
    team = TeamFactory(tenant=tenant)
    user = UserFactory(email="agent.capture@example.test", username="agent.capture@example.test")
    MembershipFactory(tenant=tenant, user=user, role=Role.AGENT, teams=[team])
    contact = ContactFactory(tenant=tenant, team=team, name="Ada Capture")
    browser_login(page, live_server, "agent.capture@example.test", PASSWORD)

    # when the agent opens Ada's timeline window from the grid badge
    page.goto(f"{live_server.url}/contacts/")
    url_before = page.url
    page.locator(f'[data-testid="grid-row"][data-pk="{contact.pk}"]').get_by_test_id("activity-badge").click()
    modal = page.get_by_test_id("timeline-modal")
    modal.wait_for(state="visible")

    # and opens the log form in place
    modal.get_by_test_id("log-activity-button").click()
    form = modal.get_by_test_id("log-form")
    form.wait_for(state="visible")
    assert "for Ada Capture" in form.inner_text()

    # then submitting without a direction shows the error next to the field, nothing is written
    form.locator("select[name=type]").select_option("call")
    form.locator("input[name=summary]").fill("Called about the <b>renewal</b>")
    form.locator("select[name=direction]").select_option("")
    form.get_by_test_id("log-submit").click()
    modal.get_by_test_id("error-direction").wait_for(state="visible")
    assert "inbound or outbound" in modal.get_by_test_id("error-direction").inner_text()
    assert not Activity.objects.exists()

    # when the agent picks a direction and a duration and submits again
    form = modal.get_by_test_id("log-form")
    form.locator("select[name=direction]").select_option("outbound")
    form.locator("input[name=duration_minutes]").fill("7")
    form.get_by_test_id("log-submit").click()

    # then the form closes with a confirmation and the call appears in the timeline, escaped, without a reload
    modal.get_by_test_id("log-done").wait_for(state="visible")
    entry = modal.get_by_test_id("timeline-entry").filter(has_text="Called about the <b>renewal</b>")
    entry.wait_for(state="visible", timeout=15_000)
    assert entry.get_attribute("data-type") == "call"
    assert page.url == url_before
    activity = Activity.objects.get()
    assert (activity.type, activity.direction, activity.duration_seconds) == (
        ActivityType.CALL,
        "outbound",
        420,
    )
    assert (activity.contact_id, activity.user_id) == (contact.pk, user.pk)

    # when the author edits the entry in place
    entry.get_by_test_id("edit-activity").click()
    edit_form = entry.get_by_test_id("log-form")
    edit_form.locator("input[name=summary]").fill("Called about the renewal (edited)")
    edit_form.get_by_test_id("log-submit").click()

    # then the timeline refreshes with the new summary, and the edit is in the audit record
    modal.get_by_test_id("timeline-entry").filter(has_text="Called about the renewal (edited)").wait_for(
        state="visible"
    )
    assert modal.get_by_test_id("timeline-entry").count() == 1
    activity.refresh_from_db()
    assert activity.summary == "Called about the renewal (edited)"
    assert activity.audit_entries.get().action == "edited"
    assert page.console_errors == []

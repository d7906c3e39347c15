"""The message viewer in the system Chromium: bubble layout and in-conversation search."""

from datetime import timedelta

import pytest
from django.utils import timezone

from contactcenter.models import MessageKind
from crm.models import Role
from tests.conftest import PASSWORD
from tests.factories import (
    ClosedInteractionFactory,
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

LINES = [
    ("inbound", "Hi, my Parcel has not arrived"),
    ("outbound", "Sorry! Which parcel number?"),
    ("inbound", "parcel 42, and the other PARCEL too"),
    ("outbound", "Found both. <script>window.pwned=1</script> (.*) [a-z]+"),
]


def _conversation(extra_messages=0):
    tenant = TenantFactory(name="Viewer Co")
    team = TeamFactory(tenant=tenant)
    user = UserFactory(email="viewer.admin@example.test", username="viewer.admin@example.test")
    MembershipFactory(tenant=tenant, user=user, role=Role.ADMIN, teams=[team])
    queue = QueueFactory(tenant=tenant, name="Parcels", channel="whatsapp", team=team)
    contact = ContactFactory(tenant=tenant, name="Pat Customer", team=team)
    interaction = InteractionFactory(tenant=tenant, queue=queue, team=team, contact=contact, status="closed")
    start = timezone.now() - timedelta(hours=2)
    messages = []
    for i in range(extra_messages):
        messages.append(("inbound" if i % 2 else "outbound", f"filler line {i} about nothing"))
    messages += LINES
    for i, (direction, text) in enumerate(messages):
        InteractionMessageFactory(
            tenant=tenant,
            interaction=interaction,
            direction=direction,
            author_name="Pat Customer" if direction == "inbound" else "Agent Smith",
            text=text,
            sent_at=start + timedelta(seconds=i),
        )
    InteractionMessageFactory(
        tenant=tenant,
        interaction=interaction,
        kind=MessageKind.SYSTEM,
        direction="none",
        text="Transferred to Billing",
        sent_at=start + timedelta(seconds=len(messages)),
    )
    closed = ClosedInteractionFactory(
        tenant=tenant,
        interaction=interaction,
        team=team,
        contact=contact,
        message_count=len(messages),
        started_at=start,
    )
    return closed


def test_bubbles_outbound_right_inbound_left_system_centred(page, live_server, browser_login):
    closed = _conversation()
    browser_login(page, live_server, "viewer.admin@example.test", PASSWORD)
    page.goto(f"{live_server.url}/interactions/{closed.pk}/messages/")
    viewer = page.get_by_test_id("message-viewer").bounding_box()
    centre = viewer["x"] + viewer["width"] / 2
    inbound = page.locator(".cc-inbound .cc-bubble").first.bounding_box()
    outbound = page.locator(".cc-outbound .cc-bubble").first.bounding_box()
    system = page.get_by_test_id("system-event").bounding_box()
    assert inbound["x"] + inbound["width"] < centre + 1  # left half
    assert outbound["x"] > inbound["x"] + 50 and outbound["x"] + outbound["width"] > centre
    assert abs((system["x"] + system["width"] / 2) - centre) < 20
    in_bg = page.locator(".cc-inbound .cc-bubble").first.evaluate("e => getComputedStyle(e).backgroundColor")
    out_bg = page.locator(".cc-outbound .cc-bubble").first.evaluate(
        "e => getComputedStyle(e).backgroundColor"
    )
    assert in_bg != out_bg
    assert page.get_by_test_id("viewer-queue").inner_text() == "Parcels"
    assert page.get_by_test_id("viewer-channel").inner_text() == "WhatsApp"
    assert page.get_by_test_id("viewer-count").inner_text() == "4"
    assert "Agent Smith" in page.locator(".cc-outbound").first.inner_text()
    # message text is text: the script in a message did not run
    assert page.evaluate("window.pwned") is None
    assert page.console_errors == []


def test_search_highlights_counts_and_navigates(page, live_server, browser_login):
    closed = _conversation(extra_messages=60)
    browser_login(page, live_server, "viewer.admin@example.test", PASSWORD)
    page.goto(f"{live_server.url}/interactions/{closed.pk}/messages/")
    search = page.get_by_test_id("viewer-search")
    count = page.get_by_test_id("search-count")
    # typing highlights every case-insensitive match
    search.fill("parcel")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=search-count]').textContent === '1 of 4'"
    )
    assert page.locator("mark.cc-match").count() == 4
    assert page.locator("mark.cc-current").inner_text() == "Parcel"
    # Enter / arrows / buttons move between them, wrapping around
    search.press("Enter")
    assert count.inner_text() == "2 of 4"
    assert page.locator("mark.cc-current").inner_text() == "parcel"
    search.press("ArrowDown")
    search.press("ArrowDown")
    assert count.inner_text() == "4 of 4"
    assert page.locator("mark.cc-current").inner_text() == "PARCEL"
    page.get_by_test_id("search-next").click()
    assert count.inner_text() == "1 of 4"
    page.get_by_test_id("search-prev").click()
    assert count.inner_text() == "4 of 4"
    search.press("ArrowUp")
    assert count.inner_text() == "3 of 4"
    # the current match is scrolled into view inside the message list
    in_view = page.locator("mark.cc-current").evaluate(
        """m => { const l = m.closest('[data-viewer-messages]').getBoundingClientRect();
                  const r = m.getBoundingClientRect(); return r.top >= l.top && r.bottom <= l.bottom; }"""
    )
    assert in_view
    # Escape clears the search and the highlights, leaving the text as it was
    search.press("Escape")
    assert search.input_value() == ""
    assert page.locator("mark").count() == 0
    assert count.inner_text() == ""
    assert page.locator(".msg-text", has_text="parcel 42, and the other PARCEL too").count() == 1


@pytest.mark.parametrize("query", ["(.*)", "[a-z]+", "<script>", "."])
def test_search_treats_special_characters_literally(page, live_server, browser_login, query):
    closed = _conversation()
    browser_login(page, live_server, "viewer.admin@example.test", PASSWORD)
    page.goto(f"{live_server.url}/interactions/{closed.pk}/messages/")
    page.get_by_test_id("viewer-search").fill(query)
    page.wait_for_function("() => document.querySelector('[data-testid=search-count]').textContent !== ''")
    expected = sum(text.lower().count(query.lower()) for _, text in LINES)
    expected += "Transferred to Billing".count(query)
    count = page.get_by_test_id("search-count").inner_text()
    assert count == f"1 of {expected}"
    assert page.evaluate("window.pwned") is None


def test_grid_row_opens_the_viewer_as_a_modal(page, live_server, browser_login):
    _conversation()
    browser_login(page, live_server, "viewer.admin@example.test", PASSWORD)
    page.goto(f"{live_server.url}/interactions/")
    page.get_by_test_id("interaction-row").first.locator("a").click()
    modal = page.locator("[data-cc-modal]")
    modal.wait_for(state="visible")
    assert modal.get_by_test_id("viewer-queue").inner_text() == "Parcels"
    modal.get_by_test_id("viewer-search").fill("parcel")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=search-count]').textContent === '1 of 4'"
    )
    assert page.console_errors == []

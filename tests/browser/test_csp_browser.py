"""The app works under its Content-Security-Policy (no inline script or style, no eval), in Chromium.

Every behaviour that used to be an inline handler (``onchange``, ``onsubmit``, ``onkeydown``, ``hx-on``) or an
inline style is exercised on its page, plus the email body's iframe and the Django admin's own scripts. The
``page`` fixture fails the test on any CSP violation (tests/plugins/browser.py); console errors of any other
kind are asserted empty here too.
"""

import re

import pytest
from django.utils import timezone

from activities.models import ActivityType, Direction
from contactcenter import services as cc_services
from contactcenter.models import Channel
from crm.models import ApiKey, Role
from tests.conftest import PASSWORD
from tests.factories import (
    ActivityFactory,
    ApiKeyFactory,
    ContactFactory,
    EmailLocationFactory,
    IncomingEmailFactory,
    MailboxFactory,
    MembershipFactory,
    QueueFactory,
    TeamFactory,
    TenantFactory,
    UserFactory,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EMAIL = "csp.admin@example.test"


@pytest.fixture
def world():
    acme = TenantFactory(name="Acme CSP")
    beta = TenantFactory(name="Beta CSP")
    team = TeamFactory(tenant=acme, name="Support")
    user = UserFactory(email=EMAIL, username=EMAIL, is_staff=True, is_superuser=True)
    MembershipFactory(tenant=acme, user=user, role=Role.ADMIN, teams=[team], can_manage_email=True)
    MembershipFactory(tenant=beta, user=user, role=Role.ADMIN, teams=[TeamFactory(tenant=beta)])
    contact = ContactFactory(tenant=acme, team=team, name="Ada Policy", emails=["ada@example.test"])
    now = timezone.now()
    for i, kind in enumerate([ActivityType.CALL, ActivityType.NOTE, ActivityType.MEETING]):
        ActivityFactory(
            tenant=acme,
            team=team,
            contact=contact,
            type=kind,
            summary=f"Earlier {kind} {i}",
            occurred_at=now - timezone.timedelta(days=i + 1),
        )
    email = EmailLocationFactory(
        tenant=acme,
        mailbox=MailboxFactory(tenant=acme, owner=user),
        email=IncomingEmailFactory(
            tenant=acme, subject="Framed", body_html="<p>Hello from the <b>framed</b> body</p>"
        ),
    ).email
    ActivityFactory(
        tenant=acme,
        team=team,
        contact=contact,
        type=ActivityType.EMAIL,
        direction=Direction.INBOUND,
        user=user,
        summary=email.subject,
        dedup_key=f"email:{email.pk}",
        source_id=email.pk,
    )
    key = ApiKeyFactory(tenant=acme, name="Billing system")
    queue = QueueFactory(tenant=acme, team=team, name="Website", channel=Channel.WEBCHAT)
    widget = cc_services.widget_config_create(tenant=acme, queue=queue, allowed_origins=["https://shop.test"])
    chat = cc_services.widget_chat_start(widget=widget, name="Vic", email="vic@example.test", text="Hello?")
    return {"acme": acme, "beta": beta, "contact": contact, "email": email, "key": key, "chat": chat}


def test_pages_and_their_behaviours_work_under_the_csp(page, live_server, browser_login, world):
    base = live_server.url
    browser_login(page, live_server, EMAIL, PASSWORD)

    # the tenant switcher submits on change (data-autosubmit)
    page.goto(f"{base}/")
    switcher = page.locator("select[name=tenant]")
    other = str(world["beta"].pk if switcher.input_value() == str(world["acme"].pk) else world["acme"].pk)
    with page.expect_navigation():
        switcher.select_option(other)
    assert page.locator("select[name=tenant]").input_value() == other
    if other != str(world["acme"].pk):
        with page.expect_navigation():
            page.locator("select[name=tenant]").select_option(str(world["acme"].pk))

    # a grid, a timeline window with the log form: Cancel removes the form, a logged note shows a
    # confirmation whose close button removes it (data-remove-closest)
    page.goto(f"{base}/contacts/")
    page.locator(f'[data-testid="grid-row"][data-pk="{world["contact"].pk}"]').get_by_test_id(
        "activity-badge"
    ).click()
    modal = page.get_by_test_id("timeline-modal")
    modal.wait_for(state="visible")
    modal.get_by_test_id("log-activity-button").click()
    form = modal.get_by_test_id("log-form")
    form.wait_for(state="visible")
    form.get_by_role("link", name="Cancel").click()
    form.wait_for(state="detached")
    assert "/contacts/" in page.url  # the Cancel link's own navigation did not happen
    modal.get_by_test_id("log-activity-button").click()
    form = modal.get_by_test_id("log-form")
    form.locator("select[name=type]").select_option("note")
    form.locator("input[name=summary]").fill("Logged under the policy")
    form.get_by_test_id("log-submit").click()
    done = modal.get_by_test_id("log-done")
    done.wait_for(state="visible")
    modal.get_by_test_id("timeline-entry").filter(has_text="Logged under the policy").wait_for()
    done.get_by_role("button", name="Close").click()
    done.wait_for(state="detached")

    # the activities grid filters through htmx; its indicator rules come from app.css
    page.goto(f"{base}/activities/")
    page.select_option("#id_type", ["note"])
    page.wait_for_url("**/activities/?*type=note*")
    assert page.get_by_test_id("grid-row").filter(has_text="Logged under the policy").count() == 1
    assert page.locator("#grid-spinner").evaluate("e => getComputedStyle(e).display") == "none"

    # the contact page: analytics tab loaded on "load", edit form opened in place and cancelled
    page.goto(f"{base}/contacts/{world['contact'].pk}/?tab=analytics")
    page.get_by_test_id("contact-weekly-chart").wait_for()
    page.get_by_test_id("contact-edit-button").click()
    contact_form = page.get_by_test_id("contact-form")
    contact_form.wait_for(state="visible")
    contact_form.get_by_role("link", name="Cancel").click()
    contact_form.wait_for(state="detached")

    # the analytics dashboard: share bars are SVG (width attribute, not a style), charts keep their size
    page.goto(f"{base}/analytics/?range=30")
    bars = page.locator("[data-testid=mix-table] .share-bar-fill")
    assert bars.count() >= 2
    widths = bars.evaluate_all("bs => bs.map(b => b.getAttribute('width'))")
    assert all(re.fullmatch(r"[\d.]+%", w) for w in widths), widths
    widest = bars.evaluate_all("bs => Math.max(...bs.map(b => b.getBoundingClientRect().width))")
    assert widest > 10
    chart = page.get_by_test_id("volume-chart")
    box = chart.bounding_box()
    assert 0 < box["height"] <= int(chart.get_attribute("height")) + 1 and box["width"] > 100
    page.select_option("#an-range", "7")
    page.wait_for_url("**range=7**")
    page.get_by_test_id("mix-table").wait_for()

    # the email page frames the sanitised body (frame-src 'self'); the body keeps its own policy
    page.goto(f"{base}/emails/{world['email'].pk}/")
    frame = page.frame_locator("[data-testid=email-frame]")
    assert "framed body" in frame.locator("body").inner_text()
    width = page.get_by_test_id("email-frame").evaluate("e => e.getBoundingClientRect().width")
    assert width > 300  # .email-frame: full width, from app.css

    # API keys: Revoke asks first (data-confirm); dismissing keeps the key, accepting revokes it
    page.goto(f"{base}/settings/api-keys/")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Revoke").click()
    page.wait_for_timeout(300)
    world["key"].refresh_from_db()
    assert world["key"].revoked_at is None
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.get_by_role("button", name="Revoke").click()
    assert ApiKey.objects.get(pk=world["key"].pk).revoked_at is not None

    # live chat: Enter sends the reply (data-submit-on-enter), the form is cleared after it (htmx)
    page.goto(f"{base}/live-chats/{world['chat'].chat.interaction_id}/")
    reply = page.get_by_test_id("reply-text")
    reply.fill("Sent with Enter")
    reply.press("Enter")
    page.get_by_test_id("live-message-outbound").filter(has_text="Sent with Enter").wait_for()
    assert reply.input_value() == ""

    # the Django admin: changelist with its actions script, change forms with their widgets
    page.goto(f"{base}/admin/")
    page.goto(f"{base}/admin/crm/contact/")
    page.locator("#action-toggle").check()
    selected = re.search(r"(\d+) of (\d+) selected", page.locator(".action-counter").inner_text())
    assert selected and selected[1] == selected[2] != "0"  # actions.js counted the ticked rows
    page.goto(f"{base}/admin/crm/contact/{world['contact'].pk}/change/")
    assert page.input_value("#id_name") == "Ada Policy"
    page.goto(f"{base}/admin/activities/activity/")
    page.locator("#result_list tbody tr th a, #result_list tbody tr td a").first.click()
    page.wait_for_url("**/change/")
    page.locator(".datetimeshortcuts a").filter(has=page.locator(".date-icon")).first.click()
    page.locator(".calendarbox").first.wait_for(state="visible")

    assert page.console_errors == []

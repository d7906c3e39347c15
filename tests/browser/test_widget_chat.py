"""A full website chat in the system Chromium: a visitor on another origin chats through the widget
with an agent on the Live chats page; the ended chat lands in the grid and the contact's timeline."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.urls import NoReverseMatch, reverse

from activities.models import FeedEntry
from contactcenter import services
from contactcenter.models import Channel, ClosedInteraction
from crm.models import Contact, Role
from tests.conftest import PASSWORD
from tests.factories import MembershipFactory, QueueFactory, TeamFactory, TenantFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def shop_server():
    """shop_server(html with a {script} slot) -> a tiny web server on 127.0.0.1 serving the visitor's page."""
    servers = []

    def _start(html: str):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                body = html.replace("{script}", server.script).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.script = ""
        server.origin = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield _start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_visitor_and_agent_chat_until_the_visitor_ends_it(
    browser, page, live_server, browser_login, shop_server
):
    # given a tenant whose widget is allowed on the shop's origin, and an agent of the chat queue's team
    tenant = TenantFactory(name="Widget Co")
    team = TeamFactory(tenant=tenant, name="Support")
    agent = UserFactory(
        email="chat.agent@example.test",
        username="chat.agent@example.test",
        first_name="Ann",
        last_name="Agent",
    )
    MembershipFactory(tenant=tenant, user=agent, role=Role.AGENT, teams=[team])
    queue = QueueFactory(tenant=tenant, name="Website", channel=Channel.WEBCHAT, team=team)
    shop_html = (
        "<!doctype html><html><head><title>Shop</title></head><body><h1>Our shop</h1>{script}</body></html>"
    )
    shop = shop_server(shop_html)  # a real second origin on loopback (Chromium's local-network rules)
    widget = services.widget_config_create(tenant=tenant, queue=queue, allowed_origins=[shop.origin])
    shop.script = f'<script src="{live_server.url}/widget/{widget.public_key}.js"></script>'

    # the agent opens Live chats
    browser_login(page, live_server, "chat.agent@example.test", PASSWORD)
    page.goto(f"{live_server.url}/live-chats/")

    # the visitor opens the shop page that embeds the widget script
    visitor_context = browser.new_context()
    visitor_context.set_default_timeout(15_000)
    visitor = visitor_context.new_page()
    visitor_errors = []
    visitor.on("pageerror", lambda exc: visitor_errors.append(str(exc)))
    try:
        visitor.goto(f"{shop.origin}/shop.html")
        visitor.get_by_test_id("crm-widget-button").click()
        visitor.get_by_test_id("crm-widget-name").fill("Vic Visitor")
        visitor.get_by_test_id("crm-widget-email").fill("Vic@Example.test")
        visitor.get_by_test_id("crm-widget-first").fill("Hello, is anyone there?")
        visitor.get_by_test_id("crm-widget-submit").click()
        visitor.get_by_test_id("crm-widget-message-visitor").first.wait_for()
        assert "Hello, is anyone there?" in visitor.get_by_test_id("crm-widget-log").inner_text()

        # the chat appears on the agent's page (htmx polling) and the agent answers
        page.get_by_test_id("live-chat-item").filter(has_text="Vic Visitor").click()
        page.get_by_test_id("live-message-inbound").filter(has_text="Hello, is anyone there?").wait_for()
        page.get_by_test_id("reply-text").fill("Hi Vic, Ann here. <b>How</b> can I help?")
        page.get_by_test_id("reply-send").click()
        page.get_by_test_id("live-message-outbound").filter(has_text="Ann here").wait_for()

        # the reply reaches the visitor within a few seconds (polling), as text
        reply = visitor.get_by_test_id("crm-widget-message-agent").filter(has_text="Ann here")
        reply.wait_for()
        assert "<b>How</b>" in reply.inner_text()
        visitor.get_by_test_id("crm-widget-input").fill("My parcel is late")
        visitor.get_by_test_id("crm-widget-send").click()
        page.get_by_test_id("live-message-inbound").filter(has_text="My parcel is late").wait_for()

        # the visitor ends the chat; both sides see it ended
        visitor.get_by_test_id("crm-widget-end").click()
        visitor.get_by_test_id("crm-widget-status").filter(has_text="ended").wait_for()
        page.get_by_test_id("chat-ended").wait_for()
        assert visitor_errors == []
    finally:
        visitor_context.close()

    # then the interaction is closed once, for the matched contact, and in the contact's timeline
    closed = ClosedInteraction.objects.get(tenant=tenant)
    contact = Contact.objects.get(tenant=tenant)
    assert contact.emails == ["vic@example.test"]
    assert closed.contact == contact and closed.agent == agent
    assert closed.message_count == 3 and closed.first_message == "Hello, is anyone there?"
    feed = FeedEntry.objects.for_tenant(tenant).filter(contact=contact)
    assert feed.count() == 1 and feed.get().type == "chat"
    # and in the grid the agent sees
    page.goto(f"{live_server.url}/interactions/")
    assert page.get_by_test_id("interaction-row").filter(has_text="Hello, is anyone there?").count() == 1
    try:
        timeline = reverse("crm:contact-timeline", args=[contact.pk])
    except NoReverseMatch:
        timeline = None
    if timeline:
        page.goto(f"{live_server.url}{timeline}")
        assert "Hello, is anyone there?" in page.content() or "Web chat" in page.content()
    assert page.console_errors == []


def test_widget_on_a_page_whose_origin_is_not_allowed_cannot_start_a_chat(browser, live_server, shop_server):
    tenant = TenantFactory(name="Locked Co")
    queue = QueueFactory(tenant=tenant, channel=Channel.WEBCHAT, team=TeamFactory(tenant=tenant))
    widget = services.widget_config_create(
        tenant=tenant, queue=queue, allowed_origins=["https://shop.example"]
    )
    shop = shop_server("<!doctype html><body>{script}</body>")
    shop.script = f'<script src="{live_server.url}/widget/{widget.public_key}.js"></script>'
    context = browser.new_context()
    context.set_default_timeout(15_000)
    visitor = context.new_page()
    try:
        visitor.goto(f"{shop.origin}/shop.html")
        visitor.get_by_test_id("crm-widget-button").click()
        visitor.get_by_test_id("crm-widget-name").fill("Eve")
        visitor.get_by_test_id("crm-widget-email").fill("eve@example.test")
        visitor.get_by_test_id("crm-widget-submit").click()
        visitor.get_by_test_id("crm-widget-error").filter(has_text="Could not").wait_for()
    finally:
        context.close()
    assert not ClosedInteraction.objects.filter(tenant=tenant).exists()
    assert not Contact.objects.filter(tenant=tenant).exists()

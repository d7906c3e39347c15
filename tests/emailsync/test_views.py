"""Mailbox pages, the email viewer and outgoing mail: permissions, isolation, sanitising."""

import pytest
from django.urls import reverse

from activities.models import Activity, ActivityType, Direction
from emailsync.models import Mailbox, OutgoingEmail, SmtpSettings
from tests.conftest import REQUEST_TRANSACTION_QUERIES
from tests.factories import (
    ActivityFactory,
    ContactFactory,
    EmailLocationFactory,
    IncomingEmailFactory,
    MailboxFactory,
)

pytestmark = pytest.mark.django_db


def _email_with_activity(tenant, *, owner, team, body_text="plain body", body_html=""):
    location = EmailLocationFactory(
        tenant=tenant,
        mailbox=MailboxFactory(tenant=tenant, owner=owner),
        email=IncomingEmailFactory(
            tenant=tenant, body_text=body_text, body_html=body_html, subject="Secret deal"
        ),
    )
    email = location.email
    ActivityFactory(
        tenant=tenant,
        type=ActivityType.EMAIL,
        direction=Direction.INBOUND,
        user=owner,
        team=team,
        summary=email.subject,
        dedup_key=f"email:{email.pk}",
        source_id=email.pk,
    )
    return email


def test_mailbox_list_shows_own_mailboxes_with_state_in_fixed_queries(
    client_for, agent_member, tenant, django_assert_num_queries
):
    for i in range(3):
        MailboxFactory(tenant=tenant, owner=agent_member.user, email_address=f"me{i}@acme.test", host=f"h{i}")
    MailboxFactory(tenant=tenant, email_address="someone-else@acme.test")
    client = client_for(agent_member)
    client.get(reverse("emailsync:mailbox-list"))  # warm the session

    # session, user, memberships, mailboxes (+ owners joined)
    with django_assert_num_queries(4 + REQUEST_TRANSACTION_QUERIES):
        response = client.get(reverse("emailsync:mailbox-list"))

    body = response.content.decode()
    assert response.status_code == 200
    assert body.count('data-testid="mailbox-row"') == 3
    assert "someone-else@acme.test" not in body
    assert response["Vary"].count("HX-Request") == 1


def test_add_mailbox_stores_the_secret_encrypted_and_never_shows_it(
    client_for, agent_member, tenant, dovecot
):
    client = client_for(agent_member)
    response = client.post(
        reverse("emailsync:mailbox-add"),
        {
            "email_address": "Me@Acme.test",
            "host": "127.0.0.1",
            "port": dovecot.port,
            "security": "none",
            "username": "me@acme.test",
            "auth_method": "password",
            "secret": "hunter2-secret",
            "folders_text": "INBOX, Sent",
        },
    )

    assert response.status_code == 302
    mailbox = Mailbox.objects.for_tenant(tenant).get()
    assert mailbox.email_address == "me@acme.test"
    assert "hunter2" not in mailbox.secret_encrypted and mailbox.get_secret() == "hunter2-secret"
    page = client.get(reverse("emailsync:mailbox-edit", args=[mailbox.pk])).content.decode()
    assert "hunter2" not in page and mailbox.secret_encrypted not in page


def test_add_mailbox_refuses_private_hosts_unless_allowed(client_for, agent_member, settings):
    """SSRF: a mailbox host resolving to loopback/private/metadata addresses is refused."""
    settings.EMAILSYNC_ALLOW_PRIVATE_HOSTS = False
    client = client_for(agent_member)
    data = {
        "email_address": "me@acme.test",
        "port": 993,
        "security": "tls",
        "username": "me",
        "auth_method": "password",
        "secret": "x",
        "folders_text": "INBOX",
    }
    for host in ("127.0.0.1", "169.254.169.254", "10.1.2.3", "localhost"):
        response = client.post(reverse("emailsync:mailbox-add"), {**data, "host": host})
        assert response.status_code == 200
        assert 'data-testid="error-host"' in response.content.decode(), host
    assert not Mailbox.objects.exists()


def test_add_mailbox_rejects_crlf_in_folder_names_and_missing_secret(client_for, agent_member):
    client = client_for(agent_member)
    response = client.post(
        reverse("emailsync:mailbox-add"),
        {"email_address": "me@acme.test", "host": "127.0.0.1", "port": 143, "security": "none",
         "username": "me", "auth_method": "password", "secret": "", "folders_text": "INBOX\r\nX"},
    )  # fmt: skip
    body = response.content.decode()
    assert 'data-testid="error-folders_text"' in body and 'data-testid="error-secret"' in body
    assert not Mailbox.objects.exists()


def test_test_connection_reports_a_clear_reason(client_for, agent_member, dovecot):
    dovecot.add_user("tester@acme.test", "right-pw")
    client = client_for(agent_member)
    base = {"email_address": "tester@acme.test", "host": "127.0.0.1", "port": dovecot.port,
            "security": "none",
            "username": "tester@acme.test", "auth_method": "password", "folders_text": "INBOX"}  # fmt: skip

    bad = client.post(
        reverse("emailsync:mailbox-test-new"), {**base, "secret": "wrong"}, HTTP_HX_REQUEST="true"
    )

    assert "rejected the login" in bad.content.decode()
    assert "wrong" not in bad.content.decode().replace("rejected", "")


def test_mailbox_urls_are_isolated_per_owner_and_tenant(
    client_for, agent_member, foreign_member, tenant, other_tenant
):
    mine = MailboxFactory(tenant=tenant, owner=agent_member.user)
    colleague = MailboxFactory(tenant=tenant)
    foreign = MailboxFactory(tenant=other_tenant, owner=foreign_member.user)
    client = client_for(agent_member)
    for name, method in [("mailbox-edit", "get"), ("mailbox-test", "post"), ("mailbox-sync", "post"),
                         ("mailbox-status", "get")]:  # fmt: skip
        assert getattr(client, method)(reverse(f"emailsync:{name}", args=[colleague.pk])).status_code == 404
        foreign_response = getattr(client, method)(reverse(f"emailsync:{name}", args=[foreign.pk]))
        missing_response = getattr(client, method)(reverse(f"emailsync:{name}", args=[999999]))
        assert foreign_response.status_code == missing_response.status_code == 404
        assert foreign_response.content == missing_response.content
    assert client.get(reverse("emailsync:mailbox-status", args=[mine.pk])).status_code == 200


def test_email_detail_shows_text_bodies_as_text(client_for, manager_member, tenant, team):
    email = _email_with_activity(
        tenant, owner=manager_member.user, team=team, body_text="<script>alert(1)</script> hello"
    )
    body = client_for(manager_member).get(reverse("emailsync:email-detail", args=[email.pk])).content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; hello" in body
    assert "<script>alert(1)" not in body


def test_agent_without_email_permission_sees_the_limited_form(
    client_for, agent_member, make_member, tenant, team
):
    colleague = make_member(tenant, teams=[team])
    email = _email_with_activity(tenant, owner=colleague.user, team=team, body_html="<p>the body</p>")
    client = client_for(agent_member)

    page = client.get(reverse("emailsync:email-detail", args=[email.pk])).content.decode()

    assert 'data-testid="email-redacted"' in page
    assert "Secret deal" not in page and "the body" not in page
    assert client.get(reverse("emailsync:email-body", args=[email.pk])).status_code == 404


def test_agent_sees_content_of_email_from_own_mailbox(client_for, agent_member, tenant, team):
    email = _email_with_activity(tenant, owner=agent_member.user, team=team, body_text="mine to read")
    page = client_for(agent_member).get(reverse("emailsync:email-detail", args=[email.pk])).content.decode()
    assert "Secret deal" in page and "mine to read" in page


def test_email_of_another_team_is_a_404(client_for, agent_member, make_member, tenant, other_team):
    stranger = make_member(tenant, teams=[other_team])
    email = _email_with_activity(tenant, owner=stranger.user, team=other_team)
    assert client_for(agent_member).get(reverse("emailsync:email-detail", args=[email.pk])).status_code == 404


def test_email_urls_of_another_tenant_are_identical_to_missing(client_for, admin_member, other_tenant):
    foreign = IncomingEmailFactory(tenant=other_tenant, body_html="<p>x</p>")
    client = client_for(admin_member)
    for name in ("email-detail", "email-body"):
        foreign_response = client.get(reverse(f"emailsync:{name}", args=[foreign.pk]))
        missing_response = client.get(reverse(f"emailsync:{name}", args=[999999]))
        assert foreign_response.status_code == missing_response.status_code == 404
        assert foreign_response.content == missing_response.content


def test_html_body_is_sanitised_and_served_with_its_own_csp(client_for, admin_member, tenant, team):
    html = (
        '<p onclick="steal()">Hi <b>there</b></p><script>alert(1)</script>'
        '<img src="https://tracker.example/pixel.gif"><a href="javascript:alert(1)">x</a>'
        '<a href="https://example.com">link</a><iframe src="https://evil"></iframe>'
    )
    email = _email_with_activity(tenant, owner=admin_member.user, team=team, body_html=html)
    client = client_for(admin_member)

    page = client.get(reverse("emailsync:email-detail", args=[email.pk])).content.decode()
    body = client.get(reverse("emailsync:email-body", args=[email.pk]))
    with_images = client.get(reverse("emailsync:email-body", args=[email.pk]) + "?images=1")

    assert '<iframe sandbox="allow-popups allow-popups-to-escape-sandbox"' in page
    assert "Load images" in page
    content = body.content.decode()
    assert "<script" not in content and "onclick" not in content and "javascript:" not in content
    assert "<iframe" not in content and "<b>there</b>" in content
    assert 'rel="noopener noreferrer nofollow"' in content
    csp = body["Content-Security-Policy"]
    assert csp.startswith("default-src 'none'") and "style-src 'unsafe-inline'" in csp
    assert "img-src data:;" in csp  # remote images blocked by default
    assert "img-src https: http:" in with_images["Content-Security-Policy"]
    assert body["X-Frame-Options"] == "SAMEORIGIN"


# --- Outgoing ---------------------------------------------------------------------------------------


@pytest.fixture
def smtp(tenant, smtp_server):
    return SmtpSettings.objects.create(
        tenant=tenant, host=smtp_server.host, port=smtp_server.port, security="none", from_address=""
    )


def test_compose_rejects_header_injection_with_a_clear_error(client_for, manager_member, tenant, team):
    contact = ContactFactory(tenant=tenant, team=team)
    response = client_for(manager_member).post(
        reverse("emailsync:compose", args=[contact.pk]),
        {"to": contact.email, "subject": "Hello\r\nBcc: victim@evil.test", "body": "x", "action": "send"},
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert 'data-testid="error-subject"' in body and "Line breaks are not allowed" in body
    assert not OutgoingEmail.objects.exists()


def test_draft_then_send_delivers_through_smtp_and_logs_an_outbound_activity(
    client_for, manager_member, tenant, team, smtp, smtp_server, django_capture_on_commit_callbacks
):
    contact = ContactFactory(tenant=tenant, team=team, emails=["buyer@customer.test"])
    client = client_for(manager_member)
    response = client.post(
        reverse("emailsync:compose", args=[contact.pk]),
        {"to": "buyer@customer.test", "subject": "Offer", "body": "Draft text", "action": "draft"},
    )
    outgoing = OutgoingEmail.objects.for_tenant(tenant).get()
    assert response.status_code == 302 and outgoing.status == "draft"
    assert not smtp_server.messages

    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("emailsync:outgoing-detail", args=[outgoing.pk]),
            {"to": "buyer@customer.test", "subject": "Offer", "body": "Final text", "action": "send"},
        )

    messages = smtp_server.wait_for(1)
    outgoing.refresh_from_db()
    assert outgoing.status == "sent" and outgoing.sent_at and outgoing.message_id
    assert messages[0].rcpt_tos == ["buyer@customer.test"]
    assert b"Final text" in messages[0].content
    activity = Activity.objects.for_tenant(tenant).get(dedup_key=f"outgoing:{outgoing.pk}")
    assert activity.direction == Direction.OUTBOUND and activity.contact == contact
    assert activity.user == manager_member.user
    # A sent email is no longer editable.
    assert (
        client.post(reverse("emailsync:outgoing-detail", args=[outgoing.pk]), {"action": "draft"}).status_code
        == 403
    )


def test_send_to_an_unreachable_server_retries_then_fails_with_the_reason(tenant, manager_member, settings):
    from emailsync import services
    from tests.plugins.services import free_port

    SmtpSettings.objects.create(tenant=tenant, host="127.0.0.1", port=free_port(), security="none")
    contact = ContactFactory(tenant=tenant)
    outgoing = OutgoingEmail.objects.create(
        tenant=tenant,
        author=manager_member.user,
        contact=contact,
        to=[contact.email],
        subject="s",
        status="queued",
    )

    with pytest.raises(services.SendTransient):
        services.outgoing_deliver(outgoing.pk, max_attempts=2, timeout=2)
    outgoing.refresh_from_db()
    assert outgoing.status == "queued" and "retrying" in outgoing.error
    assert services.outgoing_deliver(outgoing.pk, max_attempts=2, timeout=2) == "failed"
    outgoing.refresh_from_db()
    assert outgoing.status == "failed" and "Could not send" in outgoing.error
    assert not Activity.objects.for_tenant(tenant).exists()


def test_outgoing_urls_are_isolated(
    client_for, agent_member, manager_member, foreign_member, tenant, other_tenant, team
):
    mine = OutgoingEmail.objects.create(tenant=tenant, author=agent_member.user, to=["a@b.test"], subject="m")
    colleagues = OutgoingEmail.objects.create(
        tenant=tenant, author=manager_member.user, to=["a@b.test"], subject="c"
    )
    foreign = OutgoingEmail.objects.create(
        tenant=other_tenant, author=foreign_member.user, to=["a@b.test"], subject="f"
    )
    foreign_contact = ContactFactory(tenant=other_tenant)
    client = client_for(agent_member)

    assert client.get(reverse("emailsync:outgoing-detail", args=[mine.pk])).status_code == 200
    assert client.get(reverse("emailsync:outgoing-detail", args=[colleagues.pk])).status_code == 404
    missing = client.get(reverse("emailsync:outgoing-detail", args=[999999]))
    foreign_response = client.get(reverse("emailsync:outgoing-detail", args=[foreign.pk]))
    assert foreign_response.status_code == missing.status_code == 404
    assert foreign_response.content == missing.content
    compose_foreign = client.get(reverse("emailsync:compose", args=[foreign_contact.pk]))
    compose_missing = client.get(reverse("emailsync:compose", args=[999999]))
    assert compose_foreign.status_code == compose_missing.status_code == 404
    assert compose_foreign.content == compose_missing.content


def test_smtp_settings_are_admin_only_and_store_the_password_encrypted(
    client_for, admin_member, agent_member, tenant
):
    assert client_for(agent_member).get(reverse("emailsync:smtp-settings")).status_code == 403
    client = client_for(admin_member)
    response = client.post(
        reverse("emailsync:smtp-settings"),
        {"host": "127.0.0.1", "port": 2525, "security": "none", "username": "u", "from_address": "",
         "secret": "smtp-pw"},
    )  # fmt: skip
    assert response.status_code == 302
    smtp = SmtpSettings.objects.for_tenant(tenant).get()
    assert smtp.get_secret() == "smtp-pw" and "smtp-pw" not in smtp.secret_encrypted

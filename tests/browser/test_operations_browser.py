"""A tenant admin opens the operations page from the user menu in Chromium, retries a failed email and
syncs a mailbox (htmx), and watches the panel refresh itself; a screenshot is saved to test-artifacts/."""

from pathlib import Path

import pytest

from crm import operations
from crm.models import Role
from emailsync.models import OutgoingEmail
from tests.conftest import PASSWORD
from tests.factories import (
    MailboxFactory,
    MembershipFactory,
    OutgoingEmailFactory,
    SmtpSettingsFactory,
    TeamFactory,
    TenantFactory,
    UserFactory,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def test_admin_watches_sync_and_outbox(page, live_server, browser_login, smtp_server, settings):
    # given an admin, a mailbox whose server refuses connections, a failed email and an SMTP server that
    # works now; another tenant's mailbox is never shown
    settings.OPERATIONS_REFRESH_SECONDS = 2
    operations.clear_worker_cache()
    tenant = TenantFactory(name="Ops Inc")
    team = TeamFactory(tenant=tenant, name="Sales")
    admin = UserFactory(email="admin.ops@example.test", username="admin.ops@example.test")
    MembershipFactory(tenant=tenant, user=admin, role=Role.ADMIN, teams=[team], can_manage_email=True)
    MailboxFactory(tenant=tenant, owner=admin, email_address="admin.ops@example.test", port=9)
    SmtpSettingsFactory(tenant=tenant, host=smtp_server.host, port=smtp_server.port, security="none")
    failed = OutgoingEmailFactory(
        tenant=tenant, author=admin, subject="Quote for Grace", to=["grace@customer.test"], status="failed",
        error="The mail server refused the message (554).",
    )  # fmt: skip
    MailboxFactory(tenant=TenantFactory(), owner=UserFactory(), email_address="spy@other.test")
    browser_login(page, live_server, "admin.ops@example.test", PASSWORD)
    ARTIFACTS.mkdir(exist_ok=True)

    # when the admin opens Operations from the user menu
    page.locator(".navbar .dropdown-toggle").click()
    page.get_by_test_id("nav-operations").click()
    page.wait_for_url("**/settings/operations/")

    # then the mailbox, the failed email and the in-process mode are shown, nothing of the other tenant
    assert "admin.ops@example.test" in page.get_by_test_id("ops-mailboxes").inner_text()
    assert "Quote for Grace" in page.get_by_test_id("ops-failure").inner_text()
    assert page.get_by_test_id("ops-in-process").is_visible()
    assert "spy@other.test" not in page.content()

    # when the admin retries the failed email (htmx): a notice, then the email is sent and the
    # refreshing panel counts it
    page.get_by_test_id("ops-retry").click()
    assert "queued for sending again" in page.get_by_test_id("ops-notice").inner_text()
    smtp_server.wait_for(1)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=ops-sent]')?.textContent.trim() === '1'", timeout=15000
    )
    assert page.get_by_test_id("ops-failure").count() == 0
    assert OutgoingEmail.objects.get(pk=failed.pk).status == "sent"

    # when the admin presses "Sync now": the sync runs (in-process) and fails to connect, which the
    # panel shows
    page.get_by_test_id("ops-sync-now").click()
    assert "queued" in page.get_by_test_id("ops-notice").inner_text()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=ops-mailbox-failures]')?.textContent.trim() === '1'",
        timeout=15000,
    )
    assert "Could not connect" in page.get_by_test_id("ops-mailbox-error").inner_text()
    page.screenshot(path=str(ARTIFACTS / "operations.png"), full_page=True)
    assert not page.console_errors

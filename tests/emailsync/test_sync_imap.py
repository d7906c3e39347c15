"""Sync against a real Dovecot (tests/plugins/services.py). Invariant in every test: each message is
imported exactly once, with one activity when it involves a contact."""

import pytest

from activities.models import Activity, ActivityType, Direction
from emailsync.models import EmailLocation, IncomingEmail

from .conftest import make_raw

pytestmark = [pytest.mark.imap, pytest.mark.django_db]


def test_initial_backfill_imports_each_message_once_with_an_activity(mail_env, customer, tenant):
    """Backfill: every message becomes one incoming_emails row, one location and one activity."""
    env = mail_env()
    for i in range(25):
        env.append(make_raw(subject=f"Quote {i}"))

    result = env.sync()

    assert result.status == "ok", result.error
    assert IncomingEmail.objects.for_tenant(tenant).count() == 25
    assert EmailLocation.objects.for_tenant(tenant).count() == 25
    activities = Activity.objects.for_tenant(tenant).filter(type=ActivityType.EMAIL)
    assert activities.count() == 25
    first = activities.get(summary="Quote 3")
    assert first.contact == customer
    assert first.direction == Direction.INBOUND
    assert first.user == env.mailbox.owner
    assert first.dedup_key == f"email:{first.source_id}"
    env.mailbox.refresh_from_db()
    assert env.mailbox.messages_imported == 25
    assert env.mailbox.last_sync_at is not None

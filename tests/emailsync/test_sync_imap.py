"""Sync against a real Dovecot (tests/plugins/services.py). Invariant in every test: each message is
imported exactly once, with one activity when it involves a contact."""

import subprocess

import pytest
from django.db.models import F
from django.utils import timezone

from activities.models import Activity, ActivityType, Direction
from crm.models import Contact
from emailsync.models import EmailLocation, IncomingEmail, Mailbox, MailboxFolder

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


def _counts(tenant):
    return (
        IncomingEmail.objects.for_tenant(tenant).count(),
        EmailLocation.objects.for_tenant(tenant).count(),
        Activity.objects.for_tenant(tenant).filter(type=ActivityType.EMAIL).count(),
    )


def test_resync_of_an_unchanged_mailbox_adds_nothing_and_costs_one_status_per_folder(
    mail_env, customer, tenant
):
    """An unchanged folder costs one STATUS: no SELECT, SEARCH or FETCH (Chatwoot #14983 re-read a window
    of mail every minute)."""
    env = mail_env()
    for i in range(5):
        env.append(make_raw(subject=f"m{i}"))
    env.sync()
    before = _counts(tenant)

    result = env.sync()

    assert result.status == "ok"
    assert _counts(tenant) == before == (5, 5, 5)
    assert dict(result.commands) == {"STATUS": 2}  # INBOX and Sent


def test_one_new_message_is_imported_once(mail_env, customer, tenant):
    env = mail_env()
    env.append(make_raw(subject="first"))
    env.sync()

    env.append(make_raw(subject="second"))
    result = env.sync()

    assert result.imported == 1
    assert _counts(tenant) == (2, 2, 2)
    assert IncomingEmail.objects.for_tenant(tenant).filter(subject="second").count() == 1


def test_uid_range_trap_does_not_reimport_the_last_message(mail_env, customer, tenant):
    """`UID SEARCH UID n:*` returns the last message even when n is past it (RFC 3501 §6.4.8):
    ushahidi/platform#1509 kept importing the latest email over and over."""
    env = mail_env()
    env.append(make_raw(subject="only"))
    env.sync()
    folder = MailboxFolder.objects.get(mailbox=env.mailbox, name="INBOX")
    with env.imap() as imap:
        imap.select_folder("INBOX", readonly=True)
        raw_hits = imap.search(["UID", f"{folder.last_uid + 1}:*"])
    assert raw_hits == [folder.last_uid]  # the server really does return it

    for _ in range(10):
        # Forget UIDNEXT so every poll runs the search instead of stopping at STATUS.
        MailboxFolder.objects.filter(pk=folder.pk).update(uidnext=None)
        result = env.sync()
        assert result.imported == 0

    assert _counts(tenant) == (1, 1, 1)


def test_cursor_reset_rescans_without_duplicates(mail_env, customer, tenant):
    """The stored position is a cache: losing it costs a re-scan, never a duplicate
    (fazer-ai/chatwoot#487)."""
    env = mail_env()
    for i in range(7):
        env.append(make_raw(subject=f"m{i}"))
    env.append(
        make_raw(subject="sent one", sender="owner@acme.test", to="alice@customer.test"), folder="Sent"
    )
    env.sync()
    before = _counts(tenant)

    MailboxFolder.objects.filter(mailbox=env.mailbox).delete()
    result = env.sync()

    assert result.status == "ok"
    assert result.imported == 0
    assert _counts(tenant) == before == (8, 8, 8)
    assert MailboxFolder.objects.get(mailbox=env.mailbox, name="INBOX").last_uid == 7


def _doveadm(dovecot, *args):
    subprocess.run(
        ["/usr/bin/doveadm", "-c", str(dovecot.conf), *args], check=True, capture_output=True, timeout=30
    )


def test_uidvalidity_change_rescans_without_duplicates(mail_env, customer, tenant, dovecot):
    """A (spurious) UIDVALIDITY change re-scans the folder and records new locations only
    (espocrm/espocrm#3654; frappe/frappe PR #42092 stopped syncing for good after one)."""
    env = mail_env()
    for i in range(4):
        env.append(make_raw(subject=f"m{i}"))
    env.sync()

    _doveadm(dovecot, "mailbox", "update", "-u", env.user, "--uid-validity", "4242", "INBOX")
    env.append(make_raw(subject="after change"))
    result = env.sync()

    assert result.status == "ok", result.error
    assert result.imported == 1
    emails, locations, activities = _counts(tenant)
    assert (emails, activities) == (5, 5)
    assert locations == 4 + 5  # old locations kept, each message recorded again under the new UIDVALIDITY
    folder = MailboxFolder.objects.get(mailbox=env.mailbox, name="INBOX")
    assert folder.uidvalidity == 4242
    assert env.sync().imported == 0


def test_recreated_folder_with_reused_uids_adds_only_new_messages(mail_env, customer, tenant, dovecot):
    """Deleted and recreated folder: UIDs restart at 1 and name different messages
    (paperless-ngx#8939, espocrm/espocrm#3654)."""
    env = mail_env(folders=("INBOX", "Archive"))
    old = [make_raw(subject=f"old {i}") for i in range(3)]
    for raw in old:
        env.append(raw, folder="Archive")
    env.sync()

    dovecot.delete_folder(env.user, env.password, "Archive")
    env.append(make_raw(subject="brand new"), folder="Archive")  # UID 1 again
    env.append(old[0], folder="Archive")
    result = env.sync()

    assert result.status == "ok", result.error
    assert result.imported == 1
    assert IncomingEmail.objects.for_tenant(tenant).filter(subject="brand new").count() == 1
    assert _counts(tenant)[0] == 4
    assert _counts(tenant)[2] == 4


def test_emptied_mailbox_then_new_mail_is_imported(mail_env, customer, tenant, dovecot):
    """After a server-side cleanup the next message must still arrive (espocrm/espocrm#3654)."""
    env = mail_env()
    for i in range(3):
        env.append(make_raw(subject=f"m{i}"))
    env.sync()
    with env.imap() as imap:
        imap.select_folder("INBOX")
        imap.delete_messages(imap.search(["ALL"]))
        imap.expunge()

    env.append(make_raw(subject="after cleanup"))
    assert env.sync().imported == 1
    assert _counts(tenant) == (4, 4, 4)


def test_same_message_in_two_folders_is_one_email_with_two_locations(mail_env, customer, tenant):
    """Moving/copying mail between folders must not duplicate it (nylas/sync-engine#182,
    YetiForceCRM#2246 for INBOX + All Mail)."""
    env = mail_env(folders=("INBOX", "Archive"))
    env.append(make_raw(subject="in both"))
    with env.imap() as imap:
        imap.select_folder("INBOX")
        imap.copy(imap.search(["ALL"]), "Archive")

    env.sync()

    email = IncomingEmail.objects.for_tenant(tenant).get()
    assert sorted(email.locations.values_list("folder", flat=True)) == ["Archive", "INBOX"]
    assert _counts(tenant) == (1, 2, 1)


def test_same_message_in_two_users_mailboxes_is_one_email_and_one_activity(
    mail_env, customer, tenant, team, make_member
):
    """One message delivered to two colleagues is one email and one activity (SuiteCRM#10813)."""
    bob = make_member(tenant, teams=[team], username="bob@acme.test")
    alice_env, bob_env = mail_env(), mail_env(member=bob)
    raw = make_raw(subject="to both", to="owner@acme.test, bob@acme.test")
    alice_env.append(raw)
    bob_env.append(raw)

    alice_env.sync()
    bob_env.sync()

    email = IncomingEmail.objects.for_tenant(tenant).get()
    assert {loc.mailbox_id for loc in email.locations.all()} == {alice_env.mailbox.pk, bob_env.mailbox.pk}
    assert _counts(tenant) == (1, 2, 1)


def test_messages_without_message_id_are_imported_once_and_not_merged(mail_env, customer, tenant):
    """No Message-ID: keyed by a hash of the raw bytes, stable across re-scans (chatwoot skipped such
    mail entirely; iTop #253's From|Subject|Date hash merged two different messages)."""
    env = mail_env()
    when = timezone.now()
    env.append(make_raw(subject="same", message_id=None, body="first body", date=when))
    env.append(make_raw(subject="same", message_id=None, body="second body", date=when))
    env.sync()
    MailboxFolder.objects.filter(mailbox=env.mailbox).delete()  # cursor reset

    env.sync()

    keys = list(IncomingEmail.objects.for_tenant(tenant).values_list("message_key", flat=True))
    assert len(keys) == 2 and all(k.startswith("sha:") for k in keys)
    assert _counts(tenant) == (2, 2, 2)


def test_malformed_messages_are_stored_raw_and_do_not_block_later_ones(mail_env, customer, tenant):
    """One bad message must not stop the mail after it (zammad#2754 "unknown token", #1877 MIME of
    death, #345 GB2312, #2722 RFC 2231 filename, #6141 malformed Content-Type)."""
    env = mail_env()
    corpus = [
        b"From: alice@customer.test\r\nSubject: =?utf-8?B?broken-base64\r\nContent-Type: text/plain; "
        b"charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n@@@not base64@@@\r\n",
        b"From: alice@customer.test\r\nSubject: bad charset\r\nContent-Type: text/plain; charset=x-unknown-8"
        b"\r\n\r\n\xff\xfe\xfa raw bytes\r\n",
        b"From: alice@customer.test\r\nSubject: gb2312\r\nContent-Type: text/plain; charset=gb2312\r\n\r\n"
        b"\xb0\xa1\xff\xff\r\n",
        b"From: alice@customer.test\r\nSubject: no boundary\r\nContent-Type: multipart/mixed\r\n\r\nbody\r\n",
        b"From: alice@customer.test\r\nSubject: bad ctype\r\nContent-Type: ;;;===\r\n\r\n"
        b"body\x00with nul\r\n",
        b"From: alice@customer.test\r\nSubject: rfc2231\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; "
        b"filename*=us-ascii''t%F6st.txt\r\n\r\nx\r\n--b--\r\n",
        b"From: alice@customer.test\r\nSubject: deep\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n"
        + b"".join(b"--a\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n" for _ in range(300)),
        b"\x00\x01\x02 this is not an email at all",
    ]
    for raw in corpus:
        env.append(raw)
    env.append(make_raw(subject="good one after the bad ones"))

    result = env.sync()

    assert result.status == "ok", result.error
    rows = IncomingEmail.objects.for_tenant(tenant)
    assert rows.count() == len(corpus) + 1
    assert rows.filter(subject="good one after the bad ones", parse_status="ok").exists()
    assert all(bytes(r.raw) for r in rows)
    assert rows.exclude(parse_status="ok").exists()
    assert env.sync().imported == 0


def test_oversized_message_is_stored_truncated_and_not_refetched(mail_env, customer, tenant, settings):
    """Huge mail is recorded headers-only once, not re-fetched every poll (chatwoot/chatwoot#5081)."""
    settings.EMAILSYNC_MAX_MESSAGE_BYTES = 2000
    env = mail_env()
    env.append(make_raw(subject="huge", body="x" * 10_000 + "\n"))
    env.append(make_raw(subject="small"))

    env.sync()
    MailboxFolder.objects.filter(mailbox=env.mailbox).update(uidnext=None)
    second = env.sync()

    huge = IncomingEmail.objects.for_tenant(tenant).get(subject="huge")
    assert huge.parse_status == "truncated"
    assert huge.raw_size > 10_000 and len(bytes(huge.raw)) < 2000
    assert second.imported == 0
    assert _counts(tenant) == (2, 2, 2)


def test_deleted_activity_is_not_resurrected_by_a_resync(mail_env, customer, tenant):
    """Deleting the email activity in the CRM sticks, even after a full re-scan (chatwoot#12054/#10503)."""
    env = mail_env()
    env.append(make_raw(subject="delete me"))
    env.sync()
    Activity.objects.for_tenant(tenant).update(deleted_at=timezone.now())

    MailboxFolder.objects.filter(mailbox=env.mailbox).delete()
    env.sync()

    assert Activity.objects.for_tenant(tenant).alive().count() == 0
    assert Activity.objects.for_tenant(tenant).count() == 1


def test_contact_matching_rules(mail_env, tenant, team, make_member):
    """Case-insensitive match on the sender; colleague-only mail not logged; unknown senders are not
    turned into contacts; Sent-folder mail matches the recipients as outbound."""
    from tests.factories import ContactFactory

    colleague = make_member(tenant, teams=[team], username="carol@acme.test")
    customer = ContactFactory(tenant=tenant, name="Alice", emails=["alice@customer.test"])
    env = mail_env()
    env.append(make_raw(subject="shouting", sender="ALICE <Alice@Customer.TEST>"))
    env.append(make_raw(subject="internal", sender=f"Carol <{colleague.user.email}>"))
    env.append(make_raw(subject="stranger", sender="nobody@unknown.test"))
    env.append(
        make_raw(subject="my reply", sender="owner@acme.test", to="Alice <ALICE@customer.test>"),
        folder="Sent",
    )

    env.sync()

    assert IncomingEmail.objects.for_tenant(tenant).count() == 4  # every message is stored
    logged = {a.summary: a for a in Activity.objects.for_tenant(tenant)}
    assert set(logged) == {"shouting", "my reply"}
    assert logged["shouting"].contact == customer and logged["shouting"].direction == Direction.INBOUND
    assert logged["my reply"].contact == customer and logged["my reply"].direction == Direction.OUTBOUND
    assert logged["shouting"].team == team
    assert not Contact.objects.for_tenant(tenant).filter(emails__contains=["nobody@unknown.test"]).exists()


def test_unknown_sender_becomes_a_contact_when_the_mailbox_says_so(mail_env, tenant):
    env = mail_env(create_contacts=True)
    env.append(make_raw(subject="hello", sender="New Person <New.Person@Unknown.test>"))

    env.sync()

    contact = Contact.objects.for_tenant(tenant).get(emails__contains=["new.person@unknown.test"])
    assert contact.name == "New Person"
    assert Activity.objects.for_tenant(tenant).get().contact == contact


def test_wrong_password_needs_attention_after_three_attempts_then_resumes(mail_env, customer, tenant):
    """Auth errors stop retrying after a few attempts and show the mailbox as needing attention;
    fixing the password resumes with nothing lost (reference §4.8 #22)."""
    from emailsync import services

    env = mail_env()
    env.append(make_raw(subject="waiting"))
    env.mailbox.set_secret("wrong-password")
    env.mailbox.save()

    statuses = []
    for _ in range(3):
        result = env.sync()
        env.mailbox.refresh_from_db()
        statuses.append((result.status, env.mailbox.status))
    assert statuses == [("auth_error", "error"), ("auth_error", "error"), ("auth_error", "needs_attention")]
    assert env.mailbox.next_sync_at is None
    assert "rejected the login" in env.mailbox.last_error
    assert "wrong-password" not in env.mailbox.last_error

    services.mailbox_update(mailbox=env.mailbox, actor=env.mailbox.owner, secret=env.password)
    result = env.sync()

    env.mailbox.refresh_from_db()
    assert result.status == "ok" and env.mailbox.status == "active" and env.mailbox.last_error == ""
    assert _counts(tenant) == (1, 1, 1)


def test_server_down_backs_off_with_growing_intervals_then_imports_once(mail_env, customer, tenant, dovecot):
    """Server down for a while: transient errors back off (growing, capped), then everything arrives
    exactly once (chatwoot #6574: the gap after an outage was never filled)."""
    env = mail_env()
    env.append(make_raw(subject="before outage"))
    dovecot.stop()
    try:
        delays = []
        for _ in range(3):
            started = timezone.now()
            result = env.sync()
            env.mailbox.refresh_from_db()
            assert result.status == "error"
            delays.append((env.mailbox.next_sync_at - started).total_seconds())
    finally:
        dovecot.start()
    assert delays[0] < delays[1] < delays[2] <= 3600 + 5
    assert "Could not connect" in env.mailbox.last_error

    env.append(make_raw(subject="after outage"))
    result = env.sync()

    env.mailbox.refresh_from_db()
    assert result.status == "ok" and env.mailbox.failure_count == 0
    assert _counts(tenant) == (2, 2, 2)


def test_backlog_larger_than_one_run_continues_until_done(mail_env, customer, tenant, settings):
    """Per-run cap with continuation: a backlog is never abandoned (chatwoot #6574, #10429)."""
    settings.EMAILSYNC_BATCH_SIZE = 4
    env = mail_env()
    for i in range(11):
        env.append(make_raw(subject=f"m{i}"))

    first = env.sync(max_messages=5)
    assert first.more and first.imported == 5
    env.mailbox.refresh_from_db()
    assert env.mailbox.next_sync_at <= timezone.now()  # due again at once

    assert env.sync_all(max_messages=5) == 6
    assert _counts(tenant) == (11, 11, 11)


def test_a_worker_that_lost_its_lease_cannot_advance_the_cursor(mail_env, customer, tenant, settings):
    """Fencing: once another worker took the lease, the stale worker's batch rolls back
    (chatwoot's unowned Redis unlock let two jobs run)."""
    settings.EMAILSYNC_BATCH_SIZE = 2
    env = mail_env()
    for i in range(6):
        env.append(make_raw(subject=f"m{i}"))

    def steal(_chunk):
        Mailbox.objects.filter(pk=env.mailbox.pk).update(
            lease_until=timezone.now(), lease_token=F("lease_token") + 1
        )

    result = env.sync(batch_hook=steal)

    assert result.status == "lease_lost"
    # The first batch committed before the steal; nothing after it.
    assert IncomingEmail.objects.for_tenant(tenant).count() == 2
    assert MailboxFolder.objects.get(mailbox=env.mailbox, name="INBOX").last_uid == 2
    env.mailbox.refresh_from_db()
    Mailbox.objects.filter(pk=env.mailbox.pk).update(lease_until=None)
    assert env.sync_all() == 4
    assert _counts(tenant) == (6, 6, 6)


def test_sync_never_sets_flags_on_the_server(mail_env, customer):
    """Read-only: BODY.PEEK and EXAMINE leave \\Seen unset (Odoo/Frappe relied on \\Seen and lost mail)."""
    env = mail_env()
    env.append(make_raw(subject="unread"))

    env.sync()

    with env.imap() as imap:
        imap.select_folder("INBOX", readonly=True)
        flags = imap.get_flags(imap.search(["ALL"]))
    assert all(b"\\Seen" not in f for f in flags.values())

"""Helpers for the email tests: a fresh Dovecot user per test and a mailbox pointing at it."""

import itertools
import os
import time
import uuid
from email.utils import format_datetime

import pytest
from django.utils import timezone

from crm.models import Role
from emailsync import services
from tests.factories import ContactFactory, MailboxFactory

_counter = itertools.count(1)


def make_raw(
    *,
    subject="Hello",
    sender="Alice Customer <alice@customer.test>",
    to="owner@acme.test",
    message_id: str | None = "auto",
    body="Hi there,\nthis is a message.\n",
    extra_headers: str = "",
    date=None,
) -> bytes:
    if message_id == "auto":
        message_id = f"<{uuid.uuid4().hex}@customer.test>"
    date = date or timezone.now()
    headers = [
        f"From: {sender}",
        f"To: {to}",
        f"Subject: {subject}",
        f"Date: {format_datetime(date)}",
    ]
    if message_id is not None:
        headers.append(f"Message-ID: {message_id}")
    headers.append("MIME-Version: 1.0")
    headers.append("Content-Type: text/plain; charset=utf-8")
    text = "\r\n".join(headers) + "\r\n" + extra_headers + "\r\n" + body.replace("\n", "\r\n")
    return text.encode()


def _wait_until_login_works(dovecot, user, password, timeout=10.0):
    """Dovecot notices a rewritten passwd-file by its mtime (1 s resolution): two users added within
    the same second can leave the second one unknown for a moment."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            dovecot.client(user, password).logout()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.25)
            # Touch the file with a new mtime so Dovecot re-reads it.
            os.utime(dovecot.passwd, None)


class MailEnv:
    """One Dovecot user + one Mailbox of `member` in `tenant`."""

    def __init__(self, dovecot, tenant, member, *, folders=("INBOX", "Sent"), **mailbox_kwargs):
        self.dovecot = dovecot
        self.user = f"u{next(_counter)}-{uuid.uuid4().hex[:6]}@acme.test"
        self.password = "imap-pw-1"
        dovecot.add_user(self.user, self.password)
        _wait_until_login_works(dovecot, self.user, self.password)
        for folder in folders:
            if folder != "INBOX":
                dovecot.create_folder(self.user, self.password, folder)
        self.mailbox = MailboxFactory(
            tenant=tenant,
            owner=member.user,
            email_address=member.user.email,
            host=dovecot.host,
            port=dovecot.port,
            security="none",
            username=self.user,
            folders=list(folders),
            **mailbox_kwargs,
        )
        self.mailbox.set_secret(self.password)
        self.mailbox.save()

    def append(self, raw: bytes, folder="INBOX") -> int | None:
        return self.dovecot.append(self.user, self.password, folder, raw)

    def sync(self, **kwargs) -> services.SyncResult:
        return services.sync_mailbox(self.mailbox.pk, **kwargs)

    def sync_all(self, **kwargs) -> int:
        total = 0
        for _ in range(100):
            result = self.sync(**kwargs)
            total += result.imported
            if not result.more:
                return total
        raise AssertionError("sync never finished")

    def imap(self):
        return self.dovecot.client(self.user, self.password)


@pytest.fixture
def owner(tenant, team, make_member):
    return make_member(tenant, Role.AGENT, teams=[team], email=True, username="owner@acme.test")


@pytest.fixture
def customer(tenant):
    return ContactFactory(tenant=tenant, name="Alice Customer", emails=["alice@customer.test"])


@pytest.fixture
def mail_env(dovecot, tenant, owner):
    def _make(member=None, **kwargs):
        return MailEnv(dovecot, tenant, member or owner, **kwargs)

    return _make

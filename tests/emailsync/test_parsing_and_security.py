"""Pure tests: dedup keys, parsing, host validation, XOAUTH2 login path, secret rotation."""

from unittest import mock

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command

from emailsync import client as imap_client
from emailsync import parsing
from emailsync.models import Mailbox, SmtpSettings
from tests.factories import MailboxFactory


@pytest.mark.parametrize(
    "header",
    ["<abc.123@host.test>", "abc.123@host.test", "  <abc.123@host.test>  ", "\r\n <abc.123@host.test>\r\n",
     "<abc.123@host.test> (comment)"],
)  # fmt: skip
def test_message_id_variants_give_one_key(header):
    """Brackets, folding and spaces must not change the key (espocrm/espocrm#1516 re-downloaded all
    Gmail mail after its Message-ID normalisation changed)."""
    assert parsing.message_key_for(header, b"raw") == "mid:abc.123@host.test"


def test_message_id_case_is_kept_and_missing_id_hashes_the_raw_bytes():
    assert parsing.message_key_for("<ABC@host>", b"") != parsing.message_key_for("<abc@host>", b"")
    first = parsing.message_key_for("", b"one")
    assert first.startswith("sha:") and first == parsing.message_key_for("", b"one")
    assert first != parsing.message_key_for("", b"two")


def test_very_long_message_id_is_hashed_to_fit():
    key = parsing.message_key_for("<" + "x" * 2000 + "@h>", b"")
    assert key.startswith("midh:") and len(key) <= 300


def test_parse_decodes_encoded_headers_and_lowercases_addresses():
    raw = (
        b"From: =?utf-8?q?J=C3=BCrgen?= <Juergen@Example.TEST>\r\nTo: A <a@x.test>, b@Y.test\r\n"
        b"Cc: c@z.test\r\nSubject: =?iso-8859-1?q?Gr=FC=DFe?=\r\nDate: Tue, 3 Jun 2025 10:00:00 +0200\r\n"
        b"Message-ID: <m1@x>\r\nIn-Reply-To: <m0@x>\r\n"
        b"Content-Type: text/plain; charset=iso-8859-1\r\n\r\nHallo \xe4\r\n"
    )
    p = parsing.parse_message(raw)
    assert (p.sender_name, p.sender) == ("Jürgen", "juergen@example.test")
    assert p.recipients == ["a@x.test", "b@y.test", "c@z.test"]
    assert p.subject == "Grüße" and p.in_reply_to == "<m0@x>"
    assert p.snippet == "Hallo ä" and p.parse_status == "ok"
    assert p.date.utcoffset().total_seconds() == 7200


def test_parse_html_only_message_makes_a_text_snippet():
    raw = b"Subject: h\r\nContent-Type: text/html\r\n\r\n"
    raw += b"<html><style>p{}</style><p>Hello &amp; <b>bye</b></p></html>"
    p = parsing.parse_message(raw)
    assert p.snippet == "Hello & bye" and "<p>" in p.body_html


def test_garbage_is_marked_failed_but_keeps_a_key():
    p = parsing.parse_message(b"\x00\x01 not an email")
    assert p.parse_status == "failed" and p.message_key.startswith("sha:")


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "10.0.0.5", "192.168.1.1", "172.16.0.1", "169.254.169.254", "100.64.0.1", "::1",
                "fe80::1", "::ffff:127.0.0.1", "0.0.0.0"],  # noqa: S104
)  # fmt: skip
def test_private_and_metadata_addresses_are_refused(address, settings):
    settings.EMAILSYNC_ALLOW_PRIVATE_HOSTS = False
    fake = [(None, None, None, "", (address, 993))]
    with mock.patch("socket.getaddrinfo", return_value=fake), pytest.raises(imap_client.HostNotAllowed):
        imap_client.validate_host("mail.example.test", 993)


def test_public_address_passes_and_the_setting_allows_loopback(settings):
    settings.EMAILSYNC_ALLOW_PRIVATE_HOSTS = False
    with mock.patch("socket.getaddrinfo", return_value=[(None, None, None, "", ("93.184.216.34", 993))]):
        imap_client.validate_host("mail.example.test", 993)
    settings.EMAILSYNC_ALLOW_PRIVATE_HOSTS = True
    imap_client.validate_host("127.0.0.1", 993)


def test_xoauth2_mailboxes_log_in_with_oauth2_login():
    """Token acquisition from Google/Microsoft cannot be exercised here; this pins the login call
    path at the IMAPClient boundary (a mock server would prove nothing more)."""
    fake = mock.MagicMock()
    with (
        mock.patch.object(imap_client, "IMAPClient", return_value=fake),
        mock.patch.object(imap_client, "validate_host"),
    ):
        conn = imap_client.ImapConnection.open(
            host="imap.gmail.com", port=993, security="tls", username="u@gmail.test", secret="ya29.token",
            auth_method="xoauth2",
        )  # fmt: skip
    fake.oauth2_login.assert_called_once_with("u@gmail.test", "ya29.token")
    fake.login.assert_not_called()
    conn.close()


def test_xoauth2_rejection_is_an_auth_error():
    from imapclient.exceptions import LoginError

    fake = mock.MagicMock()
    fake.oauth2_login.side_effect = LoginError("[AUTHENTICATIONFAILED] Invalid credentials (Failure)")
    with (
        mock.patch.object(imap_client, "IMAPClient", return_value=fake),
        mock.patch.object(imap_client, "validate_host"),
        pytest.raises(imap_client.AuthError, match="rejected the login"),
    ):
        imap_client.ImapConnection.open(
            host="imap.gmail.com", port=993, security="tls", username="u", secret="t", auth_method="xoauth2"
        )


@pytest.mark.django_db
def test_rotate_encryption_keys_reencrypts_with_the_newest_key(settings, tenant):
    old_key = settings.FIELD_ENCRYPTION_KEYS[0]
    mailbox = MailboxFactory(tenant=tenant)
    mailbox.set_secret("imap-secret")
    mailbox.save()
    smtp = SmtpSettings(tenant=tenant, host="smtp.example.test")
    smtp.set_secret("smtp-secret")
    smtp.save()
    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, old_key]

    call_command("rotate_encryption_keys")

    settings.FIELD_ENCRYPTION_KEYS = [new_key]  # the old key can now be dropped
    assert Mailbox.objects.get(pk=mailbox.pk).get_secret() == "imap-secret"
    assert SmtpSettings.objects.get(pk=smtp.pk).get_secret() == "smtp-secret"

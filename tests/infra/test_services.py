"""The test harness itself: real Dovecot, Celery worker, SMTP sink and Chromium."""

import smtplib
import subprocess
import uuid
from email.message import EmailMessage

import pytest
from imapclient import IMAPClient

from tests.plugins.services import free_port


def _raw_message(subject: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Alice <alice@example.com>"
    msg["To"] = "bob@example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@example.com>"
    msg.set_content("Hello from the harness.\n")
    return msg.as_bytes()


def test_free_port_is_bindable():
    import socket

    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


@pytest.mark.imap
def test_dovecot_login_append_fetch(dovecot):
    dovecot.add_user("alice@example.com", "s3cret")
    uid = dovecot.append("alice@example.com", "s3cret", "INBOX", _raw_message("first"), flags=[r"\Seen"])
    dovecot.create_folder("alice@example.com", "s3cret", "Archive/2024")

    with IMAPClient(dovecot.host, port=dovecot.port, ssl=False, timeout=10) as client:
        client.login("alice@example.com", "s3cret")
        assert client.folder_exists("Archive/2024")
        info = client.select_folder("INBOX", readonly=True)
        assert info[b"EXISTS"] == 1
        uids = client.search("ALL")
        assert uids == [uid] or uid is None
        fetched = client.fetch(uids, ["RFC822", "FLAGS"])[uids[0]]
        assert b"Subject: first" in fetched[b"RFC822"]
        assert rb"\Seen" in fetched[b"FLAGS"]

    dovecot.delete_folder("alice@example.com", "s3cret", "Archive/2024")
    with dovecot.client("alice@example.com") as client:
        assert not client.folder_exists("Archive/2024")


@pytest.mark.imap
def test_dovecot_rejects_wrong_password(dovecot):
    from imapclient.exceptions import LoginError

    dovecot.add_user("carol@example.com", "right")
    with pytest.raises(LoginError), dovecot.client("carol@example.com", "wrong"):
        pass


@pytest.mark.imap
def test_dovecot_login_and_mail_processes_are_not_root(dovecot):
    dovecot.add_user("dave@example.com", "pw")
    prefix = f"dovecot-crm-test-{dovecot.port}/"
    # A connection that has not logged in yet keeps its imap-login process alive; one that has, an imap.
    with (
        IMAPClient(dovecot.host, port=dovecot.port, ssl=False, timeout=10),
        dovecot.client("dave@example.com"),
    ):
        ps = subprocess.run(["ps", "-eo", "user:32,args"], capture_output=True, text=True, check=True).stdout
    procs = [line.split(None, 1) for line in ps.splitlines() if prefix in line]
    by_name = {args.strip().removeprefix(prefix).split()[0]: user for user, args in procs}
    assert "imap-login" in by_name, ps
    assert "imap" in by_name, ps
    assert by_name["imap-login"] != "root"
    assert by_name["imap"] != "root"


@pytest.mark.imap
def test_dovecot_stop_and_start_on_the_same_port(dovecot):
    dovecot.add_user("erin@example.com", "pw")
    port = dovecot.port
    dovecot.stop()
    with pytest.raises(OSError):
        IMAPClient(dovecot.host, port=port, ssl=False, timeout=2)
    dovecot.start()
    assert dovecot.port == port
    with dovecot.client("erin@example.com") as client:
        client.select_folder("INBOX")


@pytest.mark.celery
@pytest.mark.django_db(transaction=True)
def test_celery_worker_runs_a_task(celery_real):
    from crm.tasks import ping

    result = ping.delay()
    celery_real.wait_for_log(rf"Task crm\.tasks\.ping\[{result.id}\] succeeded in [0-9.]+s: 'pong'")


def test_tasks_are_eager_by_default():
    from crm.tasks import ping

    assert ping.delay().get(timeout=5) == "pong"


def test_smtp_server_receives_mail(smtp_server):
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as smtp:
        smtp.sendmail("a@example.com", ["b@example.com"], _raw_message("via smtp"))
    (envelope,) = smtp_server.wait_for(1)
    assert envelope.mail_from == "a@example.com"
    assert envelope.rcpt_tos == ["b@example.com"]
    assert b"Subject: via smtp" in envelope.content


def test_django_send_mail_through_smtp_server(smtp_server, settings):
    from django.core.mail import send_mail

    smtp_server.use_for_django(settings)
    send_mail("hello", "body", "from@example.com", ["to@example.com"])
    (envelope,) = smtp_server.wait_for(1)
    assert envelope.rcpt_tos == ["to@example.com"]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_login_page_renders_a_form(page, live_server):
    page.goto(f"{live_server.url}/login/")
    form = page.locator("form:has(input[name='password'])")
    assert form.count() == 1
    assert form.locator("input[name='username']").count() == 1
    assert form.locator("[type='submit']").count() >= 1
    assert page.console_errors == []

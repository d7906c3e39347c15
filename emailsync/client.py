"""A thin, read-only IMAP adapter over IMAPClient with explicit connect/read timeouts.

Only what sync needs; every call is read-only (``STATUS``, ``EXAMINE`` via ``select_folder(readonly=True)``,
``UID SEARCH``, ``UID FETCH ... BODY.PEEK[...]``): nothing is ever flagged, moved or deleted on the user's
server. Errors are translated into three classes the sync service acts on: :class:`AuthError` (stop
after a few attempts), :class:`TransientError` (back off and retry) and :class:`FolderMissing`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import ssl
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime

from django.conf import settings
from imapclient import IMAPClient, SocketTimeout
from imapclient import exceptions as imap_exc

CONNECT_TIMEOUT = 15.0
READ_TIMEOUT = 60.0

# Cloud metadata endpoints not covered by the generic ranges below.
_METADATA = {ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")}
_SHARED = ipaddress.ip_network("100.64.0.0/10")


class SyncError(Exception):
    """Base class; ``str(exc)`` is shown to the user, so it is written in words and holds no secret."""


class AuthError(SyncError):
    pass


class TransientError(SyncError):
    pass


class FolderMissing(SyncError):
    pass


class HostNotAllowed(SyncError):
    pass


def _forbidden(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or ip in _METADATA
        or (isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED)
    )


def validate_host(host: str, port: int) -> None:
    """Refuse hosts that resolve to loopback, private, link-local or metadata addresses (SSRF).

    ``settings.EMAILSYNC_ALLOW_PRIVATE_HOSTS`` lifts the rule (tests, a local Dovecot). Checked when a
    mailbox is saved and again right before every connection.
    """
    host = (host or "").strip()
    if not host:
        raise HostNotAllowed("Enter the mail server's host name.")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TransientError(f"The host name {host!r} could not be resolved.") from exc
    if getattr(settings, "EMAILSYNC_ALLOW_PRIVATE_HOSTS", False):
        return
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if _forbidden(ip):
            raise HostNotAllowed(
                f"{host} resolves to {ip}, a loopback, private, link-local or metadata address; "
                "only public mail servers can be connected."
            )


@dataclass
class FolderStatus:
    uidvalidity: int
    uidnext: int
    messages: int


class ImapConnection:
    """One logged-in connection. Use as a context manager; ``commands`` counts the IMAP commands sent."""

    def __init__(self, client: IMAPClient):
        self.client = client
        self.client.normalise_times = False
        self.commands: Counter = Counter()
        self.selected: str | None = None

    # -- lifecycle --
    @classmethod
    def open(
        cls,
        *,
        host: str,
        port: int,
        security: str,
        username: str,
        secret: str,
        auth_method: str = "password",
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
    ) -> ImapConnection:
        validate_host(host, port)
        timeout = SocketTimeout(connect=connect_timeout, read=read_timeout)
        context = ssl.create_default_context()
        try:
            client = IMAPClient(host, port=port, ssl=security == "tls", ssl_context=context, timeout=timeout)
            if security == "starttls":
                client.starttls(context)
        except (OSError, imap_exc.IMAPClientError, ssl.SSLError) as exc:
            raise TransientError(f"Could not connect to {host}:{port}: {_reason(exc)}") from exc
        conn = cls(client)
        conn.login(username=username, secret=secret, auth_method=auth_method)
        return conn

    def login(self, *, username: str, secret: str, auth_method: str) -> None:
        try:
            if auth_method == "xoauth2":
                self.client.oauth2_login(username, secret)
            else:
                self.client.login(username, secret)
        except imap_exc.LoginError as exc:
            self.close()
            raise AuthError(f"The server rejected the login for {username}: {_reason(exc)}") from exc
        except (OSError, imap_exc.IMAPClientError) as exc:
            self.close()
            raise TransientError(f"Connection lost while logging in: {_reason(exc)}") from exc

    def close(self) -> None:
        try:
            self.client.logout()
        except Exception:  # noqa: BLE001 - best effort on a possibly dead socket
            with contextlib.suppress(Exception):
                self.client.shutdown()

    def __enter__(self) -> ImapConnection:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- read-only commands --
    def _call(self, name: str, fn, *args, **kwargs):
        self.commands[name] += 1
        try:
            return fn(*args, **kwargs)
        except imap_exc.IMAPClientAbortError as exc:
            raise TransientError(f"The server closed the connection: {_reason(exc)}") from exc
        except (OSError, ssl.SSLError) as exc:
            raise TransientError(f"Connection problem: {_reason(exc)}") from exc

    def folder_status(self, folder: str) -> FolderStatus:
        try:
            data = self._call(
                "STATUS", self.client.folder_status, folder, [b"UIDVALIDITY", b"UIDNEXT", b"MESSAGES"]
            )
        except imap_exc.IMAPClientError as exc:
            if isinstance(exc, imap_exc.IMAPClientAbortError):
                raise TransientError(_reason(exc)) from exc
            raise FolderMissing(f"Folder {folder!r} does not exist on the server.") from exc
        return FolderStatus(
            uidvalidity=int(data[b"UIDVALIDITY"]),
            uidnext=int(data[b"UIDNEXT"]),
            messages=int(data[b"MESSAGES"]),
        )

    def examine(self, folder: str) -> FolderStatus:
        """SELECT the folder read-only (EXAMINE); its UIDVALIDITY/UIDNEXT as the server sees them now."""
        try:
            data = self._call("EXAMINE", self.client.select_folder, folder, readonly=True)
        except imap_exc.IMAPClientError as exc:
            if isinstance(exc, imap_exc.IMAPClientAbortError):
                raise TransientError(_reason(exc)) from exc
            raise FolderMissing(f"Folder {folder!r} does not exist on the server.") from exc
        self.selected = folder
        return FolderStatus(
            uidvalidity=int(data.get(b"UIDVALIDITY", 0)),
            uidnext=int(data.get(b"UIDNEXT", 0) or 0),
            messages=int(data.get(b"EXISTS", 0)),
        )

    def uids_after(self, last_uid: int, since: date | None = None) -> list[int]:
        """UIDs greater than ``last_uid`` (ascending), optionally only mail received since a date.

        ``UID SEARCH UID n:*`` always includes the last message even when n is past it (RFC 3501
        §6.4.8; ushahidi/platform#1509), so the result is filtered client-side.
        """
        criteria: list = ["UID", f"{last_uid + 1}:*"]
        if since is not None:
            criteria += ["SINCE", since]
        uids = self._search(criteria)
        return sorted(uid for uid in uids if uid > last_uid)

    def _search(self, criteria):
        try:
            return self._call("SEARCH", self.client.search, criteria)
        except imap_exc.IMAPClientError as exc:
            raise TransientError(f"Search failed: {_reason(exc)}") from exc

    def fetch_meta(self, uids: list[int]) -> dict[int, dict]:
        """Size, INTERNALDATE and Message-ID header of each UID (cheap; decides what bodies to fetch)."""
        if not uids:
            return {}
        data = self._fetch(uids, [b"RFC822.SIZE", b"INTERNALDATE", b"BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
        out = {}
        for uid, item in data.items():
            header = item.get(b"BODY[HEADER.FIELDS (MESSAGE-ID)]") or b""
            out[uid] = {
                "size": int(item.get(b"RFC822.SIZE") or 0),
                "internaldate": item.get(b"INTERNALDATE"),
                "message_id_header": header,
            }
        return out

    def fetch_bodies(self, uids: list[int]) -> dict[int, bytes]:
        if not uids:
            return {}
        data = self._fetch(uids, [b"BODY.PEEK[]"])
        return {uid: item.get(b"BODY[]") or b"" for uid, item in data.items()}

    def fetch_headers(self, uids: list[int]) -> dict[int, bytes]:
        if not uids:
            return {}
        data = self._fetch(uids, [b"BODY.PEEK[HEADER]"])
        return {uid: item.get(b"BODY[HEADER]") or b"" for uid, item in data.items()}

    def _fetch(self, uids: list[int], items: list[bytes]) -> dict:
        # Explicit UID lists only: IMAPClient 4.x rejects "1:*" in fetch (see email_sync.md §5).
        try:
            return self._call("FETCH", self.client.fetch, uids, items)
        except imap_exc.IMAPClientError as exc:
            raise TransientError(f"Fetch failed: {_reason(exc)}") from exc


def internaldate(value) -> datetime | None:
    return value if isinstance(value, datetime) else None


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return text.strip()[:300]

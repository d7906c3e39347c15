"""Turning raw RFC 822 bytes into what we store. Pure functions, no database, no network.

Parsing never raises: a message that cannot be understood still yields a row (``parse_status``
failed / partial) with its raw bytes, so it never blocks the messages after it (Zammad #2754, #1877).

We parse with the ``compat32`` policy and decode headers ourselves: ``policy.default`` is about
20x slower and parsing is the bottleneck of a backfill (see docs/reference/email_sync.md §3).
"""

from __future__ import annotations

import email
import hashlib
import html
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime

# Frozen: changing this function changes dedup keys and re-imports everything (EspoCRM #1516).
_MSGID_RE = re.compile(r"<([^<>\s]+)>")
MAX_KEY_LENGTH = 290
SNIPPET_LENGTH = 280
MAX_BODY_CHARS = 1_000_000
_WS_RE = re.compile(r"\s+")
_TAG_RE = re.compile(r"<(script|style)[^>]*>.*?</\1\s*>|<[^>]+>", re.IGNORECASE | re.DOTALL)


def normalize_message_id(value: str | None) -> str:
    """``<abc@host>`` -> ``abc@host``: unfolded, first ``<...>`` token, brackets and spaces stripped.

    Case is kept (the local part is case-sensitive). Returns "" when there is no usable id.
    """
    if not value:
        return ""
    unfolded = _WS_RE.sub(" ", str(value)).strip()
    match = _MSGID_RE.search(unfolded)
    token = match.group(1) if match else unfolded.strip("<> ")
    if not token or " " in token:
        return ""
    return token


def message_key_for(message_id: str, raw: bytes) -> str:
    """The dedup key of a message within a tenant: normalised Message-ID, else a hash of the raw bytes.

    Raw bytes are identical across folders (COPY/MOVE) and re-fetches, so the hash is stable; two
    different messages never collide (unlike a From|Subject|Date hash, iTop #253).
    """
    normalized = normalize_message_id(message_id)
    if normalized:
        if len(normalized) <= MAX_KEY_LENGTH:
            return f"mid:{normalized}"
        return "midh:" + hashlib.sha256(normalized.encode("utf-8", "surrogateescape")).hexdigest()
    return "sha:" + hashlib.sha256(raw).hexdigest()


def decode_header_value(value) -> str:
    """RFC 2047-decoded header text; undecodable bytes are replaced, never raised."""
    if value is None:
        return ""
    try:
        text = str(make_header(decode_header(str(value))))
    except Exception:  # noqa: BLE001 - bad charsets / broken encoded words: keep the raw text
        text = str(value)
    text = text.replace("\x00", "")
    return _WS_RE.sub(" ", text).strip()


def _addresses(values: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for name, addr in getaddresses([decode_header_value(v) for v in values if v]):
        addr = addr.strip().strip("<>").lower()
        if "@" not in addr or len(addr) > 254:
            continue
        pairs.append((name.strip()[:200], addr))
    return pairs


def _decode_part(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if payload is None:
        payload = part.get_payload()
        return payload if isinstance(payload, str) else ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except (LookupError, TypeError):
        return payload.decode("utf-8", errors="replace")


def html_to_text(markup: str) -> str:
    return _WS_RE.sub(" ", html.unescape(_TAG_RE.sub(" ", markup))).strip()


@dataclass
class ParsedEmail:
    message_key: str
    message_id: str = ""
    in_reply_to: str = ""
    references: str = ""
    subject: str = ""
    sender: str = ""
    sender_name: str = ""
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    date: datetime | None = None
    body_text: str = ""
    body_html: str = ""
    snippet: str = ""
    parse_status: str = "ok"
    parse_error: str = ""

    @property
    def recipients(self) -> list[str]:
        seen: dict[str, None] = {}
        for addr in self.to + self.cc:
            seen.setdefault(addr, None)
        return list(seen)

    @property
    def addresses(self) -> set[str]:
        return {a for a in [self.sender, *self.to, *self.cc] if a}


def _clean(text: str, limit: int) -> str:
    return text.replace("\x00", "")[:limit]


def parse_message(raw: bytes, *, truncated: bool = False) -> ParsedEmail:
    """Parse raw bytes (or only the header block when ``truncated``) into a :class:`ParsedEmail`."""
    try:
        msg = email.message_from_bytes(raw)
    except Exception as exc:  # noqa: BLE001 - anything: store raw, mark failed
        return ParsedEmail(
            message_key=message_key_for("", raw),
            parse_status="failed",
            parse_error=f"unparseable: {exc}"[:500],
        )
    errors: list[str] = []
    try:
        message_id = _clean(decode_header_value(msg.get("Message-ID")), 998)
    except Exception:  # noqa: BLE001
        message_id = ""
    parsed = ParsedEmail(message_key=message_key_for(message_id, raw), message_id=message_id)
    try:
        parsed.in_reply_to = _clean(decode_header_value(msg.get("In-Reply-To")), 998)
        parsed.references = _clean(decode_header_value(msg.get("References")), 20_000)
        parsed.subject = _clean(decode_header_value(msg.get("Subject")), 998)
        senders = _addresses(msg.get_all("From") or []) or _addresses(msg.get_all("Sender") or [])
        if senders:
            parsed.sender_name, parsed.sender = senders[0]
        parsed.to = [a for _, a in _addresses(msg.get_all("To") or [])]
        parsed.cc = [a for _, a in _addresses(msg.get_all("Cc") or [])]
        date_header = msg.get("Date")
        if date_header:
            try:
                parsed.date = parsedate_to_datetime(str(date_header))
                if parsed.date.tzinfo is None:
                    parsed.date = parsed.date.replace(tzinfo=UTC)
            except (TypeError, ValueError, IndexError, OverflowError):
                errors.append("bad Date header")
    except Exception as exc:  # noqa: BLE001
        errors.append(f"headers: {exc}")
    if msg.defects:
        errors.append("; ".join(type(d).__name__ for d in msg.defects[:5]))
    if not truncated:
        try:
            text_parts: list[str] = []
            html_parts: list[str] = []
            for part in msg.walk():
                if part.is_multipart():
                    continue
                disposition = (part.get("Content-Disposition") or "").lower()
                if disposition.startswith("attachment"):
                    continue
                ctype = part.get_content_type()
                if ctype == "text/plain":
                    text_parts.append(_decode_part(part))
                elif ctype == "text/html":
                    html_parts.append(_decode_part(part))
                if part.defects:
                    errors.append("; ".join(type(d).__name__ for d in part.defects[:3]))
            parsed.body_text = _clean("\n".join(text_parts), MAX_BODY_CHARS)
            parsed.body_html = _clean("\n".join(html_parts), MAX_BODY_CHARS)
        except RecursionError:
            errors.append("MIME structure nested too deeply")
        except Exception as exc:  # noqa: BLE001
            errors.append(f"body: {exc}")
    snippet_source = parsed.body_text or html_to_text(parsed.body_html[:20_000])
    parsed.snippet = _WS_RE.sub(" ", snippet_source).strip()[:SNIPPET_LENGTH]
    if not msg.keys():
        parsed.parse_status = "failed"
        parsed.parse_error = "; ".join(["no headers found: stored raw", *errors])[:2000]
    elif truncated:
        parsed.parse_status = "truncated"
        parsed.parse_error = "; ".join(["message too large: headers only", *errors])[:2000]
    elif errors:
        parsed.parse_status = "partial"
        parsed.parse_error = "; ".join(errors)[:2000]
    return parsed

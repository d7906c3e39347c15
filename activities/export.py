"""CSV export of the grid's current rows: same filters, same visibility and redaction, streamed.

Rows are read in keyset batches (a fresh indexed seek per batch: no OFFSET and no server-side cursor
held open, which Django would declare WITH HOLD and materialise), names are fetched per batch, and
the CSV is written per batch, so memory stays flat however many rows match.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator

from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.utils import timezone

from crm import visibility
from crm.models import Account, Contact, Lead, Membership

from .models import ActivitySource, ActivityType, Direction
from .presentation import emails_seen_by, entity_names
from .selectors import feed_iter_batches
from .tables import EXPORT_HEADER

BATCH = 5000
FIELDS = [
    "id",
    "kind",
    "occurred_at",
    "type",
    "direction",
    "source",
    "agent_id",
    "contact_id",
    "lead_id",
    "account_id",
    "summary",
    "first_message",
    "source_id",
]
# A cell a spreadsheet would run as a formula: first significant character = + - @ (or tab / CR),
# also after leading spaces or control characters (OWASP "CSV injection").
_FORMULA = re.compile(r"^[\s\x00-\x1f]*[=+\-@]|^[\t\r]")

TYPE_LABELS = dict(ActivityType.choices)
DIRECTION_LABELS = dict(Direction.choices)
SOURCE_LABELS = dict(ActivitySource.choices)


_RISKY_FIRST = frozenset("=+-@ \x7f") | frozenset(chr(c) for c in range(32))


def neutralise(value: str) -> str:
    """Prefix an apostrophe to text a spreadsheet would evaluate as a formula."""
    if value and value[0] in _RISKY_FIRST and _FORMULA.match(value):
        return "'" + value
    return value


def csv_rows(qs: QuerySet, *, membership: Membership, descending: bool = True) -> Iterator[str]:
    """Yield the CSV text (header first), one chunk per batch of rows."""
    buffer = io.StringIO()
    out = csv.writer(buffer)
    out.writerow(EXPORT_HEADER)
    yield buffer.getvalue()
    agents = {
        u.pk: (u.get_full_name() or u.email or u.username)
        for u in get_user_model().objects.filter(memberships__tenant_id=membership.tenant_id)
    }
    content_ok = membership.is_admin or membership.can_manage_email
    tz = timezone.get_current_timezone()
    for rows in feed_iter_batches(qs, fields=FIELDS, descending=descending, batch=BATCH):
        tenant_id = membership.tenant_id
        contacts = entity_names(Contact, {r[7] for r in rows if r[7]}, tenant_id=tenant_id)
        leads = entity_names(Lead, {r[8] for r in rows if r[8]}, tenant_id=tenant_id)
        accounts = entity_names(Account, {r[9] for r in rows if r[9]}, tenant_id=tenant_id)
        seen: set[int] = set()
        if not content_ok:
            seen = emails_seen_by(
                membership=membership,
                email_ids={r[12] for r in rows if r[3] == ActivityType.EMAIL and r[12]},
            )
        buffer.seek(0)
        buffer.truncate()
        lines = []
        for pk, kind, when, typ, direction, source, agent_id, c, ld, a, summary, first, src in rows:
            redacted = (
                not content_ok
                and typ == ActivityType.EMAIL
                and not visibility.can_see_email_content(
                    membership, agent_id=agent_id, participant=src in seen
                )
            )
            lines.append(
                [
                    pk,
                    kind,
                    when.astimezone(tz).isoformat(),
                    TYPE_LABELS.get(typ, typ),
                    DIRECTION_LABELS.get(direction, direction),
                    SOURCE_LABELS.get(source, source),
                    neutralise(agents.get(agent_id, "")),
                    neutralise(contacts.get(c, "")),
                    neutralise(leads.get(ld, "")),
                    neutralise(accounts.get(a, "")),
                    "" if redacted else neutralise(summary or ""),
                    "" if redacted else neutralise(first or ""),
                ]
            )
        out.writerows(lines)
        yield buffer.getvalue()

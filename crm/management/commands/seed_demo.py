"""Load the demo tenants (Acme, Globex). Idempotent: a tenant that already exists is left as it is."""

import random
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from activities.models import Activity, ActivitySource, ActivityType, Direction
from contactcenter.models import (
    CHANNEL_ACTIVITY_TYPE,
    Channel,
    ClosedInteraction,
    Interaction,
    InteractionMessage,
    InteractionStatus,
    MessageKind,
    Queue,
    Ticket,
    TicketStatus,
)
from crm import rls
from crm.models import Account, Contact, ContactStatus, Lead, LeadStatus, Membership, Role, Team, Tenant
from emailsync.models import EmailLocation, IncomingEmail, Mailbox, MailboxStatus, ParseStatus

DEMO_PASSWORD = "demo"  # noqa: S105 - documented demo credential, refused in production

FIRST = (
    "Ada Alan Grace Linus Barbara Ken Margaret Dennis Radia Edsger Frances John Hedy Tim "
    "Sophie Guido Anita Niklaus Katherine Donald"
).split()
LAST = (
    "Lovelace Turing Hopper Torvalds Liskov Thompson Hamilton Ritchie Perlman Dijkstra "
    "Allen Backus Lamarr Berners-Lee Wilson Rossum Borg Wirth Johnson Knuth"
).split()
COMPANIES = (
    "Initech Umbrella Hooli Vandelay Stark Wayne Tyrell Cyberdyne Soylent Wonka Oscorp "
    "Aperture Gringotts Monarch Dunder Pied Prestige Sterling Massive Blue"
).split()
SUFFIX = ["Inc", "Ltd", "GmbH", "Group", "Labs", "Systems", "Partners", "Holdings"]
TOPICS = [
    "pricing for the enterprise plan",
    "renewal of the annual contract",
    "onboarding call follow-up",
    "invoice question",
    "integration with their ERP",
    "demo of the reporting module",
    "data export request",
    "security questionnaire",
    "upgrade to premium support",
    "feedback on the latest release",
    "quote for 50 extra seats",
    "migration from a legacy CRM",
    "training session scheduling",
    "bug report about CSV import",
    "discount negotiation",
    "procurement paperwork",
    "SSO configuration",
]
CHAT_LINES_IN = [
    "Hi, I have a question about my invoice.",
    "Can you help me reset my password?",
    "We'd like to add more users to our account.",
    "The export seems to be stuck.",
    "Is there a discount for annual billing?",
    "Thanks, that worked!",
    "When will the new feature ship?",
]
CHAT_LINES_OUT = [
    "Happy to help! Let me look that up.",
    "I've sent you a reset link.",
    "Sure, how many seats do you need?",
    "I've restarted the export for you.",
    "Yes, annual billing is 15% off.",
    "Great, anything else?",
    "It's planned for next month's release.",
]


class Command(BaseCommand):
    help = "Load demo tenants, users and a year of activity. Running it twice adds nothing."

    def add_arguments(self, parser):
        parser.add_argument("--scale", type=float, default=1.0, help="Multiply the amount of generated rows.")
        parser.add_argument("--seed", type=int, default=42)

    @rls.operator_command
    def handle(self, *args, scale: float, seed: int, **options):
        if settings.PRODUCTION:
            raise CommandError("Refusing to load demo data with DJANGO_ENV=production.")
        if scale <= 0:
            raise CommandError("--scale must be positive.")
        specs = [
            ("Acme", "acme.test", seed),
            ("Globex", "globex.test", seed + 1),
        ]
        for name, domain, tenant_seed in specs:
            if Tenant.objects.filter(name=name).exists():
                self.stdout.write(f"{name}: already loaded, nothing added.")
                continue
            with transaction.atomic():
                rng = random.Random(tenant_seed)  # nosec B311  # reproducible demo data, not a secret
                builder = DemoBuilder(name, domain, rng, scale)
                counts = builder.build()
            summary = ", ".join(f"{v} {k}" for k, v in counts.items())
            self.stdout.write(
                self.style.SUCCESS(f"{name}: loaded {summary}; website chat widget key {builder.widget_key}")
            )
        self.stdout.write(
            "Logins (password 'demo'): admin@acme.test (admin), manager@acme.test (manager), "
            "agent@acme.test (agent, no email permission), admin@globex.test (admin)"
        )


class DemoBuilder:
    def __init__(self, name: str, domain: str, rng: random.Random, scale: float):
        self.name, self.domain, self.rng, self.scale = name, domain, rng, scale
        self.now = timezone.now()
        self.counts: dict[str, int] = {}

    def n(self, base: int) -> int:
        return max(1, int(base * self.scale))

    def when(self) -> "timezone.datetime":
        # Skewed towards recent days, spread over the last year.
        days = min(365, int(self.rng.expovariate(1 / 90)))
        return self.now - timedelta(days=days, seconds=self.rng.randint(0, 86_399))

    def person(self) -> str:
        return f"{self.rng.choice(FIRST)} {self.rng.choice(LAST)}"

    def build(self) -> dict[str, int]:
        rng = self.rng
        tenant = Tenant.objects.create(name=self.name)
        self.tenant = tenant
        teams = [Team.objects.create(tenant=tenant, name=n) for n in ("Sales", "Support", "Success")]
        self.teams = teams
        user_model = get_user_model()

        def member(
            local: str, first: str, last: str, role: str, team_list, email_perm: bool, staff: bool = False
        ):
            email = f"{local}@{self.domain}"
            user = user_model.objects.filter(username=email).first()
            if user is None:
                user = user_model(
                    username=email, email=email, first_name=first, last_name=last, is_staff=staff
                )
                user.set_password(DEMO_PASSWORD)
                user.save()
            membership = Membership.objects.create(
                tenant=tenant, user=user, role=role, can_manage_email=email_perm
            )
            membership.teams.set(team_list)
            return user

        admin = member("admin", "Alice", "Admin", Role.ADMIN, teams, True, staff=True)
        users = [admin]
        if self.name == "Acme":
            users.append(member("manager", "Max", "Manager", Role.MANAGER, [teams[0]], True))
            users.append(member("agent", "Aggie", "Agent", Role.AGENT, [teams[0]], False))
        users.append(member("sam", "Sam", "Support", Role.AGENT, [teams[1]], True))
        users.append(member("sue", "Sue", "Success", Role.AGENT, [teams[2]], False))
        users.append(member("sean", "Sean", "Sales", Role.AGENT, [teams[0]], False))
        agents = users[1:]
        self.counts["users"] = len(users)
        team_of = {u.pk: Membership.objects.get(tenant=tenant, user=u).teams.first() for u in agents}

        accounts = Account.objects.bulk_create(
            [
                Account(
                    tenant=tenant,
                    name=f"{c} {rng.choice(SUFFIX)}" + (f" {i}" if i >= len(COMPANIES) else ""),
                    domain=f"{c.lower()}{i}.example",
                    owner=rng.choice(agents),
                    team=rng.choice(teams),
                )
                for i, c in enumerate(rng.choice(COMPANIES) for _ in range(self.n(80)))
            ]
        )
        contacts = []
        for i in range(self.n(300)):
            name = self.person()
            account = rng.choice(accounts) if rng.random() < 0.8 else None
            owner = rng.choice(agents)
            local = name.lower().replace(" ", ".").replace("-", "")
            domain = account.domain if account else "mail.example"
            contacts.append(
                Contact(
                    tenant=tenant,
                    name=name,
                    emails=[f"{local}{i}@{domain}"],
                    phones=[f"+1555{rng.randint(1000000, 9999999)}"],
                    owner=owner,
                    team=team_of[owner.pk],
                    account=account,
                    status=rng.choice(ContactStatus.values),
                )
            )
        contacts = Contact.objects.bulk_create(contacts)
        leads = []
        for i in range(self.n(150)):
            owner = rng.choice(agents)
            name = self.person()
            leads.append(
                Lead(
                    tenant=tenant,
                    name=name,
                    email=f"{name.lower().replace(' ', '.')}{i}@prospect.example",
                    phone=f"+1666{rng.randint(1000000, 9999999)}",
                    company=f"{rng.choice(COMPANIES)} {rng.choice(SUFFIX)}",
                    status=rng.choice([s for s in LeadStatus.values if s != LeadStatus.CONVERTED]),
                    owner=owner,
                    team=team_of[owner.pk],
                )
            )
        leads = Lead.objects.bulk_create(leads)
        self.counts.update(accounts=len(accounts), contacts=len(contacts), leads=len(leads))

        self._activities(agents, team_of, contacts, leads, accounts)
        self._interactions(agents, team_of, contacts)
        self._widget()
        self._emails(users, agents, team_of, contacts)
        self._conversions(admin, leads, team_of)
        return self.counts

    def _activities(self, agents, team_of, contacts, leads, accounts):
        rng = self.rng
        rows = []
        kinds = [
            (ActivityType.CALL, ActivitySource.MANUAL),
            (ActivityType.NOTE, ActivitySource.MANUAL),
            (ActivityType.MEETING, ActivitySource.MANUAL),
            (ActivityType.TASK, ActivitySource.MANUAL),
            (ActivityType.SMS, ActivitySource.EXTERNAL),
            (ActivityType.WHATSAPP, ActivitySource.EXTERNAL),
            (ActivityType.EMAIL, ActivitySource.CAMPAIGN),
            (ActivityType.CALL, ActivitySource.EXTERNAL),
        ]
        # A few heavy contacts, most with a handful of rows.
        heavy = contacts[:5]
        for _ in range(self.n(4000)):
            agent = rng.choice(agents)
            atype, source = rng.choice(kinds)
            contact = rng.choice(heavy) if rng.random() < 0.2 else rng.choice(contacts)
            lead = rng.choice(leads) if rng.random() < 0.1 else None
            direction = (
                rng.choice([Direction.INBOUND, Direction.OUTBOUND])
                if atype in (ActivityType.CALL, ActivityType.SMS, ActivityType.WHATSAPP, ActivityType.EMAIL)
                else Direction.NONE
            )
            if source == ActivitySource.CAMPAIGN:
                direction = Direction.OUTBOUND
            topic = rng.choice(TOPICS)
            occurred = self.when()
            rows.append(
                Activity(
                    tenant=self.tenant,
                    team=team_of[agent.pk],
                    user=agent,
                    contact=contact,
                    lead=lead,
                    account=contact.account,
                    type=atype,
                    source=source,
                    direction=direction,
                    summary=f"{atype.label} about {topic}",
                    body=f"Discussed {topic} with {contact.name}.",
                    duration_seconds=rng.randint(60, 3600)
                    if atype in (ActivityType.CALL, ActivityType.MEETING)
                    else None,
                    due_at=occurred + timedelta(days=3) if atype == ActivityType.TASK else None,
                    done=atype == ActivityType.TASK and rng.random() < 0.5,
                    occurred_at=occurred,
                    created_by=agent,
                )
            )
        Activity.objects.bulk_create(rows, batch_size=2000)
        self.counts["activities"] = len(rows)

    def _interactions(self, agents, team_of, contacts):
        rng = self.rng
        queues = {
            ch: Queue.objects.create(
                tenant=self.tenant, name=f"{ch.label} queue", channel=ch, team=rng.choice(self.teams)
            )
            for ch in (Channel.VOICE, Channel.SMS, Channel.WHATSAPP, Channel.WEBCHAT)
        }
        ci_type = ContentType.objects.get_for_model(ClosedInteraction)
        closed_rows, message_rows, activity_rows, tickets = [], [], [], []
        interactions = []
        plans = []
        for i in range(self.n(600)):
            channel = rng.choice(list(queues))
            agent = rng.choice(agents)
            contact = rng.choice(contacts)
            started = self.when()
            n_messages = rng.randint(2, 14) if channel != Channel.VOICE else rng.randint(0, 3)
            interactions.append(
                Interaction(
                    tenant=self.tenant,
                    external_id=f"demo-{i}",
                    queue=queues[channel],
                    channel=channel,
                    agent=agent,
                    team=team_of[agent.pk],
                    contact=contact,
                    account=contact.account,
                    direction=rng.choice([Direction.INBOUND, Direction.OUTBOUND]),
                    status=InteractionStatus.CLOSED,
                    started_at=started,
                    last_event_at=started,
                )
            )
            plans.append(n_messages)
        interactions = Interaction.objects.bulk_create(interactions)
        for interaction, n_messages in zip(interactions, plans, strict=True):
            t = interaction.started_at
            first = ""
            for j in range(n_messages):
                inbound = j % 2 == 0
                text = rng.choice(CHAT_LINES_IN if inbound else CHAT_LINES_OUT)
                first = first or text
                t += timedelta(seconds=rng.randint(5, 600))
                message_rows.append(
                    InteractionMessage(
                        tenant=self.tenant,
                        interaction=interaction,
                        external_id=f"{interaction.external_id}-m{j}",
                        direction=Direction.INBOUND if inbound else Direction.OUTBOUND,
                        author_name=interaction.contact.name
                        if inbound
                        else interaction.agent.get_full_name(),
                        author_user=None if inbound else interaction.agent,
                        text=text,
                        sent_at=t,
                    )
                )
            if n_messages > 4 and rng.random() < 0.3:
                message_rows.append(
                    InteractionMessage(
                        tenant=self.tenant,
                        interaction=interaction,
                        kind=MessageKind.SYSTEM,
                        direction=Direction.NONE,
                        text="Transferred to Support",
                        sent_at=t + timedelta(seconds=1),
                    )
                )
            closed_at = t + timedelta(seconds=rng.randint(30, 900))
            logged = rng.random() < 0.5  # half recent (activity logged on close), half imported history
            closed_rows.append(
                ClosedInteraction(
                    tenant=self.tenant,
                    interaction=interaction,
                    queue=interaction.queue,
                    channel=interaction.channel,
                    type=CHANNEL_ACTIVITY_TYPE[interaction.channel],
                    agent=interaction.agent,
                    team=interaction.team,
                    contact=interaction.contact,
                    account=interaction.account,
                    direction=interaction.direction,
                    summary=f"{Channel(interaction.channel).label} with {interaction.contact.name}",
                    first_message=first,
                    message_count=n_messages,
                    started_at=interaction.started_at,
                    closed_at=closed_at,
                    duration_seconds=int((closed_at - interaction.started_at).total_seconds()),
                    activity_logged=logged,
                )
            )
        InteractionMessage.objects.bulk_create(message_rows, batch_size=2000)
        closed_rows = ClosedInteraction.objects.bulk_create(closed_rows)
        for ci in closed_rows:
            if ci.activity_logged:
                activity_rows.append(
                    Activity(
                        tenant=self.tenant,
                        team=ci.team,
                        user=ci.agent,
                        contact=ci.contact,
                        account=ci.account,
                        type=ci.type,
                        source=ActivitySource.INTERACTION,
                        direction=ci.direction,
                        summary=ci.summary,
                        first_message=ci.first_message,
                        source_type=ci_type,
                        source_id=ci.pk,
                        dedup_key=f"interaction:{ci.pk}",
                        duration_seconds=ci.duration_seconds,
                        occurred_at=ci.started_at,
                    )
                )
            if self.rng.random() < 0.15:
                tickets.append((ci, self.rng.choice(TOPICS)))
        Activity.objects.bulk_create(activity_rows)
        ticket_type = ContentType.objects.get_for_model(Ticket)
        ticket_objs = Ticket.objects.bulk_create(
            [
                Ticket(
                    tenant=self.tenant,
                    subject=f"Ticket: {topic}",
                    status=self.rng.choice(TicketStatus.values),
                    contact=ci.contact,
                    interaction=ci.interaction,
                    assignee=ci.agent,
                    team=ci.team,
                    created_by=ci.agent,
                )
                for ci, topic in tickets
            ]
        )
        Activity.objects.bulk_create(
            [
                Activity(
                    tenant=self.tenant,
                    team=t.team,
                    user=t.assignee,
                    contact=t.contact,
                    account=t.contact.account if t.contact else None,
                    type=ActivityType.TICKET,
                    source=ActivitySource.INTERACTION,
                    summary=f"Ticket created: {t.subject}",
                    source_type=ticket_type,
                    source_id=t.pk,
                    dedup_key=f"ticket:{t.pk}:created",
                    occurred_at=ci.closed_at,
                )
                for t, (ci, _) in zip(ticket_objs, tickets, strict=True)
            ]
        )
        self.counts.update(
            closed_interactions=len(closed_rows), messages=len(message_rows), tickets=len(ticket_objs)
        )

    def _widget(self):
        """A website chat widget on the web chat queue, allowed on the local demo origins."""
        from contactcenter import services as contactcenter_services

        queue = Queue.objects.for_tenant(self.tenant).get(channel=Channel.WEBCHAT)
        widget = contactcenter_services.widget_config_create(
            tenant=self.tenant,
            queue=queue,
            allowed_origins=["http://127.0.0.1:8000", "http://localhost:8000"],
        )
        self.widget_key = widget.public_key

    def _emails(self, users, agents, team_of, contacts):
        rng = self.rng
        owner = users[1] if len(users) > 1 else users[0]
        mailbox = Mailbox(
            tenant=self.tenant,
            owner=owner,
            team=team_of.get(owner.pk),
            email_address=owner.email,
            host="imap.example.invalid",
            port=993,
            username=owner.email,
            status=MailboxStatus.DISABLED,
            last_error="Demo mailbox: no server behind it.",
        )
        mailbox.set_secret("demo-not-a-real-password")
        mailbox.save()
        email_type = ContentType.objects.get_for_model(IncomingEmail)
        emails, plans = [], []
        for i in range(self.n(400)):
            contact = rng.choice(contacts)
            inbound = rng.random() < 0.6
            topic = rng.choice(TOPICS)
            received = self.when()
            message_id = f"<demo-{self.tenant.slug}-{i}@{self.tenant.slug}.test>"
            subject = f"{'Re: ' if rng.random() < 0.4 else ''}{topic.capitalize()}"
            body = f"Hello,\n\nFollowing up on {topic}.\n\nBest regards"
            raw = (
                f"Message-ID: {message_id}\r\nSubject: {subject}\r\n"
                f"From: {contact.email if inbound else owner.email}\r\n"
                f"To: {owner.email if inbound else contact.email}\r\n"
                f"\r\n{body}\r\n"
            ).encode()
            emails.append(
                IncomingEmail(
                    tenant=self.tenant,
                    message_key=message_id.strip("<>").lower(),
                    message_id=message_id,
                    subject=subject,
                    sender=contact.email if inbound else owner.email,
                    sender_name=contact.name if inbound else owner.get_full_name(),
                    recipients=[owner.email if inbound else contact.email],
                    snippet=body[:200].replace("\n", " "),
                    body_text=body,
                    received_at=received,
                    raw_size=len(raw),
                    raw=raw,
                    parse_status=ParseStatus.OK,
                )
            )
            plans.append((contact, inbound))
        emails = IncomingEmail.objects.bulk_create(emails)
        EmailLocation.objects.bulk_create(
            [
                EmailLocation(
                    tenant=self.tenant,
                    email=e,
                    mailbox=mailbox,
                    folder="INBOX" if inbound else "Sent",
                    uidvalidity=1,
                    uid=i + 1,
                )
                for i, (e, (_, inbound)) in enumerate(zip(emails, plans, strict=True))
            ]
        )
        Activity.objects.bulk_create(
            [
                Activity(
                    tenant=self.tenant,
                    team=team_of.get(owner.pk),
                    user=owner,
                    contact=contact,
                    account=contact.account,
                    type=ActivityType.EMAIL,
                    source=ActivitySource.INTERACTION,
                    direction=Direction.INBOUND if inbound else Direction.OUTBOUND,
                    summary=e.subject,
                    first_message=e.snippet,
                    source_type=email_type,
                    source_id=e.pk,
                    dedup_key=f"email:{e.pk}",
                    occurred_at=e.received_at,
                )
                for e, (contact, inbound) in zip(emails, plans, strict=True)
            ]
        )
        mailbox.messages_imported = len(emails)
        mailbox.save(update_fields=["messages_imported"])
        self.counts["emails"] = len(emails)

    def _conversions(self, admin, leads, team_of):
        """Convert a few leads the way the product does: contact created, lead marked, two activities."""
        converted = 0
        for lead in leads[: max(1, len(leads) // 20)]:
            contact = Contact.objects.create(
                tenant=self.tenant,
                name=lead.name,
                emails=[lead.email.lower()] if lead.email else [],
                phones=[lead.phone] if lead.phone else [],
                owner=lead.owner,
                team=lead.team,
                status=ContactStatus.CUSTOMER,
            )
            when = self.now - timedelta(days=self.rng.randint(1, 30))
            lead.converted_contact = contact
            lead.converted_at = when
            lead.converted_by = admin
            lead.status = LeadStatus.CONVERTED
            lead.save(update_fields=["converted_contact", "converted_at", "converted_by", "status"])
            for target in ("contact", "lead"):
                Activity.objects.create(
                    tenant=self.tenant,
                    team=lead.team,
                    user=admin,
                    contact=contact,
                    lead=lead,
                    type=ActivityType.LEAD_CONVERSION,
                    source=ActivitySource.MANUAL,
                    summary=f"Lead {lead.name} converted to contact",
                    dedup_key=f"lead_conversion:{lead.pk}:{target}",
                    occurred_at=when,
                    created_by=admin,
                    changes={"side": target},
                )
            converted += 1
        self.counts["converted_leads"] = converted

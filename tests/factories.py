"""factory_boy factories. Related objects always share the tenant of the object being built."""

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from activities.models import Activity, ActivitySource, ActivityType, Direction
from contactcenter.models import Channel, ClosedInteraction, Interaction, InteractionMessage, Queue, Ticket
from crm import crypto
from crm.models import Account, Contact, Lead, Membership, Role, Team, Tenant
from emailsync.models import EmailLocation, IncomingEmail, Mailbox

SAME_TENANT = factory.SelfAttribute("..tenant")


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant

    name = factory.Sequence(lambda n: f"Tenant {n}")
    slug = factory.Sequence(lambda n: f"tenant-{n}")


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Team {n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}@example.test")
    email = factory.SelfAttribute("username")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    password = factory.django.Password("pw-for-tests-1")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership
        skip_postgeneration_save = True

    tenant = factory.SubFactory(TenantFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.AGENT
    can_manage_email = False

    @factory.post_generation
    def teams(self, create, extracted, **kwargs):
        if create and extracted:
            self.teams.set(extracted)


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Account {n}")
    domain = factory.Sequence(lambda n: f"account{n}.example")


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Faker("name")
    emails = factory.Sequence(lambda n: [f"contact{n}@example.test"])
    phones = factory.Sequence(lambda n: [f"+1555{n:07d}"])


class LeadFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Lead

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Faker("name")
    email = factory.Sequence(lambda n: f"lead{n}@prospect.test")
    company = factory.Faker("company")


class ActivityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Activity

    tenant = factory.SubFactory(TenantFactory)
    type = ActivityType.NOTE
    source = ActivitySource.MANUAL
    direction = Direction.NONE
    summary = factory.Sequence(lambda n: f"Activity {n}")
    occurred_at = factory.LazyFunction(timezone.now)


class QueueFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Queue

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Queue {n}")
    channel = Channel.WEBCHAT


class InteractionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Interaction

    tenant = factory.SubFactory(TenantFactory)
    external_id = factory.Sequence(lambda n: f"ext-{n}")
    queue = factory.SubFactory(QueueFactory, tenant=SAME_TENANT)
    channel = factory.SelfAttribute("queue.channel")
    started_at = factory.LazyFunction(timezone.now)


class ClosedInteractionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ClosedInteraction

    tenant = factory.SubFactory(TenantFactory)
    interaction = factory.SubFactory(InteractionFactory, tenant=SAME_TENANT, status="closed")
    queue = factory.SelfAttribute("interaction.queue")
    channel = factory.SelfAttribute("interaction.channel")
    started_at = factory.LazyFunction(timezone.now)
    closed_at = factory.LazyFunction(timezone.now)
    summary = factory.Sequence(lambda n: f"Interaction {n}")


class InteractionMessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = InteractionMessage

    tenant = factory.SubFactory(TenantFactory)
    interaction = factory.SubFactory(InteractionFactory, tenant=SAME_TENANT)
    text = factory.Faker("sentence")
    sent_at = factory.LazyFunction(timezone.now)


class TicketFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Ticket

    tenant = factory.SubFactory(TenantFactory)
    subject = factory.Sequence(lambda n: f"Ticket {n}")


class MailboxFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Mailbox

    tenant = factory.SubFactory(TenantFactory)
    owner = factory.SubFactory(UserFactory)
    email_address = factory.SelfAttribute("owner.email")
    host = "127.0.0.1"
    port = 143
    security = "none"
    username = factory.SelfAttribute("owner.email")
    secret_encrypted = factory.LazyFunction(
        lambda: __import__("crm.crypto", fromlist=["x"]).encrypt("secret")
    )


class IncomingEmailFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = IncomingEmail

    tenant = factory.SubFactory(TenantFactory)
    message_key = factory.Sequence(lambda n: f"msg{n}@example.test")
    message_id = factory.LazyAttribute(lambda o: f"<{o.message_key}>")
    subject = factory.Sequence(lambda n: f"Subject {n}")
    sender = "someone@example.test"
    received_at = factory.LazyFunction(timezone.now)
    raw = b"Subject: x\r\n\r\nbody"


class EmailLocationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EmailLocation

    tenant = factory.SubFactory(TenantFactory)
    email = factory.SubFactory(IncomingEmailFactory, tenant=SAME_TENANT)
    mailbox = factory.SubFactory(MailboxFactory, tenant=SAME_TENANT)
    folder = "INBOX"
    uidvalidity = 1
    uid = factory.Sequence(lambda n: n + 1)


class MailboxFolderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "emailsync.MailboxFolder"

    tenant = factory.SubFactory(TenantFactory)
    mailbox = factory.SubFactory(MailboxFactory, tenant=SAME_TENANT)
    name = factory.Sequence(lambda n: f"Folder{n}")


class OutgoingEmailFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "emailsync.OutgoingEmail"

    tenant = factory.SubFactory(TenantFactory)
    to = factory.Sequence(lambda n: [f"to{n}@example.test"])
    subject = factory.Sequence(lambda n: f"Outgoing {n}")


class SavedViewFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "activities.SavedView"

    tenant = factory.SubFactory(TenantFactory)
    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"View {n}")
    query = "type=call"


class ApiKeyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "crm.ApiKey"

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Key {n}")
    prefix = factory.Sequence(lambda n: f"k{n:07d}")
    key_hash = factory.Sequence(lambda n: f"{n:064x}")


class ActivityAuditEntryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "crm.ActivityAuditEntry"

    tenant = factory.SubFactory(TenantFactory)
    activity = factory.SubFactory(ActivityFactory, tenant=SAME_TENANT)
    action = "deleted"
    at = factory.LazyFunction(timezone.now)


class ChannelSecretFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "contactcenter.ChannelSecret"

    tenant = factory.SubFactory(TenantFactory)
    key_id = factory.Sequence(lambda n: f"key-{n}")
    secret_encrypted = factory.LazyFunction(lambda: crypto.encrypt("secret"))


class ChannelEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "contactcenter.ChannelEvent"

    tenant = factory.SubFactory(TenantFactory)
    event_id = factory.Sequence(lambda n: f"evt-{n}")
    type = "message"


class WidgetConfigFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "contactcenter.WidgetConfig"

    tenant = factory.SubFactory(TenantFactory)
    public_key = factory.Sequence(lambda n: f"pk{n:030d}")
    queue = factory.SubFactory(QueueFactory, tenant=SAME_TENANT)
    allowed_origins = ["http://127.0.0.1"]


class WidgetChatFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "contactcenter.WidgetChat"

    tenant = factory.SubFactory(TenantFactory)
    widget = factory.SubFactory(WidgetConfigFactory, tenant=SAME_TENANT)
    interaction = factory.SubFactory(InteractionFactory, tenant=SAME_TENANT)
    visitor_name = "Visitor"
    visitor_email = factory.Sequence(lambda n: f"visitor{n}@example.test")
    nonce_hash = factory.Sequence(lambda n: f"{n:064x}")


class SmtpSettingsFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "emailsync.SmtpSettings"

    tenant = factory.SubFactory(TenantFactory)
    host = "127.0.0.1"

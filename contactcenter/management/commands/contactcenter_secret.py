"""Issue (or rotate) a tenant's channel signing secret; prints it once."""

from django.core.management.base import BaseCommand, CommandError

from contactcenter import services
from crm import rls
from crm.models import Tenant


class Command(BaseCommand):
    help = "Issue a channel-event signing secret for a tenant (--rotate revokes the old ones)."

    def add_arguments(self, parser):
        parser.add_argument("tenant", help="tenant slug")
        parser.add_argument("--rotate", action="store_true")
        parser.add_argument("--label", default="")

    @rls.operator_command
    def handle(self, *args, **options):
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant with slug {options['tenant']!r}.")
        issue = services.channel_secret_rotate if options["rotate"] else services.channel_secret_create
        row, secret = issue(tenant=tenant, label=options["label"])
        self.stdout.write(f"X-CRM-Key: {row.key_id}\nsecret: {secret}\n(store it now: it is not shown again)")

"""Create a website chat widget for a tenant's web chat queue; prints the embed snippet."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from contactcenter import services
from contactcenter.models import Queue
from crm import rls
from crm.models import Tenant


class Command(BaseCommand):
    help = "Create a chat widget: tenant slug, web chat queue id, allowed website origins."

    def add_arguments(self, parser):
        parser.add_argument("tenant", help="tenant slug")
        parser.add_argument("--queue", type=int, required=True, help="id of a web chat queue of the tenant")
        parser.add_argument("--origin", action="append", default=[], help="e.g. https://www.example.com")
        parser.add_argument("--base-url", default="http://localhost:8000")

    @rls.operator_command
    def handle(self, *args, **options):
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant with slug {options['tenant']!r}.")
        queue = Queue.objects.for_tenant(tenant).filter(pk=options["queue"]).first()
        if queue is None:
            raise CommandError("No such queue in this tenant.")
        try:
            widget = services.widget_config_create(
                tenant=tenant, queue=queue, allowed_origins=options["origin"]
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        base = options["base_url"].rstrip("/")
        self.stdout.write(f'<script src="{base}/widget/{widget.public_key}.js" async></script>')

from django.core.management.base import BaseCommand, CommandError

from crm import rls
from emailsync.models import Mailbox, MailboxStatus
from emailsync.services import sync_mailbox


class Command(BaseCommand):
    help = "Sync mailboxes in the foreground (all active ones, or one with --mailbox ID)."

    def add_arguments(self, parser):
        parser.add_argument("--mailbox", type=int, help="Mailbox id")
        parser.add_argument("--max-runs", type=int, default=100, help="Continuation runs per mailbox at most")

    @rls.operator_command
    def handle(self, *args, mailbox=None, max_runs=100, **options):
        # Deliberately cross-tenant: an operator command.
        if mailbox is not None:
            if not Mailbox.objects.filter(pk=mailbox).exists():
                raise CommandError(f"No mailbox with id {mailbox}.")
            ids = [mailbox]
        else:
            ids = list(
                Mailbox.objects.exclude(status=MailboxStatus.DISABLED)
                .order_by("id")
                .values_list("id", flat=True)
            )
        failed = False
        for mailbox_id in ids:
            total = 0
            for _ in range(max_runs):
                result = sync_mailbox(mailbox_id)
                total += result.imported
                if not result.more or result.status != "ok":
                    break
            line = f"mailbox {mailbox_id}: {result.status}, {total} new emails"
            if result.error:
                line += f" ({result.error})"
                failed = True
            for warning in result.warnings:
                line += f"\n  warning: {warning}"
            self.stdout.write(line)
        if failed and mailbox is not None:
            raise CommandError("Sync failed.")

from django.core.management.base import BaseCommand, CommandError

from crm import rls
from crm.crypto import SecretError
from emailsync.services import rotate_secrets


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored mailbox / SMTP secret with the first key of FIELD_ENCRYPTION_KEYS. "
        "Put the new key first, keep the old ones after it, run this, then drop the old keys."
    )

    @rls.operator_command
    def handle(self, *args, **options):
        try:
            count = rotate_secrets()
        except SecretError as exc:
            raise CommandError(
                f"{exc}: keep every old key in FIELD_ENCRYPTION_KEYS until rotation is done."
            ) from exc
        self.stdout.write(f"Re-encrypted {count} secrets with the newest key.")

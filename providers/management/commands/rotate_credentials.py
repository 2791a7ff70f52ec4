from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db import transaction

from providers.models import Credential


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored API key under the first of GPUBROKER_ENCRYPTION_KEYS. "
        "Run after putting a new key first; then the old key can be dropped from the list."
    )

    @transaction.atomic
    def handle(self, *args, **options) -> None:
        credentials = list(Credential.objects.select_for_update().select_related("provider"))
        for credential in credentials:
            credential.rotate()
            credential.save(update_fields=["encrypted_key", "updated_at"])
        self.stdout.write(f"Re-encrypted {len(credentials)} credentials under the newest key.")

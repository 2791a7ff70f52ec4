from __future__ import annotations

from django.core.management.base import BaseCommand

from providers.registry import load_registry


class Command(BaseCommand):
    help = "Create or update providers (and their poll schedules) from provider_registry.json."

    def handle(self, *args, **options) -> None:
        providers = load_registry()
        self.stdout.write(
            f"Loaded {len(providers)} providers: " + ", ".join(p.slug for p in providers)
        )

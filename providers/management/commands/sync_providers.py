from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from providers.models import Provider
from providers.pipeline import poll_many


class Command(BaseCommand):
    help = "Poll providers now, in the foreground, and print a summary."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--provider", metavar="SLUG", help="Poll only this provider.")

    def handle(self, *args, provider: str | None = None, **options) -> None:
        if not Provider.objects.exists():  # a database just migrated by hand
            raise CommandError(
                "No providers loaded: run manage.py load_providers first (make migrate does)."
            )
        if provider and not Provider.objects.filter(slug=provider).exists():
            known = ", ".join(Provider.objects.values_list("slug", flat=True))
            raise CommandError(
                f"Unknown provider {provider!r}. Known: {known or 'none (run load_providers)'}"
            )
        runs = poll_many(provider, progress=self.stdout.write)
        if not runs:
            raise CommandError("No enabled providers to poll.")
        self.stdout.write("")
        row = "{:<14} {:<8} {:>6} {:>6} {:>7} {:>5} {:>5}".format
        self.stdout.write(row("provider", "outcome", "seen", "new", "changed", "gone", "calls"))
        for run in runs:
            self.stdout.write(
                row(
                    run.provider.slug,
                    run.outcome,
                    run.offers_seen,
                    run.offers_added,
                    run.offers_changed,
                    run.offers_gone,
                    run.http_calls,
                )
            )
        if not any(run.succeeded for run in runs):
            raise CommandError("No provider was polled successfully.")

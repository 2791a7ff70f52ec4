from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from providers.models import Provider
from providers.pipeline import poll_many


class Command(BaseCommand):
    help = "Poll providers now, in the foreground, and print a summary."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--provider", metavar="SLUG", help="Poll only this provider.")

    def handle(self, *args, provider: str | None = None, **options) -> None:
        if provider and not Provider.objects.filter(slug=provider).exists():
            known = ", ".join(Provider.objects.values_list("slug", flat=True))
            raise CommandError(
                f"Unknown provider {provider!r}. Known: {known or 'none (run load_providers)'}"
            )
        runs = poll_many(provider, progress=self.stdout.write)
        if not runs:
            raise CommandError("No enabled providers to poll.")
        self.stdout.write("")
        columns = ("provider", "outcome", "seen", "new", "changed", "gone", "calls")
        self.stdout.write("{:<14} {:<8} {:>6} {:>6} {:>7} {:>5} {:>5}".format(*columns))
        for run in runs:
            self.stdout.write(
                f"{run.provider.slug:<14} {run.outcome:<8} {run.offers_seen:>6} {run.offers_added:>6} "
                f"{run.offers_changed:>7} {run.offers_gone:>5} {run.http_calls:>5}"
            )
        if all(run.outcome in ("failed", "skipped") for run in runs):
            raise CommandError("Every provider failed.")

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.core.management.base import BaseCommand, CommandError

from broker.models import ApiKey


def usd(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise CommandError(f"--budget-usd must be a number, not {text!r}") from exc
    if value < 0:
        raise CommandError("--budget-usd must not be negative")
    return value


class Command(BaseCommand):
    help = "Create a broker API key (gpb_…); the key is printed once, as the last line."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name")
        parser.add_argument("--budget-usd", type=usd, default=None, help="Monthly budget.")
        parser.add_argument("--models", nargs="*", default=[], help="Allowed canonical models.")
        parser.add_argument("--providers", nargs="*", default=[], help="Allowed provider slugs.")

    def handle(self, *args, name: str, budget_usd: Decimal | None, **options) -> None:
        key, raw = ApiKey.issue(
            name,
            budget_usd,
            allowed_models=[m.lower() for m in options["models"]],
            allowed_providers=options["providers"],
        )
        budget = f"${budget_usd} a month" if budget_usd is not None else "no budget limit"
        self.stdout.write(f"Created key {key.prefix}… for {name!r} ({budget}). Shown once:")
        self.stdout.write(raw)

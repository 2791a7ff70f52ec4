from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.core.management.base import BaseCommand, CommandError

from broker.models import ApiKey
from providers import llm_models


def usd(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise CommandError(f"--budget-usd must be a number, not {text!r}") from exc
    if value < 0:
        raise CommandError("--budget-usd must not be negative")
    return value


def canonical(name: str) -> str:
    """The canonical id of a model named any way a request may name it (an alias, a
    provider's own id); a name the catalog does not know yet is kept, case-folded."""
    model = llm_models.resolve(name)
    return model.canonical if model else name.lower()


class Command(BaseCommand):
    help = "Create a broker API key (gpb_…); the key is printed once, as the last line."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name")
        parser.add_argument("--budget-usd", type=usd, default=None, help="Monthly budget.")
        parser.add_argument(
            "--models", nargs="*", default=[], help="Allowed models (any name the catalog knows)."
        )
        parser.add_argument("--providers", nargs="*", default=[], help="Allowed provider slugs.")

    def handle(self, *args, name: str, budget_usd: Decimal | None, **options) -> None:
        key, raw = ApiKey.issue(
            name,
            budget_usd,
            allowed_models=[canonical(m) for m in options["models"]],
            allowed_providers=options["providers"],
        )
        budget = f"${budget_usd} a month" if budget_usd is not None else "no budget limit"
        self.stdout.write(f"Created key {key.prefix}… for {name!r} ({budget}). Shown once:")
        self.stdout.write(raw)

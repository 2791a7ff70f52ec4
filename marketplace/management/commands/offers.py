"""`manage.py offers`: the marketplace as a terminal table, with the same filters, each row
saying how fresh it is (what SkyPilot's `show-gpus` gives its users)."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import F, Q
from django.utils import timezone

from marketplace import catalog
from marketplace.formatting import ago, usd
from providers.models import Kind, Offer
from providers.vocabulary import TASKS

SORTS = {
    "price": F("unit_price").asc(nulls_last=True),
    "gscore": F("gscore_value").desc(nulls_last=True),
}


class Command(BaseCommand):
    help = "List offers like the marketplace: filters, cheapest (or best G-Score) first."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--gpu", help="GPU model, any part of its name: H100, 4090.")
        parser.add_argument("--model", help="LLM model, any part of its id: llama-3.3-70b.")
        parser.add_argument("--provider", action="append", default=[], metavar="SLUG")
        parser.add_argument("--region", action="append", default=[])
        parser.add_argument("--task", choices=TASKS)
        parser.add_argument("--kind", choices=["llm", "gpu"])
        parser.add_argument("--max-price", help="In the offer's unit (per GPU-hour, per 1M in).")
        parser.add_argument("--sort", choices=list(SORTS), default="price")
        parser.add_argument("--unavailable", action="store_true", help="Include sold-out offers.")
        parser.add_argument("--limit", type=int, default=50, help="Rows to show (default 50).")
        parser.add_argument("--json", action="store_true", help="Print JSON rows instead.")

    def handle(self, *args, **opts) -> None:
        providers = catalog.providers()
        known = {p.slug for p in providers}
        if unknown := [s for s in opts["provider"] if s not in known]:
            raise CommandError(
                f"Unknown provider {unknown[0]!r}. Known: {', '.join(sorted(known))}"
            )
        filters = catalog.Filters(
            provider=opts["provider"],
            region=opts["region"],
            task=opts["task"],
            kind=opts["kind"],
            max_price=_price(opts["max_price"]),
            unavailable=opts["unavailable"],
        )
        offers = filters.apply(Offer.objects.select_related("llm_model"), providers)
        if opts["gpu"]:
            offers = offers.filter(gpu_name__icontains=opts["gpu"])
        if opts["model"]:
            model = opts["model"]
            offers = offers.filter(
                Q(llm_model__canonical__icontains=model) | Q(name__icontains=model)
            )
        offers = list(offers.order_by(SORTS[opts["sort"]], "id")[: max(opts["limit"], 1)])
        by_pk = {p.pk: p for p in providers}
        for offer in offers:
            offer.provider = by_pk[offer.provider_id]  # with its poll status
        if opts["json"]:
            self.stdout.write(
                json.dumps([_json(o) for o in offers], cls=DjangoJSONEncoder, indent=2)
            )
            return
        self._table(offers)

    def _table(self, offers: list[Offer]) -> None:
        if not offers:
            self.stdout.write("No offers match.")
            return
        now = timezone.now()
        head = ("PROVIDER", "OFFER", "GPU / TASK", "REGION", "PRICE", "G-SCORE", "SEEN")
        rows = [
            (
                _who(o, now),
                _title(o),
                o.gpu_name if o.kind == Kind.GPU else o.task,
                o.region or "-",
                _price_text(o),
                "-" if o.gscore is None else f"{o.gscore:.0f}",
                ago(o.seen_at),
            )
            for o in offers
        ]
        widths = [min(max(len(r[i]) for r in [head, *rows]), 48) for i in range(len(head))]
        for row in [head, *rows]:
            self.stdout.write(
                "  ".join(cell[:48].ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            )


def _who(offer: Offer, now) -> str:
    """The provider, with its health when that is not ok: "groq (stale)"."""
    health = catalog.health(offer.provider, now)
    return offer.provider.slug if health == "ok" else f"{offer.provider.slug} ({health})"


def _price(text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        price = Decimal(text)
    except InvalidOperation:
        raise CommandError(f"--max-price {text!r} is not a number") from None
    if not price.is_finite() or price < 0:
        raise CommandError("--max-price must be a number of dollars, 0 or more")
    return price


def _title(offer: Offer) -> str:
    if offer.kind == Kind.GPU:
        return f"{offer.gpu_count or '?'}× {offer.gpu_name}" if offer.gpu_name else offer.name
    served = f" via {offer.serving_provider}" if offer.serving_provider else ""
    return (offer.llm_model.display_name if offer.llm_model else offer.name) + served


def _price_text(offer: Offer) -> str:
    if offer.usd_per_gpu_hour_min is not None:
        return f"{usd(offer.usd_per_gpu_hour_min)}–{usd(offer.usd_per_gpu_hour_max)}/GPU-h"
    if offer.usd_per_gpu_hour is not None:
        return f"{usd(offer.usd_per_gpu_hour)}/GPU-h"
    if offer.usd_per_1m_input is not None:
        out = f" {usd(offer.usd_per_1m_output)} out" if offer.usd_per_1m_output is not None else ""
        return f"{usd(offer.usd_per_1m_input)} in{out} /1M"
    if offer.usd_per_image is not None:
        return f"{usd(offer.usd_per_image)}/image"
    return offer.native_price or "unknown"


def _json(offer: Offer) -> dict:
    return {
        "id": offer.pk,
        "provider": offer.provider.slug,
        "provider_health": catalog.health(offer.provider),
        "name": offer.name,
        "model": offer.llm_model.canonical if offer.llm_model else None,
        "gpu": offer.gpu_name,
        "gpu_count": offer.gpu_count,
        "task": offer.task,
        "region": offer.region,
        "usd_per_1m_input": offer.usd_per_1m_input,
        "usd_per_1m_output": offer.usd_per_1m_output,
        "usd_per_image": offer.usd_per_image,
        "usd_per_gpu_hour": offer.usd_per_gpu_hour,
        "usd_per_gpu_hour_min": offer.usd_per_gpu_hour_min,
        "usd_per_gpu_hour_max": offer.usd_per_gpu_hour_max,
        "native_price": offer.native_price,
        "gscore": offer.gscore,
        "available": offer.available,
        "seen_at": offer.seen_at,
    }

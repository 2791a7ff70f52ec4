"""io.net: the VM hardware catalog (priced per configuration) and deployment price quotes.

Follows (read 2026-11-23 through stored copies of io.net/docs reference/vmaas
get-hardware-list.md, get-deployment-price.md and example-deploying-using-APIs.md; notes in
tests/payloads/SOURCES-gpu.md). Every call carries `x-api-key`.
- `GET /enterprise/v1/io-cloud/vmaas/hardware` → `{"data": {"hardware": [{id, deploy_id,
  name, num_cards, supplier, price, vram_per_card (GB), interconnect, vcpu, memory (GB),
  storage, location (ISO2), sold_out?}]}}`. `price` is "Price per hour in USD"; whether per VM
  or per card the docs do not say (their example prices 1× RTX 4090 at 0.3 and 2× at 0.6, per
  VM; a recorded 8× H100 at 2.19 reads as per card, $0.27 a GPU-hour otherwise). Each poll
  settles it with one quote per supplier (internal, external) for one hour of one multi-GPU
  VM: a total near `price` means per VM, near `price × num_cards` per card. Each offer's note
  says which held, or that no quote settled it (then the documented per-VM reading is used).
  Single-GPU VMs are the same either way. The storage unit is not documented (its examples
  read as GB).
- `GET /enterprise/v1/io-cloud/vmaas/price?location_ids=["US"]&hardware_id=<deploy_id>&
  currency=usdc&duration_hours&gpus_per_vm&replica_count` → `{"data": {total_cost_usdc, …}}`,
  the total for the whole deployment (duration × replicas × GPUs, fees included): divided
  back to a GPU-hour, it is the check `authenticate()` reports against the list price.
- The docs' deployment example shows VMs can be deployed by API too, but each needs an SSH
  key, a duration and locations chosen per deployment; renting is wired for Vast only so far,
  so renting points at the console.
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from typing import Any

from providers import geo
from providers.adapters.base import AuthResult, Catalog, OfferIn, ProviderAdapter, usd
from providers.gpus import GpuVocabulary, parse_gpu_offers, per_gpu_hour
from resilience.errors import BadPayload, ProviderError

logger = logging.getLogger(__name__)
HARDWARE = "/enterprise/v1/io-cloud/vmaas/hardware"
PRICE = "/enterprise/v1/io-cloud/vmaas/price"
PER_VM, PER_CARD = "vm", "card"
# How far a quote (fees included) may sit from the listed price and still confirm a reading.
QUOTE_TOLERANCE = Decimal("0.25")


class IonetAdapter(ProviderAdapter):
    console_url = "https://cloud.io.net"

    def _headers(self) -> dict[str, str]:
        return {"x-api-key": self.api_key(required=True)}

    def _hardware(self) -> list[Any]:
        body = self.client.get_json(HARDWARE, headers=self._headers())
        data = body.get("data") if isinstance(body, dict) else None
        items = data.get("hardware") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise BadPayload(f"{self.slug}: {HARDWARE} has no data.hardware list")
        # CPU-only VMs (num_cards 0) are not GPU rentals.
        return [item for item in items if not isinstance(item, dict) or item.get("num_cards")]

    def list_models(self) -> Catalog:
        items = self._hardware()
        units = self.price_units(items)
        return parse_gpu_offers(
            self.slug,
            items,
            lambda item, vocabulary, catalog: self._offers(item, vocabulary, catalog, units),
        )

    def price_units(self, items: list[Any]) -> dict[str, tuple[str, Decimal, str]]:
        """Per supplier, whether `price` is per VM or per card, the quote that showed it and the
        VM quoted (one per supplier: its note must not pass for a quote of every VM)."""
        samples: dict[str, dict[str, Any]] = {}
        for item in items:
            if _quotable(item):
                samples.setdefault(item.get("supplier") or "", item)
        units = {}
        for supplier, item in samples.items():
            try:
                quoted = self.quote_total(item)
            except ProviderError as exc:  # the list still stands; the note says unconfirmed
                logger.warning("%s: quote for %s failed: %s", self.slug, item["id"], exc)
                continue
            unit = _reading(Decimal(str(item["price"])), quoted, int(item["num_cards"]))
            logger.info("%s: %s price is per %s (quote %s)", self.slug, supplier, unit, quoted)
            if unit:
                units[supplier] = (unit, quoted, f"{item['num_cards']}-GPU VM {item['id']}")
        return units

    def _offers(
        self,
        item: dict[str, Any],
        vocabulary: GpuVocabulary,
        catalog: Catalog,
        units: dict[str, tuple[str, Decimal, str]] | None = None,
    ) -> list[OfferIn]:
        cards = int(item["num_cards"])
        unit, quoted, sample = (units or {}).get(item.get("supplier") or "", (None, None, ""))
        per_vm = (
            usd(item.get("price")) if unit != PER_CARD else usd(Decimal(str(item["price"])) * cards)
        )
        country = geo.country_code(item.get("location"))
        sold_out = bool(item.get("sold_out"))
        offer = OfferIn(
            upstream_id=str(item["id"]),
            name="",
            kind="gpu-compute",
            region=geo.region_for(country),
            country=country,
            description=f"{item.get('supplier') or 'unknown'} supplier. Storage unit not "
            "documented by io.net (GB assumed).",
            gpu_count=cards,
            vram_gb=item.get("vram_per_card"),
            vcpus=item.get("vcpu"),
            ram_gb=item.get("memory"),
            disk_gb=item.get("storage"),
            interruptible=False,  # a VM rented for a fixed duration
            available=not sold_out,
            availability_count=0 if sold_out else None,
            usd_per_instance_hour=per_vm,
            usd_per_gpu_hour=per_gpu_hour(per_vm, cards),
            price_note=_note(cards, unit, quoted, sample),
        )
        vocabulary.label(
            offer,
            catalog,
            item.get("name") or "",
            variant=item.get("interconnect") or "",
            memory_gb=offer.vram_gb,
        )
        offer.name = f"{cards}× {offer.gpu_name or 'GPU not named by the provider'}"
        return [offer]

    def quote_per_gpu_hour(
        self, item: dict[str, Any], *, hours: int = 1, replicas: int = 1
    ) -> Decimal | None:
        """io.net's own quote for `replicas` VMs like `item` over `hours`, per GPU-hour."""
        total, gpus = self._quote(item, hours=hours, replicas=replicas)
        return per_gpu_hour(total, gpus or int(item["num_cards"]), hours=hours, replicas=replicas)

    def quote_total(self, item: dict[str, Any]) -> Decimal:
        """io.net's quote, fees included, for one hour of one VM like `item`."""
        return Decimal(str(self._quote(item, hours=1, replicas=1)[0]))

    def _quote(self, item: dict[str, Any], *, hours: int, replicas: int) -> tuple[Any, int]:
        params = {
            "location_ids": json.dumps([item["location"]]),
            "hardware_id": item["deploy_id"],
            "currency": "usdc",
            "duration_hours": hours,
            "gpus_per_vm": item["num_cards"],
            "replica_count": replicas,
        }
        body = self.client.get_json(PRICE, params=params, headers=self._headers())
        try:
            data = body["data"]
            total, gpus = data["total_cost_usdc"], int(data.get("gpus_per_vm") or 0)
        except (KeyError, TypeError, ValueError) as exc:
            raise BadPayload(f"{self.slug}: {PRICE} has no data.total_cost_usdc") from exc
        return total, gpus

    def authenticate(self) -> AuthResult:
        items = self._hardware()
        sample = next(
            (i for i in items if isinstance(i, dict) and i.get("price") and not i.get("sold_out")),
            None,
        )
        detail = f"Key accepted; {len(items)} GPU configurations listed."
        if sample is None:
            return AuthResult(ok=True, detail=detail)
        quoted = self.quote_per_gpu_hour(sample)
        listed = per_gpu_hour(sample["price"], int(sample["num_cards"]))
        return AuthResult(
            ok=True,
            detail=f"{detail} {sample['id']}: list ${listed}/GPU-hour, quote ${quoted}/GPU-hour.",
        )


def _quotable(item: Any) -> bool:
    """A VM whose quote can tell per-VM from per-card: several GPUs, a price, on sale."""
    return (
        isinstance(item, dict)
        and int(item.get("num_cards") or 0) > 1
        and bool(item.get("price"))
        and not item.get("sold_out")
        and bool(item.get("location"))
        and item.get("deploy_id") is not None
    )


def _reading(price: Decimal, quoted: Decimal, cards: int) -> str | None:
    """PER_VM when the quote for one VM-hour is near the price, PER_CARD when near price ×
    cards, None when near neither."""
    for unit, expected in ((PER_VM, price), (PER_CARD, price * cards)):
        if abs(quoted - expected) <= QUOTE_TOLERANCE * expected:
            return unit
    return None


def _note(cards: int, unit: str | None, quoted: Decimal | None, sample: str = "") -> str:
    if cards == 1:
        return "List price of the 1-GPU VM per hour; quotes add fees."
    if unit == PER_CARD:
        return (
            f"Listed price is per GPU (io.net's quote of ${quoted} for one hour of the "
            f"supplier's {sample} showed it); the VM costs {cards}×. Quotes add fees."
        )
    if unit == PER_VM:
        return (
            f"List price of the {cards}-GPU VM per hour ÷ {cards} (per VM, as io.net's quote "
            f"of ${quoted} for one hour of the supplier's {sample} showed). Quotes add fees."
        )
    return (
        f"List price of the {cards}-GPU VM per hour ÷ {cards}, as io.net's docs read; no quote "
        "confirmed whether it is per VM or per GPU this poll."
    )

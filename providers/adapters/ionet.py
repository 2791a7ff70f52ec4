"""io.net: the VM hardware catalog (priced per configuration) and deployment price quotes.

Follows (read 2026-11-23 through stored copies of io.net/docs reference/vmaas
get-hardware-list.md, get-deployment-price.md and example-deploying-using-APIs.md; notes in
tests/payloads/SOURCES-gpu.md). Every call carries `x-api-key`.
- `GET /enterprise/v1/io-cloud/vmaas/hardware` → `{"data": {"hardware": [{id, deploy_id,
  name, num_cards, supplier, price, vram_per_card (GB), interconnect, vcpu, memory (GB),
  storage, location (ISO2), sold_out?}]}}`. `price` is "Price per hour in USD" for the whole
  configuration: the docs price 1× RTX 4090 at 0.3 and 2× at 0.6, so per GPU-hour is
  price / num_cards. The storage unit is not documented (its examples read as GB).
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
from decimal import Decimal
from typing import Any

from providers import geo
from providers.adapters.base import AuthResult, Catalog, OfferIn, ProviderAdapter, usd
from providers.gpus import GpuVocabulary, parse_gpu_offers, per_gpu_hour
from resilience.errors import BadPayload

HARDWARE = "/enterprise/v1/io-cloud/vmaas/hardware"
PRICE = "/enterprise/v1/io-cloud/vmaas/price"


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
        return parse_gpu_offers(self.slug, self._hardware(), self._offers)

    def _offers(
        self, item: dict[str, Any], vocabulary: GpuVocabulary, catalog: Catalog
    ) -> list[OfferIn]:
        cards = int(item["num_cards"])
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
            usd_per_instance_hour=usd(item.get("price")),
            usd_per_gpu_hour=per_gpu_hour(item.get("price"), cards),
            price_note=f"List price of the {cards}-GPU VM per hour ÷ {cards}; quotes add fees.",
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
        return per_gpu_hour(total, gpus or int(item["num_cards"]), hours=hours, replicas=replicas)

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

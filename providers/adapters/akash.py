"""Akash Network: the console API's GPU market prices, and a chain health check over RPC.

Follows (read 2026-11-23 through stored copies of akash-network/console:
apps/api/src/gpu/routes/gpu.router.ts, http-schemas/gpu.schema.ts and
services/gpu-price/gpu-price.service.ts; notes in tests/payloads/SOURCES-gpu.md):
- `GET /v1/gpu-prices`, no key → `{"availability", "models": [{vendor, model, ram ("80Gi"),
  interface, availability{total, available}, providerAvailability, price{currency, min, max,
  avg, weightedAverage, med} | null}]}`. Counts are GPUs.
- The price is not a list price: per provider the service picks a recent on-chain bid for a
  one-GPU deployment (31 days, uakt/uact converted at the day's rate), so it is USD per
  GPU-hour including a sliver of CPU, RAM and disk, and `null` when nobody bid. We show it as
  a market range (min–max) and keep the median as the one number sorting needs.
- Leases are made by reverse auction from a deployment, not through this API: renting
  points at the console. `{AKASH_RPC_URL}/status` (CometBFT) tells whether the chain moves.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from providers.adapters.base import AuthResult, Catalog, OfferIn, ProviderAdapter, usd
from providers.gpus import GpuVocabulary, parse_gpu_offers
from resilience.client import ProviderClient
from resilience.errors import BadPayload, Transient

GIB = re.compile(r"^(\d+(?:\.\d+)?)\s*Gi$")


class AkashAdapter(ProviderAdapter):
    console_url = "https://console.akash.network"

    def list_models(self) -> Catalog:
        body = self.client.get_json("/v1/gpu-prices")
        models = body.get("models") if isinstance(body, dict) else None
        if not isinstance(models, list):
            raise BadPayload(f"{self.slug}: /v1/gpu-prices has no models list")
        return parse_gpu_offers(self.slug, models, self._offers)

    def _offers(
        self, item: dict[str, Any], vocabulary: GpuVocabulary, catalog: Catalog
    ) -> list[OfferIn]:
        model = item["model"]
        if not model:
            raise ValueError("no model")
        vendor, ram = item.get("vendor") or "", item.get("ram") or ""
        interface = item.get("interface") or ""  # absent on some rows (seen for h200)
        available = (item.get("availability") or {}).get("available")
        offer = OfferIn(
            upstream_id="/".join((vendor, model, ram, interface)),
            name="",
            kind="gpu-compute",
            gpu_count=1,
            vram_gb=_gib(ram),
            availability_count=available,
            available=available != 0,
        )
        vocabulary.label(offer, catalog, model, variant=interface, memory_gb=offer.vram_gb)
        offer.name = " ".join(p for p in (offer.gpu_name, ram, interface) if p)
        _price(offer, item.get("price"))
        return [offer]

    def health_check(self) -> AuthResult:
        self.list_models()
        rpc = ProviderClient(self.provider.policy(base_url=self.provider.setting("RPC_URL")))
        try:
            status = rpc.get_json("/status")
        finally:
            rpc.close()
        try:
            sync = status["result"]["sync_info"]
            height = sync["latest_block_height"]
        except (KeyError, TypeError) as exc:
            raise BadPayload(f"{self.slug}: RPC /status has no result.sync_info") from exc
        if sync.get("catching_up"):
            raise Transient(f"{self.slug}: the RPC node is catching up (block {height})")
        return AuthResult(
            ok=True,
            detail=f"Price API answers; chain at block {height} ({sync.get('latest_block_time')}).",
        )


def _gib(ram: str) -> float | None:
    match = GIB.match(ram)
    return float(match.group(1)) if match else None


def _price(offer: OfferIn, price: Any) -> None:
    usable = isinstance(price, dict) and price.get("currency") == "USD"
    low, high, median = (usd(price.get(k)) if usable else None for k in ("min", "max", "med"))
    if low is None or high is None:  # a range needs both ends
        low = high = None
    if low is None and median is None:
        offer.price_note = "No recent on-chain bids for this GPU: price unknown."
        return
    offer.usd_per_gpu_hour_min, offer.usd_per_gpu_hour_max = low, high
    offer.usd_per_gpu_hour = median
    offer.price_note = (
        "Market range, not a quote: recent on-chain bids for 1-GPU leases across providers "
        f"(last 31 days{_median(median)}), incl. a little CPU, RAM and disk. Leases are priced "
        "by reverse auction."
    )


def _median(median: Decimal | None) -> str:
    return "" if median is None else f"; median ${format(median.normalize(), 'f')}/GPU-hour"

"""Vast.ai: the offer marketplace, and instance creation behind an admin action.

Follows (read 2026-11-23 through stored copies of vast-ai/vast-cli: docs/cli/client/search.md,
openapi/yaml/search_offers.yaml, create_instance.yaml, show_user.yaml; cross-checked against
the catalog fetchers of dstackai/gpuhunt and skypilot; notes in tests/payloads/SOURCES-gpu.md):
- `POST /api/v0/bundles/` with a flat query `{"<field>": {"<op>": value}, "order", "type",
  "limit", "allocated_storage"}` → `{"offers": [...]}`. No pagination: `limit` caps it. The
  key is optional (`Authorization: Bearer`); a wrong one answers 404 `auth_error`.
- Units: `gpu_ram` MiB per GPU (24564 for a 4090); `cpu_ram` MiB for the whole machine, of
  which the offer gets `cpu_cores_effective / cpu_cores`; `disk_space` GB; `dph_total` USD/h
  for the whole offer, all `num_gpus` GPUs plus the allocated storage; `min_bid` "current
  minimum bid price in $/hr for interruptible", also for the whole offer (the create call's
  `price` is "bid price per machine"); `reliability2` 0..1; `geolocation` "Region, CC" or a
  bare country name. `dlperf` is Vast's own benchmark of the whole offer. `verification`
  "verified" / "unverified" / "deverified" (the search asks for verified machines, yet
  answers may hold others); `cuda_max_good` the newest CUDA version the host's driver runs.
- `PUT /api/v0/asks/{id}/` rents the offer (`image`, `disk` GB ≥ 8, `price` for a bid) →
  `{"success": true, "new_contract": id}`; failures are `{"success": false, "error": code,
  "msg": "error <http>/<n>: …"}`. `GET /api/v0/users/current/` proves a key.
- Search allows 10 requests/minute per IP and its 429 carries no Retry-After.
"""

from __future__ import annotations

import dataclasses
import re
from decimal import Decimal
from typing import Any

from providers import geo
from providers.adapters.base import AuthResult, Catalog, OfferIn, ProviderAdapter, usd
from providers.gpus import GpuVocabulary, mib_to_gb, parse_gpu_offers, per_gpu_hour
from resilience.errors import (
    BadPayload,
    Forbidden,
    InvalidKey,
    NotFound,
    ProviderError,
    RateLimited,
)

# `verification` as sent; a value not listed (or none) leaves the offer's verification unknown.
VERIFIED = {"verified": True, "unverified": False, "deverified": False}
STORAGE_GB = 5  # the CLI's --storage default; dph_total prices it in
SEARCH = {
    # The CLI's default query: verified machines, no external offers, rentable now.
    "verified": {"eq": True},
    "external": {"eq": False},
    "rentable": {"eq": True},
    "order": [["score", "desc"]],
    "type": "on-demand",
    "limit": 3000,
    "allocated_storage": STORAGE_GB,
}
ERRORS = {401: InvalidKey, 403: Forbidden, 404: NotFound, 410: NotFound, 429: RateLimited}


class VastAiAdapter(ProviderAdapter):
    console_url = "https://cloud.vast.ai"
    creates_instances = True

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        kwargs.setdefault("headers", self.auth_headers())
        try:
            body = self.client.json(self.client.request(method, path, **kwargs))
        except NotFound as exc:
            if "auth_error" in str(exc):  # Vast answers a bad key with 404
                raise InvalidKey(str(exc), status=exc.status) from exc
            raise
        if isinstance(body, dict) and body.get("success") is False:
            raise _error(self.slug, body)
        return body

    def list_models(self) -> Catalog:
        body = self._call("POST", "/api/v0/bundles/", json=SEARCH)
        offers = body.get("offers") if isinstance(body, dict) else None
        if not isinstance(offers, list):
            raise BadPayload(f"{self.slug}: /api/v0/bundles/ has no offers list")
        return parse_gpu_offers(self.slug, offers, self._offers)

    def _offers(
        self, item: dict[str, Any], vocabulary: GpuVocabulary, catalog: Catalog
    ) -> list[OfferIn]:
        gpus = int(item["num_gpus"])
        if gpus < 1:
            raise ValueError(f"num_gpus is {gpus}")
        country = geo.country_code(item.get("geolocation"))
        offer = OfferIn(
            upstream_id=str(int(item["id"])),
            name="",
            kind="gpu-compute",
            region=geo.region_for(country),
            country=country,
            description=_description(item),
            gpu_count=gpus,
            vram_gb=mib_to_gb(item.get("gpu_ram")),
            vcpus=item.get("cpu_cores_effective"),
            ram_gb=_ram_gb(item),
            disk_gb=item.get("disk_space"),
            reliability=item.get("reliability2", item.get("reliability")),
            verified=VERIFIED.get(item.get("verification")),
            cuda_version=item.get("cuda_max_good"),
            interruptible=False,
            availability_count=gpus,
            benchmark_score=item.get("dlperf"),
            usd_per_instance_hour=usd(item.get("dph_total")),
            usd_per_gpu_hour=per_gpu_hour(item.get("dph_total"), gpus),
            price_note=f"On-demand, whole offer incl. {STORAGE_GB} GB disk; bandwidth extra.",
        )
        vocabulary.label(offer, catalog, item.get("gpu_name") or "", memory_gb=offer.vram_gb)
        offer.name = f"{gpus}× {offer.gpu_name or 'GPU not named by the provider'}"
        if item.get("min_bid") is None:
            return [offer]
        return [offer, _interruptible(offer, item, gpus)]

    def authenticate(self) -> AuthResult:
        if not self.provider.api_key():
            self._call("POST", "/api/v0/bundles/", json={**SEARCH, "limit": 1})
            return AuthResult(ok=True, detail="No key set; the public offer search answers.")
        user = self._call("GET", "/api/v0/users/current/")
        return AuthResult(ok=True, detail=f"Key accepted for user {user.get('id', '?')}.")

    def rent(self, upstream_id: str, instance: dict[str, Any]) -> dict[str, Any]:
        """Rent the offer: `instance` is the create-instance body (image, disk, and a bid's
        price). Costs money: only the admin's rent action calls this."""
        ask = int(upstream_id.split(":")[0])  # "<ask>:bid" is the same machine, by bid
        result = self._call(
            "PUT", f"/api/v0/asks/{ask}/", json=instance, headers=self.auth_headers(required=True)
        )
        if not isinstance(result, dict) or not result.get("new_contract"):
            raise BadPayload(f"{self.slug}: create instance answered without new_contract")
        return result


def _interruptible(offer: OfferIn, item: dict[str, Any], gpus: int) -> OfferIn:
    """The same machine rented by bid: the current minimum bid plus the same storage."""
    bid = Decimal(str(item["min_bid"])) + Decimal(str(item.get("storage_total_cost") or 0))
    return dataclasses.replace(
        offer,
        upstream_id=f"{offer.upstream_id}:bid",
        canonical_id="",
        interruptible=True,
        usd_per_instance_hour=usd(bid),
        usd_per_gpu_hour=per_gpu_hour(bid, gpus),
        price_note=(
            f"Interruptible: current minimum bid for the whole offer, plus {STORAGE_GB} GB "
            "disk. A higher bid can stop it."
        ),
    )


def _ram_gb(item: dict[str, Any]) -> float | None:
    """cpu_ram is the whole machine's; the offer gets its share of the cores (as gpuhunt)."""
    ram, cores, share = item.get("cpu_ram"), item.get("cpu_cores"), item.get("gpu_frac")
    if not ram:
        return None
    if cores and item.get("cpu_cores_effective"):
        share = item["cpu_cores_effective"] / cores
    return mib_to_gb(ram * share) if share else None


def _description(item: dict[str, Any]) -> str:
    parts = [
        item.get("verification") or "unverified",
        f"CUDA ≤ {item['cuda_max_good']}" if item.get("cuda_max_good") else "",
        item.get("cpu_name") or "",
    ]
    return "; ".join(p for p in parts if p)


def _error(slug: str, body: dict[str, Any]) -> ProviderError:
    """A `{"success": false}` body, typed by the HTTP status Vast writes into `msg`."""
    message = f"{slug}: {body.get('error') or 'error'}: {body.get('msg') or ''}".rstrip(": ")
    match = re.search(r"\berror (\d{3})/", str(body.get("msg") or ""))
    status = int(match.group(1)) if match else None
    return ERRORS.get(status, ProviderError)(message, status=status)

"""Render Network: a price-sheet provider, because Render publishes no catalog or price API.

Follows providers/price_sheets/render.json, whose tiers come from the Render knowledge base
page "How much does RENDER cost?" (know.rendernetwork.com/basics/how-much-does-rndr-cost,
undated; read 2026-11-23 through a stored copy) and the OTOY help center. A search of docs,
issues, code and pages found no public REST API (the `api.render.network` host named in the
provider guide appears in no Render source).

Render sells rendering work in OctaneBench-hours (OBh) per RENDER credit, by tier. OBh are not
GPU-hours and no USD rate is published, so offers carry the native unit as stated and no USD
price: nothing is converted by guesswork. Polling makes no HTTP call; the health check only
shows that the configured site (RENDER_BASE_URL) is reachable.
"""

from __future__ import annotations

from typing import Any

from django.utils.text import slugify

from providers.adapters.base import (
    AuthResult,
    Catalog,
    OfferIn,
    ProviderAdapter,
    load_price_sheet,
)


class RenderAdapter(ProviderAdapter):
    console_url = "https://rendernetwork.com"

    def list_models(self) -> Catalog:
        sheet = load_price_sheet("render")
        catalog = Catalog()
        for tier in sheet["tiers"]:
            if tier.get("obh_per_render") is None:
                continue  # Tier 1 is "not yet released": it has no current rate
            catalog.offers.append(self._offer(tier, sheet))
        return catalog

    def _offer(self, tier: dict[str, Any], sheet: dict[str, Any]) -> OfferIn:
        dated = "" if sheet["read_on_date"] else " (page undated)"
        return OfferIn(
            upstream_id=slugify(tier["name"].split("(")[0]),
            name=f"Render Network {tier['name']}",
            kind="gpu-compute",
            description=tier.get("notes", "")[:2000],
            native_price=f"{tier['obh_per_render']} OBh per RENDER (nominal)",
            price_source="sheet",
            price_source_url=sheet["source_url"],
            price_source_date=sheet["read_on_date"],
            price_note=(
                f"From Render's knowledge base{dated}. OctaneBench-hours are not GPU-hours "
                "and no USD rate is published, so no USD price is shown."
            ),
        )

    def authenticate(self) -> AuthResult:
        self.client.request("GET", "/")
        return AuthResult(
            ok=True,
            detail=f"{self.provider.effective_base_url} is reachable. Render has no pricing "
            "API; prices come from the sourced sheet.",
        )

"""DeepInfra: public model catalogs with typed prices; no key needed to list.

Follows (read 2026-11-23 through stored copies):
- `GET /models/list` — every model with `model_name`, `type` (the task), `max_tokens`,
  `deprecated` (Unix time, possibly in the future, or null), `replaced_by`, `tags` ("tools",
  "json": capabilities) and a typed `pricing` object. `rate_per_input_token_cached` is a
  multiplier of the input price, not a price (DeepInfra's OpenAPI `TokenPricing`; models.dev's
  DeepInfra sync reads it so): 0.5 on a $0.26 input is $0.13 per 1M cached input tokens. Pricing
  types
  and fields per DeepInfra's OpenAPI spec: `tokens` / `input_tokens` (`cents_per_input_token`,
  `cents_per_output_token`, US cents per token), `image_units` (`cents_per_image_unit` with
  `default_width`/`default_height`/`default_iterations`), `time` (`cents_per_sec`),
  `input_length` (`cents_per_input_sec`), `input_character_length` (`cents_per_input_chars`)…
- `GET /v1/openai/models` — `data[].metadata{context_length, pricing{input_tokens,
  output_tokens}}` in USD per 1M tokens; `metadata` may be null. Used for context length.
- `GET /v1/me` (Bearer) — account identity; the catalogs answer without a key, so this is the
  call that proves one.
- `POST /v1/openai/chat/completions` — OpenAI-compatible; `usage.estimated_cost` is USD.
- `POST /v1/openai/embeddings` — OpenAI-compatible embeddings (same `usage` shape).
Model ids are case-sensitive: the upstream id is kept exactly, only canonical_id is lowered.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from providers.adapters.base import (
    AuthResult,
    Catalog,
    OfferIn,
    OpenAIChatMixin,
    ProviderAdapter,
    usd,
)
from resilience.errors import BadPayload
from resilience.policy import reference_data

CENTS_PER_TOKEN_TO_USD_PER_1M = Decimal(10_000)  # ¢/token ÷ 100 × 1,000,000


# `/models/list` items carry `tags`; these two say what a call may use (the recorded payload:
# "tools" on models that accept `tools`, "json" on those with `response_format` JSON mode).
CAPABILITY_TAGS = {"tools": "tools", "json": "json-mode"}


class DeepInfraAdapter(OpenAIChatMixin, ProviderAdapter):
    console_url = "https://deepinfra.com/models"

    @classmethod
    def page_url(cls, upstream_id: str) -> str:
        return f"https://deepinfra.com/{upstream_id}"  # the model's page, with its playground

    chat_path = "/v1/openai/chat/completions"
    embeddings_path = "/v1/openai/embeddings"

    def list_models(self) -> Catalog:
        models = self.client.get_json("/models/list", headers=self.auth_headers())
        if not isinstance(models, list):
            raise BadPayload(f"{self.slug}: /models/list is not a list")
        contexts = self._context_lengths()
        region = (self.provider.regions or [""])[0]
        return Catalog.parse(self.slug, models, lambda item: self._offer(item, contexts, region))

    def _context_lengths(self) -> dict[str, int]:
        with reference_data():  # no prices here; keyless, the health check fetched it too
            body = self.client.get_json("/v1/openai/models", headers=self.auth_headers())
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise BadPayload(f"{self.slug}: /v1/openai/models has no data list")
        return {
            m["id"]: m["metadata"]["context_length"]
            for m in body["data"]
            if isinstance(m, dict) and (m.get("metadata") or {}).get("context_length")
        }

    def _offer(self, item: dict[str, Any], contexts: dict[str, int], region: str) -> OfferIn:
        model_id = item["model_name"]
        retired = _deprecated_at(item.get("deprecated"))
        offer = OfferIn(
            upstream_id=model_id,
            name=model_id,
            kind="llm-inference",
            region=region,
            task_tag=item.get("type") or "",  # mapped in providers.vocabulary
            description=(item.get("description") or "")[:2000],
            context_length=contexts.get(model_id) or item.get("max_tokens"),
            capabilities=[
                CAPABILITY_TAGS[t] for t in item.get("tags") or [] if t in CAPABILITY_TAGS
            ],
            available=not (retired and retired <= datetime.now(UTC)),
            deprecated_at=retired,
            replaced_by=item.get("replaced_by") or "",
        )
        self._apply_pricing(offer, item["pricing"])
        return offer

    @staticmethod
    def _apply_pricing(offer: OfferIn, pricing: dict[str, Any]) -> None:
        kind = pricing["type"]
        if kind in ("tokens", "input_tokens"):
            offer.usd_per_1m_input = usd(
                Decimal(str(pricing["cents_per_input_token"])) * CENTS_PER_TOKEN_TO_USD_PER_1M
            )
            if pricing.get("cents_per_output_token") is not None:
                offer.usd_per_1m_output = usd(
                    Decimal(str(pricing["cents_per_output_token"])) * CENTS_PER_TOKEN_TO_USD_PER_1M
                )
            if pricing.get("rate_per_input_token_cached") is not None:  # × the input price
                rate = Decimal(str(pricing["rate_per_input_token_cached"]))
                offer.usd_per_1m_cached_input = usd(offer.usd_per_1m_input * rate)
        elif kind == "image_units":
            offer.usd_per_image = usd(Decimal(str(pricing["cents_per_image_unit"])) / 100)
            offer.price_note = (
                f"Per image at {pricing.get('default_width')}×{pricing.get('default_height')}, "
                f"{pricing.get('default_iterations')} steps; other sizes scale."
            )
        else:
            # Per second of compute or audio, per character…: no normalised unit of ours fits,
            # so the provider's own unit is shown as stated, never converted by guesswork.
            cents = {k: v for k, v in pricing.items() if k.startswith("cents_per")}
            offer.native_price = ", ".join(
                f"${Decimal(str(v)) / 100:f} {k.removeprefix('cents_')}".replace("_", " ")
                for k, v in cents.items()
            )

    def authenticate(self) -> AuthResult:
        if not self.provider.api_key():
            self.client.get_json("/v1/openai/models")
            return AuthResult(ok=True, detail="No key set; the public catalog answers.")
        me = self.client.get_json("/v1/me", headers=self.auth_headers(required=True))
        return AuthResult(ok=True, detail=f"Key accepted for account {me.get('uid', '?')}.")


def _deprecated_at(value: Any) -> datetime | None:
    """`deprecated` as a moment: Unix seconds; null or anything else is no date."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return datetime.fromtimestamp(value, tz=UTC)

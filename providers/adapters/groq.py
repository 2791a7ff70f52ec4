"""Groq: a keyed model list and a dated price sheet (Groq publishes no price API).

Follows (read 2026-11-23 through stored copies of console.groq.com/docs/models and captured
responses): `GET {GROQ_BASE_URL}/openai/v1/models` with `Authorization: Bearer <key>` returns
`data[]` of `id`, `owned_by`, `active`, `context_window`, `max_completion_tokens`. There is no
`/v1/pricing`; prices come from `providers/price_sheets/groq.json` (source URL and date inside)
and a model missing from the sheet has an unknown price, never a guessed one; the sheet also
carries Groq's shutdown dates and replacements (console.groq.com/docs/deprecations). 429s carry
`retry-after`; every response carries `x-ratelimit-*`. Chat: `POST /openai/v1/chat/completions`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from providers.adapters.base import (
    AuthResult,
    Catalog,
    OfferIn,
    OpenAIChatMixin,
    ProviderAdapter,
    load_price_sheet,
    price_read_on,
    usd,
)
from resilience.errors import BadPayload

# Groq's ids name the task for its non-chat models (tags mapped in providers.vocabulary).
TASK_HINTS = {
    "whisper": "automatic-speech-recognition",
    "tts": "text-to-speech",
    "playai": "text-to-speech",
    "guard": "moderation",
}


class GroqAdapter(OpenAIChatMixin, ProviderAdapter):
    console_url = "https://console.groq.com"
    chat_path = "/openai/v1/chat/completions"

    def _models(self) -> list[dict[str, Any]]:
        body = self.client.get_json("/openai/v1/models", headers=self.auth_headers(required=True))
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise BadPayload(f"{self.slug}: /openai/v1/models has no data list")
        return body["data"]

    def list_models(self) -> Catalog:
        models = self._models()
        sheet = load_price_sheet("groq")
        return Catalog.parse(self.slug, models, lambda item: self._offer(item, sheet))

    def _offer(self, item: dict[str, Any], sheet: dict[str, Any]) -> OfferIn:
        model_id = item["id"]
        price = sheet["models"].get(model_id)
        offer = OfferIn(
            upstream_id=model_id,
            name=model_id,
            kind="llm-inference",
            region=(self.provider.regions or [""])[0],
            task_tag=next(
                (t for hint, t in TASK_HINTS.items() if hint in model_id), "text-generation"
            ),
            context_length=item.get("context_window"),
            available=item.get("active", True) is not False,
            price_source="sheet",
        )
        if price:
            offer.usd_per_1m_input = usd(price.get("input"))
            offer.usd_per_1m_output = usd(price.get("output"))
            offer.usd_per_1m_cached_input = usd(price.get("cached_input"))  # a prompt-cache hit
            offer.native_price = price.get("native_price", "")  # per audio hour: not converted
            offer.price_source_url = price.get("source_url") or sheet["source_url"]
            offer.price_source_date = price_read_on(sheet, price)
            offer.deprecated_at = _shutdown(price.get("deprecated"))
            offer.replaced_by = price.get("replaced_by") or ""
        else:
            offer.price_note = "Not on Groq's published price sheet: price unknown."
        return offer

    def authenticate(self) -> AuthResult:
        return AuthResult(ok=True, detail=f"Key accepted; {len(self._models())} models listed.")


def _shutdown(day: str | None) -> datetime | None:
    """Groq's shutdown date (console.groq.com/docs/deprecations) as the start of that day, UTC."""
    return datetime.combine(date.fromisoformat(day), time(), tzinfo=UTC) if day else None

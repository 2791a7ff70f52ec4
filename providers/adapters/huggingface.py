"""Hugging Face Inference Providers: one offer per (model, serving provider).

Follows (read 2026-11-23 through stored copies of huggingface/hub-docs
`docs/inference-providers/hub-api.md` and `docs/hub/rate-limits.md`):
- Router `GET {HUGGINGFACE_BASE_URL}/v1/models` (token optional): `data[]` with `id`,
  `architecture{input_modalities, output_modalities}` and `providers[]` of `provider`,
  `status` (live / error), `context_length`, `pricing{input, output}` in USD per 1M tokens
  (absent: price unknown), `throughput` (tokens/s), `first_token_latency_ms`.
- Hub `GET {HUGGINGFACE_HUB_URL}/api/models?inference_provider=all` for `pipeline_tag`, paged
  by `Link: <…cursor=…>; rel="next"`; `GET /api/whoami-v2` (Bearer) proves a token.
- 429s carry `RateLimit: "api";r=<remaining>;t=<seconds>`, not Retry-After (handled in
  resilience/client.py).
- Chat: `POST /v1/chat/completions` on the router; `model` may be `<id>:<provider>`, which is
  the upstream id used here.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from providers.adapters.base import (
    AuthResult,
    Catalog,
    OfferIn,
    OpenAIChatMixin,
    ProviderAdapter,
    usd,
)
from resilience.client import ProviderClient
from resilience.errors import BadPayload
from resilience.policy import reference_data

HUB_PAGE_SIZE = 1000
# Task from the router's modalities when the Hub has no pipeline tag for a model.
MODALITY_TASKS = {"image": "image", "audio": "audio", "embeddings": "embedding"}


class HuggingFaceAdapter(OpenAIChatMixin, ProviderAdapter):
    console_url = "https://huggingface.co/inference/models"

    @classmethod
    def page_url(cls, upstream_id: str) -> str:
        model_id = upstream_id.rsplit(":", 1)[0]  # "<model id>:<serving provider>"
        return f"https://huggingface.co/{model_id}"  # lists its inference providers

    chat_path = "/v1/chat/completions"

    def __init__(self, provider):
        super().__init__(provider)
        self.hub = ProviderClient(provider.policy(base_url=settings.HUGGINGFACE_HUB_URL))

    @property
    def calls(self) -> int:
        return self.client.calls + self.hub.calls

    def close(self) -> None:
        super().close()
        self.hub.close()

    def list_models(self) -> Catalog:
        body = self.client.get_json("/v1/models", headers=self.auth_headers())
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise BadPayload(f"{self.slug}: /v1/models has no data list")
        tags = self._pipeline_tags()
        return Catalog.parse(
            self.slug,
            body["data"],
            lambda model: [self._offer(model, route, tags) for route in model["providers"]],
        )

    def _pipeline_tags(self) -> dict[str, str]:
        params = {"inference_provider": "all", "limit": HUB_PAGE_SIZE, "expand[]": "pipeline_tag"}
        tags: dict[str, str] = {}
        with reference_data():  # task tags, no prices: a re-poll within the TTL reuses them
            pages = self.hub.paginate("/api/models", params=params, headers=self.auth_headers())
            for page in pages:
                if not isinstance(page, list):
                    raise BadPayload(f"{self.slug}: Hub /api/models is not a list")
                tags.update({m["id"]: m["pipeline_tag"] for m in page if m.get("pipeline_tag")})
        return tags

    def _offer(self, model: dict[str, Any], route: dict[str, Any], tags: dict[str, str]) -> OfferIn:
        model_id, served_by = model["id"], route["provider"]
        pricing = route.get("pricing") or {}
        return OfferIn(
            upstream_id=f"{model_id}:{served_by}",
            canonical_id=model_id,
            name=model_id,
            kind="llm-inference",
            region=(self.provider.regions or [""])[0],
            task_tag=tags.get(model_id) or _task_from_modalities(model.get("architecture") or {}),
            serving_provider=served_by,
            context_length=route.get("context_length"),
            usd_per_1m_input=usd(pricing.get("input")),
            usd_per_1m_output=usd(pricing.get("output")),
            throughput_tps=route.get("throughput"),
            latency_ms=route.get("first_token_latency_ms"),
            capabilities=_capabilities(model, route),
            available=route.get("status") == "live",
        )

    def authenticate(self) -> AuthResult:
        if not self.provider.api_key():
            self.client.get_json("/v1/models")
            return AuthResult(ok=True, detail="No token set; the public router catalog answers.")
        me = self.hub.get_json("/api/whoami-v2", headers=self.auth_headers(required=True))
        return AuthResult(ok=True, detail=f"Token accepted for {me.get('name', '?')}.")


def _capabilities(model: dict[str, Any], route: dict[str, Any]) -> list[str]:
    """What the router reports: per route `supports_tools` and `supports_structured_output`
    (only a true value says something), per model its input and output modalities."""
    found = [name for key, name in ROUTE_FLAGS.items() if route.get(key) is True]
    architecture = model.get("architecture") or {}
    for side in ("input", "output"):
        found += [f"{side}:{m}" for m in architecture.get(f"{side}_modalities") or []]
    return found


ROUTE_FLAGS = {"supports_tools": "tools", "supports_structured_output": "structured-output"}


def _task_from_modalities(architecture: dict[str, Any]) -> str:
    outputs = architecture.get("output_modalities") or []
    for modality, task in MODALITY_TASKS.items():
        if modality in outputs:
            return task
    return "text-generation" if "text" in outputs else ""

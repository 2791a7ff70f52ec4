"""The provider interface every adapter implements, and the typed records it returns.

Adapters parse the wire format at the edge: nothing past an adapter reads raw JSON, and
units are converted once, in the adapter, with the source of the unit beside the conversion.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from providers.vocabulary import task_for
from resilience.client import ProviderClient
from resilience.errors import MissingKey, NotSupported

if TYPE_CHECKING:
    from providers.models import Provider

logger = logging.getLogger(__name__)

PRICE_SHEETS = Path(__file__).resolve().parent.parent / "price_sheets"
PRICE_FIELDS = (
    "usd_per_1m_input",
    "usd_per_1m_output",
    "usd_per_1m_cached_input",
    "usd_per_image",
    "usd_per_gpu_hour",
    "usd_per_gpu_hour_min",
    "usd_per_gpu_hour_max",
    "usd_per_instance_hour",
)


# The price columns hold 14 digits, 6 of them decimals.
MAX_PRICE = Decimal("99999999")


def usd(value: Any) -> Decimal | None:
    """A price as Decimal, or None when the provider did not state one. NaN, infinities,
    negative prices and prices past the columns' range are malformed items (ValueError)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("a price cannot be true or false")
    price = Decimal(str(value))
    if not price.is_finite() or price < 0 or price > MAX_PRICE:
        raise ValueError(f"not a price: {str(value)[:20]}")
    return price.quantize(Decimal("0.000001"))


def integer(value: Any) -> int:
    """A count from a payload: a missing or non-numeric one is a malformed item (ValueError),
    not a TypeError, which Catalog keeps for bugs."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"expected a number, got {type(value).__name__}")
    return int(value)


@dataclass
class OfferIn:
    """One offer as an adapter parsed it, already in GPUBroker's units."""

    upstream_id: str
    name: str
    kind: str
    canonical_id: str = ""  # lowercase, for matching across providers; default: upstream id
    region: str = ""
    task: str = ""  # set from task_tag through providers.vocabulary
    task_tag: str = ""  # the provider's own tag; default: what `task` was given as
    serving_provider: str = ""
    description: str = ""
    context_length: int | None = None
    country: str = ""
    compliance_tags: list[str] = field(default_factory=list)
    usd_per_1m_input: Decimal | None = None
    usd_per_1m_output: Decimal | None = None
    usd_per_1m_cached_input: Decimal | None = None
    usd_per_image: Decimal | None = None
    usd_per_gpu_hour: Decimal | None = None
    usd_per_gpu_hour_min: Decimal | None = None
    usd_per_gpu_hour_max: Decimal | None = None
    usd_per_instance_hour: Decimal | None = None
    native_price: str = ""
    price_source: str = "api"
    price_source_url: str = ""
    price_source_date: date | None = None
    price_note: str = ""
    price_flags: list[str] = field(default_factory=list)  # codes of providers.models.PRICE_FLAGS
    deprecated_at: datetime | None = None
    replaced_by: str = ""
    throughput_tps: float | None = None
    latency_ms: float | None = None
    gpu_name: str = ""
    gpu_id: int | None = None  # the GpuModel the name normalised to (providers/gpus.py)
    llm_model_id: int | None = None  # the LlmModel the name identified (providers/llm_models.py)
    gpu_count: int | None = None
    vram_gb: float | None = None  # the GPU's spec size once normalised (providers/gpus.py)
    vram_reported_gb: float | None = None  # the provider's own figure, when it differs
    vcpus: float | None = None
    ram_gb: float | None = None
    disk_gb: float | None = None
    reliability: float | None = None
    interruptible: bool | None = None
    verified: bool | None = None  # the provider vouches for the host (Vast.ai's verification)
    cuda_version: float | None = None  # the newest CUDA the host's driver runs (Vast.ai)
    availability_count: int | None = None
    benchmark_score: float | None = None
    # What the payload says the model supports, never guessed: "tools", "structured-output",
    # "json-mode", "input:image", "output:text" (providers.models.CAPABILITY_LABELS).
    capabilities: list[str] = field(default_factory=list)
    available: bool = True

    def __post_init__(self) -> None:
        self.canonical_id = (self.canonical_id or self.upstream_id).lower()
        self.task_tag = self.task_tag or self.task
        self.task = task_for(self.task_tag)
        if not self.compliance_tags or not any(
            t.startswith("region=") for t in self.compliance_tags
        ):
            self.compliance_tags = [
                f"region={self.region or 'unspecified'}",
                *self.compliance_tags,
            ]
        if self.region == "eu" and "gdpr" not in self.compliance_tags:
            # Served in the EU/EEA (providers/geo.py), where the GDPR applies.
            self.compliance_tags = [*self.compliance_tags, "gdpr"]

    def prices(self) -> dict[str, Decimal | None]:
        return {name: getattr(self, name) for name in PRICE_FIELDS}


@dataclass
class Catalog:
    """What one poll of a provider produced: the offers, and the items it had to skip."""

    offers: list[OfferIn] = field(default_factory=list)
    skipped: int = 0
    parsed: int = 0  # items parsed (an item may give several offers)
    unknown_gpus: Counter[str] = field(default_factory=Counter)  # spelling → offers
    unknown_models: Counter[str] = field(default_factory=Counter)  # model name → offers

    # What a parser raises on an item missing a field (KeyError) or mangling one (ValueError,
    # ArithmeticError: a price that is no number). Not TypeError or AttributeError: those are
    # bugs in the adapter, and a bug skipping every item would look like an empty catalog.
    ITEM_ERRORS = (KeyError, ValueError, ArithmeticError)

    @classmethod
    def parse(cls, slug: str, items: Iterable[Any], parse_item: Callable) -> Catalog:
        return cls().add_parsed(slug, items, parse_item)

    def add_parsed(self, slug: str, items: Iterable[Any], parse_item: Callable) -> Catalog:
        """Parse every item with `parse_item` (returning one OfferIn or a list of them);
        an item it cannot parse is skipped, logged and counted, and the rest are kept."""
        for item in items:
            if not isinstance(item, dict):  # every provider lists JSON objects
                self.skip(item, f"not an object: {type(item).__name__}", slug)
                continue
            try:
                parsed = parse_item(item)
            except self.ITEM_ERRORS as exc:
                self.skip(item, f"{type(exc).__name__}: {exc}", slug)
                continue
            self.offers.extend(parsed if isinstance(parsed, list) else [parsed])
            self.parsed += 1
        return self

    @property
    def bad_share(self) -> float:
        """The share of items that could not be parsed."""
        total = self.parsed + self.skipped
        return self.skipped / total if total else 0.0

    def skip(self, item: Any, reason: str, slug: str) -> None:
        self.skipped += 1
        ident = item.get("id") or item.get("model_name") if isinstance(item, dict) else None
        logger.warning("%s: skipped item %r: %s", slug, ident, reason)


@dataclass
class AuthResult:
    ok: bool
    detail: str = ""


class OpenAIChatMixin:
    """run_inference for providers with an OpenAI-compatible chat completions endpoint."""

    chat_path: str

    def run_inference(self, payload: dict[str, Any]) -> dict[str, Any]:
        response = self.client.request(
            "POST", self.chat_path, json=payload, headers=self.auth_headers(required=True)
        )
        return self.client.json(response)


class ProviderAdapter:
    """One class per provider. Subclasses set their paths and parse their payloads."""

    console_url = ""
    polls_network = True  # False: its catalog is a shipped price sheet (no call to make)
    # OpenAI-compatible inference paths on the provider's base URL ("": not offered); the
    # broker sends requests there.
    chat_path = ""
    embeddings_path = ""

    @classmethod
    def page_url(cls, upstream_id: str) -> str:
        """Where an offer is rented or called at the provider: its model page where the
        provider has one per offer, else the console."""
        return cls.console_url

    def __init__(self, provider: Provider):
        self.provider = provider
        self.slug = provider.slug
        self.client = ProviderClient(provider.policy())

    @property
    def calls(self) -> int:
        return self.client.calls

    def close(self) -> None:
        self.client.close()

    def api_key(self, *, required: bool) -> str:
        key = self.provider.api_key()
        if required and not key:
            raise MissingKey(
                f"{self.slug}: no API key configured "
                f"(set {self.provider.env_prefix}_API_KEY or add one in admin)"
            )
        return key

    def auth_headers(self, *, required: bool | None = None) -> dict[str, str]:
        key = self.api_key(required=self.provider.key_required if required is None else required)
        return {"Authorization": f"Bearer {key}"} if key else {}

    # --- the provider interface -----------------------------------------------------------
    def list_models(self) -> Catalog:
        """Everything the provider sells now, priced where a price is known."""
        raise NotImplementedError

    def get_pricing(self) -> dict[str, dict[str, Decimal | None]]:
        """Prices by upstream id (from the same catalog call: no provider has a separate one)."""
        return {offer.upstream_id: offer.prices() for offer in self.list_models().offers}

    def authenticate(self) -> AuthResult:
        """The cheapest call that proves the key (or, keyless, that the API answers)."""
        self.list_models()
        return AuthResult(ok=True)

    def run_inference(self, payload: dict[str, Any]) -> dict[str, Any]:
        raise NotSupported(f"{self.slug}: inference is not supported; see {self.console_url}")

    # --- renting a GPU offer ----------------------------------------------------------------
    creates_instances = False  # True where rent() creates an instance through the API

    def check_rentable(self) -> None:
        """Raise NotSupported, naming where to rent instead, unless rent() can rent by API."""
        if not self.creates_instances:
            raise NotSupported(
                f"{self.slug}: renting through the API is not supported; use {self.console_url}"
            )

    def rent(self, upstream_id: str, instance: dict[str, Any]) -> dict[str, Any]:
        """Create a billed instance of the offer `upstream_id`; `instance` is the provider's
        create-instance body. Costs money: only the admin's rent action calls this."""
        self.check_rentable()
        raise NotImplementedError

    def health_check(self) -> AuthResult:
        return self.authenticate()


def load_price_sheet(name: str) -> dict[str, Any]:
    """A dated, sourced price sheet shipped in providers/price_sheets/."""
    sheet = json.loads((PRICE_SHEETS / f"{name}.json").read_text())
    sheet["read_on_date"] = date.fromisoformat(sheet["read_on"]) if sheet["read_on"] else None
    return sheet


def price_read_on(sheet: dict[str, Any], entry: dict[str, Any]) -> date | None:
    """The date of the copy an entry's price was read from: its own `read_on` where it has
    one (null: no dated copy was found, so the date is unknown), else the sheet's."""
    if "read_on" not in entry:
        return sheet["read_on_date"]
    return date.fromisoformat(entry["read_on"]) if entry["read_on"] else None


def price_sheets(today: date, max_age_days: int) -> list[dict[str, Any]]:
    """Every shipped price sheet: its name, source, the date its oldest price was read, that
    price's age in days and whether it is stale (older than `max_age_days`, or undated)."""
    sheets = []
    for path in sorted(PRICE_SHEETS.glob("*.json")):
        sheet = load_price_sheet(path.stem)
        entries = sheet.get("models") if isinstance(sheet.get("models"), dict) else {}
        dates = [price_read_on(sheet, e) for e in entries.values() if isinstance(e, dict)]
        oldest = min((d for d in dates if d), default=sheet["read_on_date"])
        age = (today - oldest).days if oldest else None
        sheets.append(
            {
                "name": path.stem,
                "source_url": sheet.get("source_url", ""),
                "oldest": oldest,
                "age_days": age,
                "stale": age is None or age > max_age_days,
            }
        )
    return sheets

"""The public catalog API: read-only, no key. /api/v1/models, /pricing, /offers/<id>, /gpus.

Parameters and answers are pydantic schemas (django-ninja), so the OpenAPI document at
/api/v1/openapi.json and the browsable docs at /api/v1/docs are generated from this module,
never written by hand. A bad parameter is a 422 naming the field and the reason, never a 500.
Every answer carries an ETag and Last-Modified (a repeat is a 304) and a Cache-Control
max-age running to the next poll; each client IP gets API_RATE_LIMIT requests a minute.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import Annotated, Any, Literal

from django.db import connection
from django.db.models import Count, F, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.utils import timezone
from django.utils.cache import get_conditional_response, patch_cache_control
from django.utils.http import http_date
from ninja import Field, NinjaAPI, Path, Query, Schema
from ninja.errors import Throttled
from pydantic import BaseModel, TypeAdapter

from marketplace import catalog, export
from marketplace.ratelimit import ClientRateLimit
from providers.models import GpuModel, Kind, LlmModel, Offer, PriceChange, Provider
from providers.vocabulary import TASKS

api = NinjaAPI(
    title="GPUBroker catalog API",
    version="1",
    description=(
        "Who serves a model or rents a GPU, for how much, and whether they are healthy. "
        "Prices are in normalised units (USD per 1M tokens, per image, per GPU-hour); an "
        "unknown price is null, never 0. Read-only, no key; rate-limited per client IP."
    ),
    urls_namespace="catalog-api",
    docs_url="/docs",
    openapi_url="/openapi.json",
    throttle=[ClientRateLimit()],
)


@api.exception_handler(Throttled)
def throttled(request: HttpRequest, exc: Throttled) -> HttpResponse:
    response = api.create_response(
        request, {"detail": "Too many requests from this address; retry later."}, status=429
    )
    response["Retry-After"] = str(exc.wait or 1)
    return response


# --- parameters -----------------------------------------------------------------------------
# Printable text: a NUL (which PostgreSQL refuses) or another control character is a 422,
# and the schema says so, so clients (and the contract test) know before asking.
Text = Annotated[str, Field(max_length=100, pattern=r"^[^\x00-\x1F\x7F]*$")]
Slug = Annotated[str, Field(pattern=r"^[-a-zA-Z0-9_]{1,50}$")]
MAX_ID = 2**63 - 1


class CatalogFilters(Schema):
    """The marketplace's filters. Repeat provider, region and gpu for any of several."""

    provider: list[Slug] = Field(default=[], description="Provider slug, e.g. deepinfra.")
    region: list[Text] = Field(default=[], description="Region as the provider names it.")
    gpu: list[Text] = Field(default=[], description="GPU model, e.g. 'H100 SXM 80GB'.")
    task: Literal[TASKS] | None = Field(default=None, description="One task of the vocabulary.")  # type: ignore[valid-type]
    kind: Literal["llm", "gpu"] | None = None
    min_vram: float | None = Field(default=None, ge=0, le=10_000, allow_inf_nan=False)
    max_price: float | None = Field(
        default=None,
        ge=0,
        le=99_999_999,
        allow_inf_nan=False,
        description="In the offer's unit: per 1M input tokens, per image or per GPU-hour.",
    )
    min_context: int | None = Field(default=None, ge=0, le=2**31 - 1)
    q: Text | None = Field(default=None, description="Part of the offer's name.")
    unavailable: bool = Field(default=False, description="Include offers not on sale now.")


class PageParams(Schema):
    cursor: int | None = Field(
        default=None,
        ge=0,
        le=MAX_ID,
        description="next_cursor of the previous page (the id its last item had).",
    )
    limit: int = Field(default=100, ge=1, le=500)


def _filters(params: CatalogFilters) -> catalog.Filters:
    """A provider slug no provider has matches nothing, as on the marketplace; a price
    ceiling counts to the micro-dollar, as prices are stored."""
    values = params.dict()
    if values["max_price"] is not None:
        values["max_price"] = Decimal(str(values["max_price"])).quantize(Decimal("0.000001"))
    return catalog.Filters(**values)


# --- answers ---------------------------------------------------------------------------------
# Plain pydantic models: ninja's Schema reads values through a getter meant for ORM objects,
# which cost ~0.2 ms a row; these answers are built from dicts.
class Prices(BaseModel):
    usd_per_1m_input: float | None
    usd_per_1m_output: float | None
    usd_per_image: float | None
    usd_per_gpu_hour: float | None = Field(description="A market range's median, if stated.")
    usd_per_gpu_hour_min: float | None
    usd_per_gpu_hour_max: float | None
    usd_per_instance_hour: float | None
    native_price: str = Field(description="A price in a unit we do not convert, as stated.")
    price_source: Literal["api", "sheet"]
    price_source_url: str
    price_source_date: date | None


class PriceRow(Prices):
    id: int
    provider: str
    provider_health: str = Field(
        description="ok, stale, failing, never-polled, no-key or disabled."
    )
    kind: str
    name: str
    upstream_id: str = Field(description="The exact id to call the provider with.")
    model: str | None = Field(description="Canonical model id (LLM offers).")
    serving_provider: str
    region: str
    country: str
    task: str
    task_tag: str = Field(description="The provider's own task tag.")
    context_length: int | None
    throughput_tps: float | None
    latency_ms: float | None = Field(description="First-token latency, where reported.")
    gpu: str = Field(description="GPU model in the shared vocabulary (or as spelt).")
    gpu_count: int | None
    vram_gb: float | None
    status: Literal["available", "unavailable"]
    seen_at: datetime = Field(description="When a poll last listed this offer.")
    last_price_change: datetime | None


class Problem(BaseModel):
    detail: str


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="Where: ['query', '<parameter>'].")
    msg: str = Field(description="Why the value was refused.")
    type: str


class Invalid(BaseModel):
    detail: list[FieldError]


ERRORS = {304: None, 422: Invalid, 429: Problem}


class PricingPage(BaseModel):
    items: list[PriceRow]
    next_cursor: int | None


class ModelOut(BaseModel):
    id: str = Field(description="Lowercase Hugging Face repo id, or provider:name if unknown.")
    display_name: str
    identity: Literal["repo-id", "alias", "unknown"]
    task: str
    context_length: int | None
    offers: list[PriceRow]


class ModelsPage(BaseModel):
    items: list[ModelOut]
    next_cursor: int | None


class PriceChangeOut(BaseModel):
    field: str
    old: float | None
    new: float | None
    at: datetime


class OfferOut(PriceRow):
    price_note: str
    first_seen: datetime
    price_history: list[PriceChangeOut]


class GpuOut(BaseModel):
    name: str
    vendor: str
    architecture: str
    memory_gb: float | None
    bf16_tflops: float | None
    fp16_tflops: float | None
    memory_bandwidth_gbps: float | None
    source: str
    aliases: list[str]
    offers_available: int


ROW_FIELDS = [
    "id",
    "provider_id",
    "kind",
    "name",
    "upstream_id",
    "serving_provider",
    "region",
    "country",
    "task",
    "task_tag",
    "context_length",
    "throughput_tps",
    "latency_ms",
    "gpu_name",
    "gpu_count",
    "vram_gb",
    "available",
    "last_seen",
    "last_price_change",
    *Prices.model_fields,
]


def _rows(ids: QuerySet[Offer], providers: list[Provider]) -> list[tuple[int, str]]:
    """Each offer `ids` (a `values("id")` query) selects, as (id, its PriceRow as JSON), in
    that query's order: written by PostgreSQL (catalog.json_rows); elsewhere (the embedded
    SQLite) by the schema from Python dicts."""
    if connection.vendor == "postgresql":
        return catalog.json_rows(ids, providers)
    return _rows_in_python(ids, providers)


def _rows_in_python(ids: QuerySet[Offer], providers: list[Provider]) -> list[tuple[int, str]]:
    pks = [row["id"] for row in ids]
    by_pk = {p.pk: p for p in providers}
    now = timezone.now()
    found = Offer.objects.filter(pk__in=pks).values(*ROW_FIELDS, model=F("llm_model__canonical"))
    rows = {row["id"]: catalog.price_row(row, by_pk, now) for row in found}
    adapter = _adapter(PriceRow)
    return [(pk, adapter.dump_json(adapter.validate_python(rows[pk])).decode()) for pk in pks]


def _parsed(ids: QuerySet[Offer], providers: list[Provider]) -> list[dict]:
    return [json.loads(text) for _, text in _rows(ids, providers)]


def _conditional(
    request: HttpRequest, providers: list[Provider], build: Callable[[], Any], schema: Any = None
):
    """Answer 304 to a repeat, else build the answer (validated and serialised by its
    schema, as ninja would, unless `build` made the response itself: the CSV stream, a
    pricing page of JSON rows); either way with the validators."""
    found = catalog.validators(request.get_full_path(), providers)
    last_modified = int(found.last_modified.timestamp()) if found.last_modified else None
    response = get_conditional_response(request, etag=found.etag, last_modified=last_modified)
    if response is None:
        body = build()
        if isinstance(body, HttpResponseBase):
            response = body
        else:
            adapter = _adapter(schema)
            content = adapter.dump_json(adapter.validate_python(body))
            response = HttpResponse(content, content_type="application/json; charset=utf-8")
    response["ETag"] = found.etag
    if found.last_modified:
        response["Last-Modified"] = http_date(last_modified)
    patch_cache_control(response, public=True, max_age=found.max_age)
    return response


@cache
def _adapter(schema: Any) -> TypeAdapter:
    return TypeAdapter(schema)


# --- endpoints ------------------------------------------------------------------------------
CSV = {"responses": {200: {"content": {"text/csv": {"schema": {"type": "string"}}}}}}


@api.get(
    "/pricing",
    response={200: PricingPage, **ERRORS},
    summary="One row per offer, flat",
    openapi_extra=CSV,
)
def pricing(
    request: HttpRequest,
    filters: Query[CatalogFilters],
    page: Query[PageParams],
    format: Literal["json", "csv"] = "json",
):
    """Every offer matching the filters, by id. `format=csv` streams every matching offer
    as CSV (no paging)."""
    providers = catalog.providers()
    chosen = _filters(filters)
    offers = chosen.apply(Offer.objects.all(), providers)
    if format == "csv":
        return _conditional(request, providers, lambda: export.csv_response(offers))
    after = page.cursor or 0

    def build() -> HttpResponse:
        window = offers.filter(id__gt=after).order_by(*chosen.id_order()).values("id")
        rows = _rows(window[: page.limit + 1], providers)
        more = len(rows) > page.limit
        rows = rows[: page.limit]
        # The rows are JSON already (PricingPage's items): joined, not parsed again.
        items = ",".join(text for _, text in rows)
        cursor = rows[-1][0] if more else None
        content = f'{{"items":[{items}],"next_cursor":{json.dumps(cursor)}}}'
        return HttpResponse(content, content_type="application/json; charset=utf-8")

    return _conditional(request, providers, build)


@api.get(
    "/models",
    response={200: ModelsPage, **ERRORS},
    summary="Canonical models with their offers",
)
def models(request: HttpRequest, filters: Query[CatalogFilters], page: Query[PageParams]):
    """Models with at least one offer matching the filters, each with those offers, cheapest
    first. A model is one set of weights, whoever serves it (see `identity`)."""
    providers = catalog.providers()
    offers = _filters(filters).apply(Offer.objects.filter(llm_model__isnull=False), providers)
    after = page.cursor or 0

    def build() -> dict:
        ids = list(
            offers.filter(llm_model_id__gt=after)
            .order_by("llm_model_id")
            .values_list("llm_model_id", flat=True)
            .distinct()[: page.limit + 1]
        )
        more = len(ids) > page.limit
        ids = ids[: page.limit]
        chosen = offers.filter(llm_model_id__in=ids).order_by(
            F("unit_price").asc(nulls_last=True), "id"
        )
        by_model: dict[str, list[dict]] = {}
        for row in _parsed(chosen.values("id"), providers):
            by_model.setdefault(row["model"], []).append(row)
        items = [
            {
                "id": m.canonical,
                "display_name": m.display_name,
                "identity": m.identity,
                "task": m.task,
                "context_length": m.context_length,
                "offers": by_model.get(m.canonical, []),
            }
            for m in LlmModel.objects.filter(id__in=ids).order_by("id")
        ]
        return {"items": items, "next_cursor": ids[-1] if more else None}

    return _conditional(request, providers, build, ModelsPage)


@api.get(
    "/offers/{offer_id}",
    response={200: OfferOut, 404: Problem, **ERRORS},
    summary="One offer with its price history",
)
def offer(request: HttpRequest, offer_id: Annotated[int, Path(ge=1, le=MAX_ID)]):
    providers = catalog.providers()

    def build() -> dict:
        found = Offer.objects.filter(pk=offer_id)
        rows = _parsed(found.values("id"), providers)
        if not rows:
            raise Http404("No offer with this id.")
        extra = found.values("price_note", "first_seen").get()
        history = PriceChange.objects.filter(offer_id=offer_id).order_by("at", "id")
        return (
            rows[0] | extra | {"price_history": list(history.values(*PriceChangeOut.model_fields))}
        )

    return _conditional(request, providers, build, OfferOut)


@api.get("/gpus", response={200: list[GpuOut], **ERRORS}, summary="The GPU vocabulary")
def gpus(request: HttpRequest):
    """Every GPU model offers are normalised to, with spec-sheet figures and their source."""
    providers = catalog.providers()

    def build() -> list[dict]:
        on_sale = Offer.objects.filter(kind=Kind.GPU, available=True).values("gpu_name")
        counts = dict(on_sale.annotate(n=Count("*")).order_by().values_list("gpu_name", "n"))
        rows = GpuModel.objects.order_by("canonical").values(
            "canonical",
            "vendor",
            "architecture",
            "memory_gb",
            "bf16_tflops",
            "fp16_tflops",
            "memory_bandwidth_gbps",
            "source",
            "aliases",
        )
        return [
            {**row, "name": row["canonical"], "offers_available": counts.get(row["canonical"], 0)}
            for row in rows
        ]

    return _conditional(request, providers, build, list[GpuOut])

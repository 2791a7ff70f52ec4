"""The comparison pages' data: every offer of one model (or one GPU model) side by side,
cheapest healthy first, and the charts drawn from them."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal

from django.db.models import Count, F, Max, Min, QuerySet
from django.urls import reverse
from django.utils import timezone

from marketplace import catalog, charts
from marketplace.history import headline_field
from providers.models import UNIT_PRICE, Kind, LlmModel, Offer, PriceChange, Provider


def ranked(offers: QuerySet[Offer], providers: list[Provider]) -> list[Offer]:
    """The offers with their provider (and its `health`) and what the broker observed them do
    (`observed`: a providers.Observation, or None), cheapest healthy first: on sale at a
    healthy provider, then by price (unknown last)."""
    by_pk = {p.pk: p for p in providers}
    now = timezone.now()
    found = list(
        offers.annotate(unit_price=UNIT_PRICE).select_related("gpu", "llm_model", "observation")
    )
    for offer in found:
        offer.provider = by_pk[offer.provider_id]
        offer.health = catalog.health(offer.provider, now)
        offer.observed = getattr(offer, "observation", None)  # None: never served, or not lately
    return sorted(
        found,
        key=lambda o: (
            not (o.available and o.health == "ok"),
            o.unit_price is None,
            o.unit_price or 0,
            o.pk,
        ),
    )


def history_chart(offers: list[Offer], now: datetime | None = None) -> charts.Chart | None:
    """Each priced offer's headline price (per 1M input tokens, per image…) over time."""
    now = now or timezone.now()
    priced = [(o, headline_field(o)) for o in offers]
    priced = [(o, f) for o, f in priced if f][: len(charts.PALETTE)]
    if not priced:
        return None
    changes = defaultdict(list)
    fields = {f for _, f in priced}
    rows = PriceChange.objects.filter(offer__in=[o for o, _ in priced], field__in=fields)
    for change in rows.order_by("at", "id"):
        changes[(change.offer_id, change.field)].append(change)
    series = []
    for offer, name in priced:
        mine = changes[(offer.pk, name)]
        opening = mine[0].old if mine and mine[0].old is not None else getattr(offer, name)
        steps = [(offer.first_seen, opening), *((c.at, c.new) for c in mine if c.new is not None)]
        series.append((label(offer), steps))
    return charts.history(series, now)


def label(offer: Offer) -> str:
    served = f" via {offer.serving_provider}" if offer.serving_provider else ""
    region = f" ({offer.region})" if offer.kind == Kind.GPU and offer.region else ""
    return f"{offer.provider.name}{served}{region}"


def gpu_charts(offers: list[Offer]) -> tuple[charts.Chart | None, charts.Chart | None]:
    """Price spread per provider (ranges as ranges) and G-Score against price."""
    points: dict[str, list[Decimal]] = defaultdict(list)
    ranges: dict[str, list[tuple[Decimal, Decimal]]] = defaultdict(list)
    scored = []
    for offer in offers:
        if not offer.available:
            continue
        name = offer.provider.name
        if offer.usd_per_gpu_hour_min is not None and offer.usd_per_gpu_hour_max is not None:
            ranges[name].append((offer.usd_per_gpu_hour_min, offer.usd_per_gpu_hour_max))
        elif offer.usd_per_gpu_hour is not None:
            points[name].append(offer.usd_per_gpu_hour)
        price = offer.usd_per_gpu_hour or offer.usd_per_gpu_hour_min
        if offer.gscore is not None and price is not None:
            scored.append((name, price, offer.gscore))
    names = sorted(set(points) | set(ranges))
    spread = charts.distribution([(n, points[n], ranges[n]) for n in names])
    return spread, charts.scatter(scored)


def summary(offers: list[Offer]) -> dict:
    """ "31 offers at 4 providers · $1.21–$2.90": counts and the price span of those on sale."""
    on_sale = [o for o in offers if o.available]
    prices = [o.unit_price for o in on_sale if o.unit_price is not None]
    return {
        "offers": len(on_sale),
        "providers": len({o.provider_id for o in on_sale}),
        "low": min(prices, default=None),
        "high": max(prices, default=None),
    }


# --- the marketplace's grouped view: one card per model or GPU model ---------------------------
GROUP_COLUMN = {"model": "llm_model_id", "gpu": "gpu_name"}


def groups(offers: QuerySet[Offer], by: str, offset: int, size: int) -> tuple[list[dict], int]:
    """One page of groups of `offers` (annotated with unit_price), cheapest group first, and
    how many groups there are. Two queries, three with model names."""
    column = GROUP_COLUMN[by]
    offers = offers.order_by().exclude(**{column: None})
    if by == "gpu":
        offers = offers.filter(kind=Kind.GPU).exclude(gpu_name="")
    rows = offers.values(column).annotate(
        offers=Count("id"),
        providers=Count("provider_id", distinct=True),
        low=Min("unit_price"),
        high=Max("unit_price"),
        low_in=Min("usd_per_1m_input"),
        low_out=Min("usd_per_1m_output"),
    )
    total = rows.count()
    page = list(rows.order_by(F("low").asc(nulls_last=True), column)[offset : offset + size])
    if by == "model":
        models = LlmModel.objects.in_bulk([row[column] for row in page])
        for row in page:
            model = models[row[column]]
            row |= {"title": model.display_name, "task": model.task, "key": model.canonical}
            row["url"] = reverse("marketplace:model", args=[model.canonical])
    else:
        for row in page:
            row |= {"title": row[column], "task": "", "key": row[column]}
            row["url"] = reverse("marketplace:gpu", args=[row[column]])
    return page, total

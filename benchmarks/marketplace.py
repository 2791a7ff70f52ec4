"""Marketplace at 100,000 offers: ingest time, server time per request, SQL queries per request.

    make bench-marketplace          # or: .venv/bin/python benchmarks/marketplace.py

Uses its own database (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/
gpubroker_bench), created and migrated here and emptied of offers on every run. GPU offers
(60%) are parsed by the GPU providers' real adapters from payloads in their wire formats,
grown from the recorded ones in tests/payloads (Vast.ai searches and io.net hardware lists
spread over many locations; Akash's price list and Render's price sheet as recorded). LLM
offers are synthetic, shaped after the recorded payloads (model ids, serving providers), shared
out among the LLM providers. All reach Postgres through the real `providers.pipeline.ingest`,
one catalog per provider, like a poll (G-Scores included). Two more polls then move 5% of
prices each, so cards have price history to draw; a year of poll runs is added, since every
page reads each provider's latest run.

Requests go through Django's test client in this process (full middleware, view, template),
so "server time" excludes only the network. Each filter combination is timed as a full page
and as the HTMX fragment; queries per request are counted on a separate, untimed request.
"""

from __future__ import annotations

import json
import logging
import os
import random
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/gpubroker_bench"
)
os.environ["DATABASE_URL"] = DATABASE_URL
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gpubroker.settings")
# Production-like: no per-query debug bookkeeping while timing.
os.environ.setdefault("DEBUG", "False")
os.environ.setdefault("SECRET_KEY", "benchmark-only")
os.environ.setdefault("GPUBROKER_ENCRYPTION_KEYS", "ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg=")

OFFERS = int(os.environ.get("BENCH_OFFERS", "100000"))
RUNS = int(os.environ.get("BENCH_RUNS", "100"))
GPU_SHARE = 0.6  # GPU marketplaces list far more machines than LLM providers list models
TARGETS = {"fragment_p95_ms": 50, "page_p95_ms": 80, "ingest_s": 10, "queries": 6}
PAYLOADS = ROOT / "tests" / "payloads"


def create_database() -> None:
    import psycopg

    name = DATABASE_URL.rsplit("/", 1)[1]
    admin = DATABASE_URL.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def setup() -> None:
    import django
    from django.core.management import call_command

    create_database()
    django.setup()
    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
    logging.getLogger("providers.gpus").setLevel(logging.ERROR)  # Vast's unnamed GPUs, per poll


# --- synthetic catalogs, shaped after the recorded payloads -----------------------------------
def payload(path: str):
    return json.loads((PAYLOADS / path).read_text())


def model_ids() -> list[str]:
    ids = [m["model_name"] for m in payload("deepinfra/models_list.json")]
    ids += [m["id"] for m in payload("huggingface/router_models.json")["data"]]
    ids += [m["id"] for m in payload("groq/models.json")["data"]]
    return sorted(set(ids))


def serving_providers() -> list[str]:
    routes = payload("huggingface/router_models.json")["data"]
    return sorted({r["provider"] for m in routes for r in m["providers"]})


LOCATIONS = sorted(  # sorted: a set's order changes between runs, and so would the data
    {o["geolocation"] for o in payload("vastai/bundles.json")["offers"] if o.get("geolocation")}
    | {"Virginia, US", "Ohio, US", "Ontario, CA", "England, GB", "Ile-de-France, FR"}
    | {"Bavaria, DE", "Tokyo, JP", "Singapore, SG", "New South Wales, AU", "Sao Paulo, BR"}
    | {"Maharashtra, IN", "Seoul, KR", "Taiwan, TW", "Iceland, IS", "Estonia, EE"}
)
TASKS = [("text-generation", 70), ("embedding", 10), ("image", 8), ("audio", 7), ("moderation", 5)]
# Of the GPU offers that grow with the market: Vast.ai lists machines by the thousand, io.net
# configurations per location. Akash's price list (one row per GPU model, market-wide) and
# Render's two price-sheet tiers do not grow, so they are loaded as recorded.
GPU_SPLIT = {"vastai": 0.75, "ionet": 0.25}


def llm_offers(n: int, rng: random.Random, serving: list[str]):
    from providers.adapters.base import OfferIn, usd

    ids, tasks = model_ids(), [t for t, w in TASKS for _ in range(w)]
    for i in range(n):
        base = rng.choice(ids)
        task = rng.choice(tasks)
        price = usd(round(rng.lognormvariate(-1.2, 1.1), 4))
        offer = OfferIn(
            upstream_id=f"{base}-ft{i}:{rng.choice(serving)}",
            name=f"{base}-ft{i}",
            kind="llm-inference",
            region=rng.choice(["us", "eu", "apac", ""]),
            task=task,
            serving_provider=rng.choice(serving),
            context_length=rng.choice([4096, 8192, 32768, 131072, 262144, 1048576]),
            throughput_tps=round(rng.uniform(15, 900), 1) if rng.random() < 0.6 else None,
            available=rng.random() > 0.03,
        )
        if task == "image":
            offer.usd_per_image = usd(round(rng.uniform(0.0003, 0.08), 5))
        elif task == "audio" and rng.random() < 0.5:
            offer.native_price = f"${rng.uniform(0.0001, 0.001):.5f} per sec"
        elif rng.random() > 0.05:  # a few with no stated price: "price unknown"
            offer.usd_per_1m_input = price
            offer.usd_per_1m_output = usd(price * Decimal(rng.choice([1, 2, 3, 4])))
        yield offer


def gpu_catalogs(n: int, rng: random.Random) -> dict[str, object]:
    """slug → Catalog of about `n` GPU offers, each parsed by its provider's real adapter from
    payloads in that provider's wire format (built from the recorded ones by
    tests/providers/volume.py), so names, GPU models, regions, prices and G-Scores are what a poll
    would store."""
    from providers import geo
    from providers.gpus import parse_gpu_offers
    from providers.models import Kind, Provider
    from tests.providers.volume import ionet_hardware, vast_search

    adapters = {p.slug: p.adapter() for p in Provider.objects.filter(kind=Kind.GPU)}
    out = {
        "akash": parse_gpu_offers(
            "akash", payload("akash/gpu_prices.json")["models"], adapters["akash"]._offers
        ),
        "render": adapters["render"].list_models(),
    }
    growing = n - sum(len(catalog.offers) for catalog in out.values())
    quota = {slug: round(growing * share) for slug, share in GPU_SPLIT.items()}
    # Every recorded Vast offer has a minimum bid: one search result → two offers.
    vast = vast_search(-(-quota["vastai"] // 2))["offers"]
    for item in vast:
        item["geolocation"] = rng.choice(LOCATIONS)
    out["vastai"] = parse_gpu_offers("vastai", vast, adapters["vastai"]._offers)
    countries = sorted({geo.country_code(place) for place in LOCATIONS} - {""})
    ionet = ionet_hardware(quota["ionet"], countries)["data"]["hardware"]
    out["ionet"] = parse_gpu_offers("ionet", ionet, adapters["ionet"]._offers)
    for slug, catalog in out.items():
        catalog.offers = catalog.offers[: quota.get(slug)]
    for adapter in adapters.values():
        adapter.client.close()
    return out


def catalogs(rng: random.Random) -> dict:
    """provider → Catalog: GPU offers to the GPU providers, LLM offers shared out among the
    LLM providers."""
    from providers.adapters.base import Catalog
    from providers.models import Kind, Provider

    providers = list(Provider.objects.order_by("slug"))
    llm = [p for p in providers if p.kind == Kind.LLM]
    gpu = gpu_catalogs(int(OFFERS * GPU_SHARE), rng)
    out = {p: gpu.get(p.slug, Catalog()) for p in providers}
    n_llm = OFFERS - sum(len(c.offers) for c in out.values())
    for i, offer in enumerate(llm_offers(n_llm, rng, serving_providers())):
        out[llm[i % len(llm)]].offers.append(offer)
    return out


def move_prices(catalog, rng: random.Random, share: float = 0.05) -> None:
    """Lower every stated price of about `share` of the offers by 10%, as a re-poll finds."""
    from providers.adapters.base import PRICE_FIELDS, usd

    for offer in catalog.offers:
        if rng.random() < share:
            for name in PRICE_FIELDS:
                if getattr(offer, name) is not None:
                    setattr(offer, name, usd(getattr(offer, name) * Decimal("0.9")))


# --- loading ----------------------------------------------------------------------------------
def load() -> dict:
    from django.db import connection
    from django.utils import timezone

    from providers.models import (
        LlmModel,
        Offer,
        OfferFacet,
        OfferPriceBand,
        PollRun,
        PriceChange,
        Provider,
    )
    from providers.pipeline import ingest
    from providers.registry import load_registry

    load_registry()
    with connection.cursor() as cursor:
        tables = [m._meta.db_table for m in (PriceChange, OfferFacet, OfferPriceBand, Offer)]
        cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    rng = random.Random(5)
    built = time.perf_counter()
    by_provider = catalogs(rng)
    built = time.perf_counter() - built
    started = time.perf_counter()
    for provider, catalog in by_provider.items():
        ingest(provider, catalog)
    ingest_s = time.perf_counter() - started
    repoll = []
    for _ in range(2):
        started = time.perf_counter()
        for provider, catalog in by_provider.items():
            move_prices(catalog, rng)
            ingest(provider, catalog)
        repoll.append(time.perf_counter() - started)
    Provider.objects.update(last_polled_at=timezone.now(), last_success_at=timezone.now())
    runs = poll_history()
    with connection.cursor() as cursor:
        # What autovacuum does between polls; the ingest also wrote the LLM models.
        for model in (Offer, PriceChange, PollRun, LlmModel):
            cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")
    return {
        "offers": Offer.objects.count(),
        "price_changes": PriceChange.objects.count(),
        "providers": len(by_provider),
        "build_s": built,
        "ingest_s": ingest_s,
        "repoll_s": repoll,
        "poll_runs": runs,
    }


def poll_history() -> int:
    """A year of poll runs, one per poll interval, as the pages find them in production (every
    request asks each provider's latest run). Render's stop 90 days ago, as for a provider
    switched off: its latest run is the one furthest back."""
    from django.db import connection

    from providers.models import PollRun, Provider

    table = PollRun._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {table}")
        cursor.execute(
            f"""INSERT INTO {table} (provider_id, started_at, finished_at, outcome, http_calls,
                error_class, error_message, offers_seen, offers_added, offers_changed,
                offers_gone, items_skipped, task_id)
            SELECT p.id, at, at, CASE WHEN n % 50 = 0 THEN 'failed' ELSE 'ok' END, 1,
                CASE WHEN n % 50 = 0 THEN 'Transient' ELSE '' END, '', 0, 0, 0, 0, 0, ''
            FROM {Provider._meta.db_table} p,
                generate_series(CASE WHEN p.slug = 'render' THEN 90 * 86400 / p.poll_interval
                    ELSE 1 END, 365 * 86400 / p.poll_interval) AS n,
                LATERAL (SELECT now() - n * p.poll_interval * interval '1 second' AS at) t"""
        )
        return cursor.rowcount


# --- measuring --------------------------------------------------------------------------------
def combinations() -> list[tuple[str, str]]:
    return [
        ("no filters (price order)", ""),
        ("search 'llama'", "q=llama"),
        (
            "LLM text, context ≥128k, by throughput",
            "kind=llm&task=text-generation&min_context=131072&sort=throughput",
        ),
        (
            "GPU H100, ≥80 GB, ≤ $3/GPU-h, Vast + io.net",
            "kind=gpu&gpu=H100+SXM+80GB&gpu=H100+PCIe+80GB&min_vram=80&max_price=3"
            "&provider=vastai&provider=ionet",
        ),
        ("GPU by G-Score, ≤ $2/GPU-h, page 2", "kind=gpu&max_price=2&sort=gscore&page=2"),
        (
            "LLM provider + 2 regions, newest, page 3",
            "provider=deepinfra&region=us&region=eu&sort=newest&page=3",
        ),
    ]


def timed(client, url: str, htmx: bool) -> float:
    headers = {"HX-Request": "true"} if htmx else {}
    started = time.perf_counter()
    response = client.get(url, headers=headers)
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, (url, response.status_code)
    return elapsed


def queries(client, url: str, htmx: bool) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        client.get(url, headers={"HX-Request": "true"} if htmx else {})
    return len(captured)


def matches(client, url: str) -> str:
    body = client.get(url, headers={"HX-Request": "true"}).content.decode()
    return body.split('<p class="summary"><strong>', 1)[1].split("<", 1)[0]


def p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def measure() -> list[dict]:
    from django.test import Client

    client = Client(HTTP_HOST="localhost")
    rows = []
    for label, query in combinations():
        url = f"/?{query}" if query else "/"
        for htmx in (False, True):
            for _ in range(5):
                timed(client, url, htmx)
        page = [timed(client, url, False) for _ in range(RUNS)]
        fragment = [timed(client, url, True) for _ in range(RUNS)]
        rows.append(
            {
                "label": label,
                "matches": matches(client, url),
                "page_p50": p(page, 50),
                "page_p95": p(page, 95),
                "fragment_p50": p(fragment, 50),
                "fragment_p95": p(fragment, 95),
                "page_queries": queries(client, url, False),
                "fragment_queries": queries(client, url, True),
            }
        )
    return rows


def report(loaded: dict, rows: list[dict]) -> bool:
    print(
        f"\nLoaded {loaded['offers']:,} offers from {loaded['providers']} providers through "
        f"providers.pipeline.ingest in {loaded['ingest_s']:.2f} s "
        f"(catalogs built in {loaded['build_s']:.2f} s, not counted); two re-polls moving 5% "
        f"of prices: {', '.join(f'{s:.2f} s' for s in loaded['repoll_s'])}; "
        f"{loaded['price_changes']:,} price changes stored; {loaded['poll_runs']:,} poll runs "
        "(a year's) behind the status lines.\n"
    )
    head = (
        f"| {'filters':<44} | {'matches':>7} | page p50 | page p95 | frag p50 | frag p95 "
        f"| queries page/frag |"
    )
    print(head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    for r in rows:
        print(
            f"| {r['label']:<44} | {r['matches']:>7} | {r['page_p50']:5.1f} ms | "
            f"{r['page_p95']:5.1f} ms | {r['fragment_p50']:5.1f} ms | {r['fragment_p95']:5.1f} ms "
            f"| {r['page_queries']:>8} / {r['fragment_queries']:<6} |"
        )
    worst_page = max(r["page_p95"] for r in rows)
    worst_fragment = max(r["fragment_p95"] for r in rows)
    most_queries = max(max(r["page_queries"], r["fragment_queries"]) for r in rows)
    checks = [
        (
            f"fragment p95 < {TARGETS['fragment_p95_ms']} ms",
            worst_fragment,
            "ms",
            worst_fragment < TARGETS["fragment_p95_ms"],
        ),
        (
            f"full page p95 < {TARGETS['page_p95_ms']} ms",
            worst_page,
            "ms",
            worst_page < TARGETS["page_p95_ms"],
        ),
        (
            f"ingest of {loaded['offers']:,} < {TARGETS['ingest_s']} s",
            loaded["ingest_s"],
            "s",
            loaded["ingest_s"] < TARGETS["ingest_s"],
        ),
        (
            f"at most {TARGETS['queries']} SQL queries a request, however many offers match",
            most_queries,
            "queries",
            most_queries <= TARGETS["queries"],
        ),
    ]
    print()
    for name, value, unit, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: worst {value:.1f} {unit}")
    return all(ok for *_, ok in checks)


def main() -> int:
    setup()
    loaded = load()
    rows = measure()
    return 0 if report(loaded, rows) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Marketplace at 100,000 offers: ingest time, server time per request, SQL queries per request.

    make bench-marketplace          # or: .venv/bin/python benchmarks/marketplace.py

Uses its own database (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/
gpubroker_bench), created and migrated here and emptied of offers on every run. Offers are
synthetic, shaped after the recorded payloads in tests/payloads (model ids, serving providers,
GPU names from providers/gpu_catalog.json, Vast-style locations), and reach Postgres through
the real `providers.pipeline.ingest`, one catalog per provider, like a poll. Two more polls
then move 5% of prices each, so cards have price history to draw.

Requests go through Django's test client in this process (full middleware, view, template),
so "server time" excludes only the network. Each filter combination is timed as a full page
and as the HTMX fragment; queries per request are counted on a separate, untimed request.
"""

from __future__ import annotations

import json
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


def gpus() -> list[dict]:
    return json.loads((ROOT / "providers" / "gpu_catalog.json").read_text())


LOCATIONS = [
    *{o["geolocation"] for o in payload("vastai/bundles.json")["offers"] if o.get("geolocation")},
    *("Virginia, US", "Ohio, US", "Ontario, CA", "England, GB", "Ile-de-France, FR"),
    *("Bavaria, DE", "Tokyo, JP", "Singapore, SG", "New South Wales, AU", "Sao Paulo, BR"),
    *("Maharashtra, IN", "Seoul, KR", "Taiwan, TW", "Iceland, IS", "Estonia, EE"),
]
TASKS = [("text-generation", 70), ("embedding", 10), ("image", 8), ("audio", 7), ("moderation", 5)]


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


def gpu_offers(n: int, rng: random.Random):
    from providers.adapters.base import OfferIn, usd

    catalog = gpus()
    for i in range(n):
        card = rng.choice(catalog)
        count = rng.choice([1, 1, 1, 2, 4, 8])
        location = rng.choice(LOCATIONS)
        per_gpu = round(rng.uniform(0.08, 4.5) * (card.get("memory_gb") or 24) / 48, 4)
        offer = OfferIn(
            upstream_id=str(1_000_000 + i),
            name=f"{count}x {card['canonical']}",
            kind="gpu-compute",
            region=location,
            country=location.rsplit(", ", 1)[-1] if ", " in location else "",
            gpu_name=card["canonical"],
            gpu_count=count,
            vram_gb=card.get("memory_gb"),
            vcpus=float(rng.choice([4, 8, 16, 32, 64]) * count),
            ram_gb=float(rng.choice([32, 64, 128, 256]) * count),
            disk_gb=float(rng.choice([50, 100, 500, 1000])),
            reliability=round(rng.uniform(0.9, 0.9999), 4),
            interruptible=rng.random() < 0.3,
            availability_count=rng.randint(0, 40),
            available=rng.random() > 0.03,
        )
        if rng.random() < 0.04:  # a market range, Akash-style
            offer.usd_per_gpu_hour_min = usd(per_gpu * 0.7)
            offer.usd_per_gpu_hour_max = usd(per_gpu * 1.6)
        else:
            offer.usd_per_gpu_hour = usd(per_gpu)
            offer.usd_per_instance_hour = usd(per_gpu * count)
        yield offer


def catalogs(rng: random.Random) -> dict:
    """provider → Catalog. GPU offers go to GPU providers, LLM offers to LLM providers; where
    the registry has no provider of a kind, every provider shares that kind's offers."""
    from providers.adapters.base import Catalog
    from providers.models import Kind, Provider

    providers = list(Provider.objects.order_by("slug"))
    llm = [p for p in providers if p.kind == Kind.LLM] or providers
    gpu = [p for p in providers if p.kind == Kind.GPU] or providers
    out = {p: Catalog() for p in providers}
    n_gpu = int(OFFERS * GPU_SHARE)
    for i, offer in enumerate(gpu_offers(n_gpu, rng)):
        out[gpu[i % len(gpu)]].offers.append(offer)
    for i, offer in enumerate(llm_offers(OFFERS - n_gpu, rng, serving_providers())):
        out[llm[i % len(llm)]].offers.append(offer)
    return out


def move_prices(catalog, rng: random.Random, share: float = 0.05) -> None:
    from providers.adapters.base import usd

    for offer in catalog.offers:
        if rng.random() < share:
            for name in ("usd_per_1m_input", "usd_per_image", "usd_per_gpu_hour"):
                if getattr(offer, name) is not None:
                    setattr(offer, name, usd(getattr(offer, name) * Decimal("0.9")))


# --- loading ----------------------------------------------------------------------------------
def load() -> dict:
    from django.db import connection
    from django.utils import timezone

    from providers.models import Offer, OfferFacet, PriceChange, Provider
    from providers.pipeline import ingest
    from providers.registry import load_registry

    load_registry()
    with connection.cursor() as cursor:
        cursor.execute(
            f"TRUNCATE {PriceChange._meta.db_table}, {OfferFacet._meta.db_table}, "
            f"{Offer._meta.db_table} RESTART IDENTITY"
        )
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
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {Offer._meta.db_table}")
        cursor.execute(f"VACUUM ANALYZE {PriceChange._meta.db_table}")
    return {
        "offers": Offer.objects.count(),
        "price_changes": PriceChange.objects.count(),
        "providers": len(by_provider),
        "build_s": built,
        "ingest_s": ingest_s,
        "repoll_s": repoll,
    }


# --- measuring --------------------------------------------------------------------------------
def combinations() -> list[tuple[str, str]]:
    from providers.models import Kind, Provider

    providers = list(Provider.objects.order_by("slug"))
    gpu = [p for p in providers if p.kind == Kind.GPU] or providers
    llm = [p for p in providers if p.kind == Kind.LLM] or providers
    return [
        ("no filters (price order)", ""),
        ("search 'llama'", "q=llama"),
        (
            "LLM text, context ≥128k, by throughput",
            "kind=llm&task=text-generation&min_context=131072&sort=throughput",
        ),
        (
            "GPU H100, ≥80 GB, ≤ $3/GPU-h, 2 providers",
            f"kind=gpu&gpu=H100+SXM+80GB&gpu=H100+PCIe+80GB&min_vram=80&max_price=3"
            f"&provider={gpu[0].slug}&provider={gpu[-1].slug}",
        ),
        (
            "LLM provider + 2 regions, newest, page 3",
            f"provider={llm[0].slug}&region=us&region=eu&sort=newest&page=3",
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
        f"{loaded['price_changes']:,} price changes stored.\n"
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

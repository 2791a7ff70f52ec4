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
How a fragment's time grows from 10,000 to 1,000,000 offers is benchmarks/growth.py's to
measure (`make bench-growth`): both sizes in the same minutes, not runs taken apart.
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
os.environ.setdefault("SECURE_SSL_REDIRECT", "False")  # the test client speaks plain HTTP
# As deployed: the cache (cards, roll-ups) and the breakers' state in Redis: REDIS_URL, else
# BENCH_REDIS_URL (default db 11 on localhost), under a key prefix of its own.
os.environ.setdefault("REDIS_URL", os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11"))
os.environ.setdefault("CACHE_KEY_PREFIX", "bench-marketplace")
os.environ.setdefault("GPUBROKER_ENCRYPTION_KEYS", "ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg=")

OFFERS = int(os.environ.get("BENCH_OFFERS", "100000"))
RUNS = int(os.environ.get("BENCH_RUNS", "50"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
GPU_SHARE = 0.6  # GPU marketplaces list far more machines than LLM providers list models
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
    logging.getLogger("providers.llm_models").setLevel(logging.ERROR)  # the synthetic -ftN names


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


REGIONS = ["us", "eu", "apac", ""]
CONTEXTS = [4096, 8192, 32768, 131072, 262144, 1048576]


def llm_offers(n: int, rng: random.Random, serving: list[str], models: int | None = None):
    """`n` LLM offers. `models` None: each its own model (`<id>-ft<i>`, n models). Else that
    many models, offer i serving model i % models through serving provider and region in
    turn, so a model has one task and context and (with models a multiple of the number of
    LLM providers, and n < models × serving providers × regions) no provider lists an
    (upstream id, region) twice."""
    from providers.adapters.base import OfferIn, usd

    ids, tasks = model_ids(), [t for t, w in TASKS for _ in range(w)]
    for i in range(n):
        if models is None:  # the draws in the order they always were: the same catalog
            base, task, context = f"{rng.choice(ids)}-ft{i}", rng.choice(tasks), None
            price = usd(round(rng.lognormvariate(-1.2, 1.1), 4))
            route, region = rng.choice(serving), rng.choice(REGIONS)
        else:
            m = i % models
            per_model = random.Random(m)
            base = f"{per_model.choice(ids)}-ft{m}"
            task, context = per_model.choice(tasks), per_model.choice(CONTEXTS)
            price = usd(round(rng.lognormvariate(-1.2, 1.1), 4))
            route = serving[(i // models) % len(serving)]
            region = REGIONS[(i // (models * len(serving))) % len(REGIONS)]
        offer = OfferIn(
            upstream_id=f"{base}:{route}",
            name=base,
            kind="llm-inference",
            region=region,
            task=task,
            serving_provider=route if models else rng.choice(serving),
            context_length=context or rng.choice(CONTEXTS),
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


def catalogs(rng: random.Random, n: int, models: int | None = None) -> dict:
    """provider → Catalog of `n` offers in all: GPU offers to the GPU providers, LLM offers
    shared out among the LLM providers (`models`: see llm_offers)."""
    from providers.adapters.base import Catalog
    from providers.models import Kind, Provider

    providers = list(Provider.objects.order_by("slug"))
    llm = [p for p in providers if p.kind == Kind.LLM]
    gpu = gpu_catalogs(int(n * GPU_SHARE), rng)
    out = {p: gpu.get(p.slug, Catalog()) for p in providers}
    n_llm = n - sum(len(c.offers) for c in out.values())
    for i, offer in enumerate(llm_offers(n_llm, rng, serving_providers(), models)):
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
# Above this many offers the catalogs that go through the real ingest are copied in the
# database (`replicate`): a million offers through the ingest would take most of an hour.
INGESTED = 100_000


def load() -> dict:
    from django.db import connection

    from providers.models import Offer, OfferFacet, OfferPriceBand, PriceChange
    from providers.pipeline import ingest
    from providers.registry import load_registry

    load_registry()
    with connection.cursor() as cursor:
        tables = [m._meta.db_table for m in (PriceChange, OfferFacet, OfferPriceBand, Offer)]
        cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    rng = random.Random(5)
    built = time.perf_counter()
    by_provider = catalogs(rng, min(OFFERS, INGESTED))
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
    loaded = {"build_s": built, "ingest_s": ingest_s, "repoll_s": repoll}
    return loaded | grow()


def grow() -> dict:
    """After the ingest: the copies past INGESTED offers, a year of poll runs, statistics."""
    from django.db import connection
    from django.utils import timezone

    from providers.models import LlmModel, Offer, PollRun, PriceChange, Provider

    copied = replicate(OFFERS) if OFFERS > INGESTED else None
    Provider.objects.update(last_polled_at=timezone.now(), last_success_at=timezone.now())
    runs = poll_history()
    with connection.cursor() as cursor:
        # What autovacuum does between polls; the ingest also wrote the LLM models.
        for model in (Offer, PriceChange, PollRun, LlmModel):
            cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")
    return {
        "offers": Offer.objects.count(),
        "ingested": min(OFFERS, INGESTED),
        "copied_s": copied,
        "price_changes": PriceChange.objects.count(),
        "providers": Provider.objects.count(),
        "poll_runs": runs,
    }


# A copy's prices: its original's times a factor in 0.85–1.15 fixed by the original's id and
# the copy's number, so a copy's price history moves by the same factor as its price.
FACTOR = "(0.85 + 0.3 * mod({id} * 7919 + {k} * 104729, 1000) / 1000.0)"


def replicate(target: int) -> float:
    """Grow the ingested offers to `target` inside PostgreSQL: copy k of an offer is the same
    provider, GPU or model, region and task (so the spread over providers, GPU models, regions
    and tasks is the real ingest's), upstream id suffixed `~k`, prices (and their history)
    moved by a factor in 0.85–1.15, G-Score value by its inverse, first seen up to 30 days
    earlier. Offer's indexes are dropped for the copy and built again after it, and the
    roll-ups and the G-Score scale recomputed as the ingest would. Returns the seconds."""
    from django.db import connection

    from providers.models import Offer, OfferFacet, OfferPriceBand, PriceChange, Provider
    from providers.pipeline import refresh_gscore_reference

    started = time.perf_counter()
    table, changes = Offer._meta.db_table, PriceChange._meta.db_table
    fields = [f for f in Offer._meta.concrete_fields if not f.primary_key and not f.generated]
    prices = {f.column for f in fields if f.column.startswith("usd_per_")}
    factor = FACTOR.format(id="o.id", k="k")

    def copied(column: str) -> str:
        if column in prices:
            return f"round(o.{column} * {factor}, 6)"
        return {
            "upstream_id": "o.upstream_id || '~' || k",
            "gscore_value": f"o.gscore_value / {factor}",
            "first_seen": "o.first_seen - mod(o.id * 31 + k * 17, 720) * interval '1 hour'",
        }.get(column, f"o.{column}")

    columns = [f.column for f in fields]
    with connection.cursor() as cursor:
        for index in Offer._meta.indexes:  # IF EXISTS: after a copy that stopped midway
            cursor.execute(f'DROP INDEX IF EXISTS "{index.name}"')
        cursor.execute(f"SELECT count(*), max(id) FROM {table}")
        seed, last = cursor.fetchone()
        cursor.execute(
            f"""INSERT INTO {table} ({", ".join(columns)})
            SELECT {", ".join(map(copied, columns))}
            FROM generate_series(1, %s) k, {table} o WHERE o.id <= %s
            ORDER BY k, o.id LIMIT %s""",
            [-(-(target - seed) // seed), last, target - seed],
        )
        cursor.execute(f"ANALYZE {table}")
        cursor.execute(  # each copy found by the unique constraint's index
            f"""INSERT INTO {changes} (offer_id, field, old, new, at)
            SELECT n.id, c.field, round(c.old * {factor}, 6), round(c.new * {factor}, 6), c.at
            FROM {changes} c JOIN {table} o ON o.id = c.offer_id,
                generate_series(1, %s) k,
                {table} n
            WHERE n.provider_id = o.provider_id AND n.upstream_id = o.upstream_id || '~' || k
                AND n.region = o.region""",
            [-(-(target - seed) // seed)],
        )
    with connection.schema_editor() as editor:
        for index in Offer._meta.indexes:
            editor.add_index(Offer, index)
    for provider in Provider.objects.all():
        OfferFacet.refresh(provider)
        OfferPriceBand.refresh(provider)
    refresh_gscore_reference()
    return time.perf_counter() - started


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
        ("no filters, newest first", "sort=newest"),
        ("search 'llama'", "q=llama"),
        (
            "LLM text, context ≥128k, by throughput",
            "kind=llm&task=text-generation&min_context=131072&sort=throughput",
        ),
        ("GPU B200 (a narrow choice)", "gpu=B200"),
        (
            "GPU H100, ≥80 GB, ≤ $3/GPU-h, Vast + io.net",
            "kind=gpu&gpu=H100+SXM+80GB&gpu=H100+PCIe+80GB&min_vram=80&max_price=3"
            "&provider=vastai&provider=ionet",
        ),
        ("GPU H100 SXM, by G-Score (broad)", "gpu=H100+SXM+80GB&sort=gscore"),
        ("GPU by G-Score, ≤ $2/GPU-h, page 2", "kind=gpu&max_price=2&sort=gscore&page=2"),
        ("GPU by G-Score, page 40", "kind=gpu&sort=gscore&page=40"),
        (
            "LLM provider + 2 regions, newest, page 3",
            "provider=deepinfra&region=us&region=eu&sort=newest&page=3",
        ),
    ]


def timed(client, url: str, htmx: bool) -> tuple[float, float]:
    """Wall and CPU (this thread's) milliseconds of one request."""
    headers = {"HX-Request": "true"} if htmx else {}
    started, cpu = time.perf_counter(), time.thread_time()
    response = client.get(url, headers=headers)
    elapsed = (time.perf_counter() - started) * 1000
    cpu = (time.thread_time() - cpu) * 1000
    assert response.status_code == 200, (url, response.status_code)
    return elapsed, cpu


def statements(client, url: str, htmx: bool) -> list[str]:
    """The SQL a request sends, as sent (values bound in the text, as psycopg sends them)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        client.get(url, headers={"HX-Request": "true"} if htmx else {})
    return [q["sql"] for q in captured.captured_queries]


def bare_sql(sql: list[str]) -> float:
    """Milliseconds to send a request's statements on the same connection with psycopg alone
    and fetch every row: the database's share of the request, without Django."""
    from django.db import connection

    connection.ensure_connection()
    with connection.connection.cursor() as cursor:
        started = time.perf_counter()
        for statement in sql:
            cursor.execute(statement.encode())
            if cursor.description is not None:
                cursor.fetchall()
        return (time.perf_counter() - started) * 1000


def cold(client, url: str) -> tuple[float, int]:
    """CPU milliseconds and queries of a fragment with nothing kept: in this process (the
    snapshot, the cards) nor in the cache (this benchmark's keys), as after a poll."""
    from django.core.cache import cache
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from marketplace import cards, snapshot

    snapshot._last = None
    cards.forget()
    redis = cache._cache.get_client(write=True)
    for key in redis.scan_iter(match=f"{os.environ['CACHE_KEY_PREFIX']}:*marketplace:*"):
        redis.delete(key)
    with CaptureQueriesContext(connection) as captured:
        _, thread = timed(client, url, True)
    return thread, len(captured)


def matches(client, url: str) -> str:
    body = client.get(url, headers={"HX-Request": "true"}).content.decode()
    return body.split('<p class="summary"><strong>', 1)[1].split("<", 1)[0]


def p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def measure_row(client, url: str) -> dict:
    """One round of one row: page, fragment and bare SQL, RUNS each, interleaved so that a
    burst of load from elsewhere on the machine falls on all three alike."""
    for htmx in (False, True, True):
        timed(client, url, htmx)
    sql = statements(client, url, True)
    page, page_cpu, fragment, cpu, bare = [], [], [], [], []
    for _ in range(RUNS):
        wall, thread = timed(client, url, False)
        page.append(wall)
        page_cpu.append(thread)
        wall, thread = timed(client, url, True)
        fragment.append(wall)
        cpu.append(thread)
        bare.append(bare_sql(sql))
    colds = [cold(client, url) for _ in range(3)]
    return {
        "cold_cpu": statistics.median(c for c, _ in colds),
        "cold_queries": max(q for _, q in colds),
        "page_cpu_p50": p(page_cpu, 50),
        "page_p95": p(page, 95),
        "fragment_p50": p(fragment, 50),
        "fragment_p95": p(fragment, 95),
        "sql_p95": p(bare, 95),
        "cpu_p50": p(cpu, 50),
        "cpu_p95": p(cpu, 95),
        "queries": len(sql),
        "page_queries": len(statements(client, url, False)),
    }


def measure() -> list[dict]:
    from django.test import Client

    client = Client(HTTP_HOST="localhost")
    rounds = [[measure_row(client, url(q)) for _, q in combinations()] for _ in range(REPEATS)]
    rows = []
    for i, (label, query) in enumerate(combinations()):
        mine = [r[i] for r in rounds]
        row = {"label": label, "url": url(query), "matches": matches(client, url(query))}
        for name in mine[0]:
            row[name] = [m[name] for m in mine]
        row["ratio"] = [m["fragment_p95"] / m["sql_p95"] for m in mine]
        row["page_over"] = [m["page_p95"] - m["fragment_p95"] for m in mine]
        rows.append(row)
    return rows


def url(query: str) -> str:
    return f"/?{query}" if query else "/"


# --- reporting --------------------------------------------------------------------------------
def spread(values: list[float], fmt: str = "{:.1f}") -> str:
    """min / median / max over the repeats."""
    return "/".join(fmt.format(v) for v in (min(values), statistics.median(values), max(values)))


def report(loaded: dict, rows: list[dict]) -> bool:
    n = loaded["offers"]
    if loaded.get("reused"):
        print(f"\n{n:,} offers loaded by an earlier run (BENCH_REUSE=1).")
    else:
        print_load(loaded)
    print(f"{machine()}; {REPEATS} rounds of {RUNS} requests per row; figures are")
    print("min/median/max over the rounds; ratio = fragment p95 / bare SQL p95 of the request.\n")
    print(
        "| filters | matches | fragment p95 ms | SQL p95 ms | ratio | page p95 ms "
        "| CPU/fragment p50 ms | CPU/page p50 ms | queries | cold: CPU ms, queries |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['label']} | {r['matches']} | {spread(r['fragment_p95'])} | "
            f"{spread(r['sql_p95'], '{:.2f}')} | {spread(r['ratio'], '{:.1f}×')} | "
            f"{spread(r['page_p95'])} | {spread(r['cpu_p50'])} | {spread(r['page_cpu_p50'])} | "
            f"{max(r['queries'])} | {statistics.median(r['cold_cpu']):.1f}, "
            f"{max(r['cold_queries'])} |"
        )
    checks = targets(n, rows)
    print()
    for name, value, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {value}")
    return all(ok for *_, ok in checks)


def print_load(loaded: dict) -> None:
    n = loaded["offers"]
    how = f"{loaded['ingested']:,} through providers.pipeline.ingest in {loaded['ingest_s']:.2f} s"
    if loaded["copied_s"] is not None:
        how += f", copied in PostgreSQL to {n:,} in {loaded['copied_s']:.1f} s"
    print(
        f"\n{n:,} offers from {loaded['providers']} providers: {how} (catalogs built in "
        f"{loaded['build_s']:.2f} s, not counted); two re-polls moving 5% of prices: "
        f"{', '.join(f'{s:.2f} s' for s in loaded['repoll_s'])}; {loaded['price_changes']:,} "
        f"price changes; {loaded['poll_runs']:,} poll runs (a year's) behind the status lines."
    )


def targets(n: int, rows: list[dict]) -> list[tuple[str, str, bool]]:
    """Each row's targets, judged on the median over the rounds."""
    limit = 20 if n <= 100_000 else 30
    checks = []
    for r in rows:
        med = {
            k: statistics.median(r[k]) for k in ("fragment_p95", "ratio", "page_over", "cpu_p50")
        }
        checks += [
            (
                f"{r['label']}: fragment p95 ≤ 2× its bare SQL",
                f"{spread(r['ratio'], '{:.1f}×')}",
                med["ratio"] <= 2,
            ),
            (
                f"{r['label']}: fragment p95 ≤ {limit} ms",
                f"{spread(r['fragment_p95'])} ms",
                med["fragment_p95"] <= limit,
            ),
            (
                f"{r['label']}: full page ≤ fragment + 5 ms",
                f"+{spread(r['page_over'])} ms",
                med["page_over"] <= 5,
            ),
            (
                f"{r['label']}: Python CPU per fragment ≤ 10 ms",
                f"{spread(r['cpu_p50'])} ms",
                med["cpu_p50"] <= 10,
            ),
        ]
    most = max(max(r["queries"] + r["page_queries"] + r["cold_queries"]) for r in rows)
    checks.append(("at most 6 SQL queries a request, whatever matches", str(most), most <= 6))
    return checks


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    return f"{os.cpu_count()} cores ({model}), load average {os.getloadavg()[0]:.1f}"


def verdicts(checks: list[tuple[str, bool]]) -> bool:
    """Print each target as PASS or FAIL; True when all pass."""
    print()
    for name, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    return all(ok for _, ok in checks)


def main() -> int:
    setup()
    from providers.models import Offer

    stored = Offer.objects.count() if os.environ.get("BENCH_REUSE") else None
    if stored == OFFERS:
        loaded = reused()
    elif stored == INGESTED < OFFERS:  # an earlier run's ingest, stopped before the copies
        loaded = grow() | {"reused": True}
    else:
        loaded = load()
    rows = measure()
    return 0 if report(loaded, rows) else 1


def reused() -> dict:
    """BENCH_REUSE=1: measure the offers an earlier run loaded."""
    from providers.models import Offer

    return {"offers": Offer.objects.count(), "reused": True}


if __name__ == "__main__":
    sys.exit(main())

"""Catalog API at 100,000 offers: /api/v1/pricing page p95 and the full CSV export's rows/s.

    .venv/bin/python benchmarks/catalog_api.py      # or: make bench-catalog

Uses its own database (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/
gpubroker_bench_catalog), created, migrated and filled here exactly as benchmarks/marketplace.py
fills its own: GPU offers parsed by the real adapters from payloads grown from the recorded
ones, LLM offers shaped after them, all through `providers.pipeline.ingest` (model identity
included), then two re-polls moving 5% of prices.

Requests go through Django's test client in this process (middleware, ninja, schema
validation, JSON), so "server time" excludes only the network. The rate limit is raised out
of the way but still counted in Redis; everything else is as deployed (DEBUG off).

Besides wall time, each request's CPU time in this process is shown: on a shared machine
the wall time also holds time spent waiting for a CPU. BENCH_REUSE=1 measures the offers a
previous run loaded instead of loading them again.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/gpubroker_bench_catalog"
)
os.environ.setdefault("API_RATE_LIMIT", "1000000000")
# As deployed: the rate limit counts in Redis (BENCH_REDIS_URL, default db 10 on localhost).
os.environ["REDIS_URL"] = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/10")
os.environ.setdefault("CACHE_KEY_PREFIX", "bench-catalog")  # apart from the tests' keys

from benchmarks import marketplace as bench  # noqa: E402  (after the environment is set)

RUNS = int(os.environ.get("BENCH_RUNS", "200"))
CSV_RUNS = int(os.environ.get("BENCH_CSV_RUNS", "3"))
TARGETS = {"page_p95_ms": 30, "csv_rows_per_s": 50_000}
PAGES = [
    ("no filters, first page", "/api/v1/pricing"),
    ("no filters, 500 rows", "/api/v1/pricing?limit=500"),
    ("GPU ≤ $2/GPU-h", "/api/v1/pricing?kind=gpu&max_price=2"),
    ("LLM text at deepinfra", "/api/v1/pricing?provider=deepinfra&task=text"),
    ("H100 SXM, ≥ 80 GB", "/api/v1/pricing?gpu=H100+SXM+80GB&min_vram=80"),
    ("search 'llama', unavailable too", "/api/v1/pricing?q=llama&unavailable=true"),
]


def timed(client, url: str) -> tuple[float, float]:
    """Wall and CPU milliseconds of one request."""
    started, cpu = time.perf_counter(), time.process_time()
    response = client.get(url)
    elapsed = (time.perf_counter() - started) * 1000
    cpu = (time.process_time() - cpu) * 1000
    assert response.status_code == 200, (url, response.status_code, response.content[:300])
    return elapsed, cpu


def deep_cursor(client) -> str:
    """A cursor halfway through the offers, found by following next_cursor."""
    url, pages = "/api/v1/pricing?limit=500", 0
    while pages < 100:
        body = client.get(url).json()
        pages += 1
        if not body["next_cursor"]:
            break
        url = f"/api/v1/pricing?limit=500&cursor={body['next_cursor']}"
    return url.replace("limit=500&", "")


def measure_pages(client) -> list[dict]:
    rows = []
    for label, url in [*PAGES, ("page 101 (cursor)", deep_cursor(client))]:
        for _ in range(5):
            timed(client, url)
        walls, cpus = zip(*(timed(client, url) for _ in range(RUNS)), strict=True)
        rows.append(
            {
                "label": label,
                "items": len(client.get(url).json()["items"]),
                "p50": bench.p(walls, 50),
                "p95": bench.p(walls, 95),
                "cpu_p95": bench.p(cpus, 95),
            }
        )
    return rows


def measure_csv(client) -> dict:
    rates, count, seconds = [], 0, []
    for _ in range(CSV_RUNS):
        started = time.perf_counter()
        response = client.get("/api/v1/pricing?format=csv&unavailable=true")
        assert response.status_code == 200
        size = 0
        lines = 0
        for block in response.streaming_content:
            size += len(block)
            lines += block.count(b"\n")
        elapsed = time.perf_counter() - started
        count = lines - 1  # the header
        seconds.append(elapsed)
        rates.append(count / elapsed)
    return {
        "rows": count,
        "bytes": size,
        "seconds": statistics.median(seconds),
        "rate": statistics.median(rates),
    }


def report(loaded: dict, pages: list[dict], export: dict) -> bool:
    ingest = f"ingest {loaded['ingest_s']:.2f} s" if "ingest_s" in loaded else "loaded before"
    print(
        f"\n{loaded['offers']:,} offers from {loaded['providers']} providers ({ingest}; "
        f"{loaded['price_changes']:,} price changes); load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} CPUs\n"
    )
    print(f"| {'/api/v1/pricing':<34} | items | p50      | p95      | CPU p95  |")
    print(f"|{'-' * 36}|-------|----------|----------|----------|")
    for r in pages:
        print(
            f"| {r['label']:<34} | {r['items']:>5} | {r['p50']:5.1f} ms | {r['p95']:5.1f} ms "
            f"| {r['cpu_p95']:5.1f} ms |"
        )
    print(
        f"\nCSV of every offer: {export['rows']:,} rows, {export['bytes'] / 1e6:.1f} MB in "
        f"{export['seconds']:.2f} s (median of {CSV_RUNS}) = {export['rate']:,.0f} rows/s\n"
    )
    worst = max(r["p95"] for r in pages)
    checks = [
        (
            f"pricing page p95 < {TARGETS['page_p95_ms']} ms",
            f"worst {worst:.1f} ms",
            worst < TARGETS["page_p95_ms"],
        ),
        (
            f"CSV export ≥ {TARGETS['csv_rows_per_s']:,} rows/s",
            f"{export['rate']:,.0f} rows/s",
            export["rate"] >= TARGETS["csv_rows_per_s"],
        ),
    ]
    for name, value, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {value}")
    return all(ok for *_, ok in checks)


def main() -> int:
    bench.setup()
    from django.test import Client

    from providers.models import Offer, PriceChange, Provider

    if os.environ.get("BENCH_REUSE") and Offer.objects.count() >= bench.OFFERS:
        loaded = {
            "offers": Offer.objects.count(),
            "providers": Provider.objects.count(),
            "price_changes": PriceChange.objects.count(),
        }
    else:
        loaded = bench.load()

    client = Client(HTTP_HOST="localhost")
    pages = measure_pages(client)
    export = measure_csv(client)
    return 0 if report(loaded, pages, export) else 1


if __name__ == "__main__":
    sys.exit(main())

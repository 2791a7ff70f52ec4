"""Catalog API at 100,000 offers: /api/v1/pricing page p95 and the full CSV export's rows/s.

    .venv/bin/python benchmarks/catalog_api.py      # or: make bench-catalog

Uses its own database (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/
gpubroker_bench_catalog), created, migrated and filled here exactly as benchmarks/marketplace.py
fills its own: GPU offers parsed by the real adapters from payloads grown from the recorded
ones, LLM offers shaped after them, all through `providers.pipeline.ingest` (model identity
included), then two re-polls moving 5% of prices.

Requests go through Django's test client in this process (middleware, ninja, schema
validation, JSON), over HTTPS as deployed, so "server time" excludes only the network. The
rate limit is raised out of the way but still counted in Redis; everything else is as
deployed (DEBUG off).

The machine is shared and its load moves, so every measure is repeated (BENCH_REPEATS) and
shown as min/median/max over the repeats, beside the same work without the web layer,
measured in the same round: each page's SQL statements run bare through the same connection,
and the export's COPY read bare through psycopg. The ratio says what the API adds to the
database's own time. Each request's CPU time in this thread (thread_time) is shown too: the
wall time also holds time spent waiting for a CPU. A target PASSes when every repeat meets it.
BENCH_REUSE=1 measures the offers a previous run loaded instead of loading them again.
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

RUNS = int(os.environ.get("BENCH_RUNS", "100"))  # requests per page and repeat
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
TARGETS = {"page_p95_ms": 30, "csv_rows_per_s": 50_000}
# The target is for a page of the default 100 rows; the 500-row page (the largest a client
# may ask for) is shown beside it for scale.
LARGE_PAGE = "no filters, 500 rows"
PAGES = [
    ("no filters, first page", "/api/v1/pricing"),
    (LARGE_PAGE, "/api/v1/pricing?limit=500"),
    ("GPU ≤ $2/GPU-h", "/api/v1/pricing?kind=gpu&max_price=2"),
    ("LLM text at deepinfra", "/api/v1/pricing?provider=deepinfra&task=text"),
    ("H100 SXM, ≥ 80 GB", "/api/v1/pricing?gpu=H100+SXM+80GB&min_vram=80"),
    ("search 'llama', unavailable too", "/api/v1/pricing?q=llama&unavailable=true"),
]
CSV_URL = "/api/v1/pricing?format=csv&unavailable=true"


def get(client, url: str):
    response = client.get(url, secure=True)
    assert response.status_code == 200, (url, response.status_code, response.content[:300])
    return response


def timed(client, url: str) -> tuple[float, float]:
    """Wall and CPU milliseconds of one request."""
    started, cpu = time.perf_counter(), time.thread_time()
    get(client, url)
    return (time.perf_counter() - started) * 1000, (time.thread_time() - cpu) * 1000


def statements(client, url: str) -> list[str]:
    """The SQL one request runs, as sent (parameters bound)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        get(client, url)
    return [query["sql"] for query in captured]


def bare_sql(sqls: list[str]) -> float:
    """Milliseconds to run a request's statements and fetch their rows, without Django."""
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        for sql in sqls:
            cursor.execute(sql)
            cursor.fetchall()
    return (time.perf_counter() - started) * 1000


def deep_cursor(client) -> str:
    """A cursor halfway through the offers, found by following next_cursor."""
    url, pages = "/api/v1/pricing?limit=500", 0
    while pages < 100:
        body = get(client, url).json()
        pages += 1
        if not body["next_cursor"]:
            break
        url = f"/api/v1/pricing?limit=500&cursor={body['next_cursor']}"
    return url.replace("limit=500&", "")


def measure_page(client, url: str, sqls: list[str]) -> dict:
    """One round for one page: RUNS requests and RUNS bare runs of its SQL, interleaved, so
    both see the same load."""
    walls, cpus, bare = [], [], []
    for _ in range(RUNS):
        wall, cpu = timed(client, url)
        walls.append(wall)
        cpus.append(cpu)
        bare.append(bare_sql(sqls))
    p95, sql_p95 = bench.p(walls, 95), bench.p(bare, 95)
    return {
        "p50": bench.p(walls, 50),
        "p95": p95,
        "cpu_p95": bench.p(cpus, 95),
        "sql_p95": sql_p95,
        "ratio": p95 / sql_p95,
    }


def measure_csv(client, copy_sql: str, copy_params: tuple) -> dict:
    """One round of the full export: through the API, then the same COPY read bare."""
    from django.db import connection

    started, cpu = time.perf_counter(), time.thread_time()
    response = get(client, CSV_URL)
    lines = sum(block.count(b"\n") for block in response.streaming_content)
    api_s, api_cpu = time.perf_counter() - started, time.thread_time() - cpu
    started = time.perf_counter()
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY ({copy_sql}) TO STDOUT WITH (FORMAT csv)", copy_params) as copy,
    ):
        for _ in copy:
            pass
    bare_s = time.perf_counter() - started
    rows = lines - 1  # the header
    return {"rows": rows, "rate": rows / api_s, "cpu_s": api_cpu, "ratio": api_s / bare_s}


def spread(values: list[float], fmt: str) -> str:
    return "/".join(format(v, fmt) for v in (min(values), statistics.median(values), max(values)))


def report(loaded: dict, pages: dict[str, list[dict]], exports: list[dict]) -> bool:
    ingest = f"ingest {loaded['ingest_s']:.2f} s" if "ingest_s" in loaded else "loaded before"
    print(
        f"\n{loaded['offers']:,} offers from {loaded['providers']} providers ({ingest}; "
        f"{loaded['price_changes']:,} price changes) on {bench.machine()}; "
        f"{REPEATS} repeats of {RUNS} requests per page, "
        "min/median/max over the repeats:\n"
    )
    print(
        f"| {'/api/v1/pricing (100 rows)':<34} | p50 ms         | p95 ms         | CPU p95 ms     "
        "| bare SQL p95 ms | p95 / SQL      |"
    )
    print(f"|{'-' * 36}|{'-' * 16}|{'-' * 16}|{'-' * 16}|{'-' * 17}|{'-' * 16}|")
    for label, rounds in pages.items():
        cells = [spread([r[key] for r in rounds], ".1f") for key in ("p50", "p95", "cpu_p95")]
        sql = spread([r["sql_p95"] for r in rounds], ".2f")
        ratio = spread([r["ratio"] for r in rounds], ".1f")
        print(
            f"| {label:<34} | {cells[0]:<14} | {cells[1]:<14} | {cells[2]:<14} | {sql:<15} "
            f"| {ratio:<14} |"
        )
    rates = [e["rate"] for e in exports]
    print(
        f"\nCSV of every offer ({exports[0]['rows']:,} rows): {spread(rates, ',.0f')} rows/s; "
        f"CPU {spread([e['cpu_s'] for e in exports], '.2f')} s; "
        f"time / bare COPY {spread([e['ratio'] for e in exports], '.2f')}\n"
    )
    targeted = [rounds for label, rounds in pages.items() if label != LARGE_PAGE]
    worst = [max(rounds[i]["p95"] for rounds in targeted) for i in range(REPEATS)]
    checks = [
        (
            f"pricing page (100 rows) p95 < {TARGETS['page_p95_ms']} ms",
            f"worst 100-row page {spread(worst, '.1f')} ms",
            [w < TARGETS["page_p95_ms"] for w in worst],
        ),
        (
            f"CSV export ≥ {TARGETS['csv_rows_per_s']:,} rows/s",
            f"{spread(rates, ',.0f')} rows/s",
            [r >= TARGETS["csv_rows_per_s"] for r in rates],
        ),
    ]
    for name, value, met in checks:
        verdict = "PASS" if all(met) else "FAIL"
        print(f"{verdict}  {name}: {value} (min/median/max; met in {sum(met)} of {len(met)})")
    return all(all(met) for *_, met in checks)


def main() -> int:
    bench.setup()
    from django.test import Client

    from marketplace import catalog, export
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
    urls = {**dict(PAGES), "page 101 (cursor)": deep_cursor(client)}
    sqls = {}
    for label, url in urls.items():
        for _ in range(5):  # warm up
            get(client, url)
        sqls[label] = statements(client, url)
    everything = catalog.Filters(unavailable=True).apply(Offer.objects.all(), catalog.providers())
    copy_sql, copy_params = export.csv_rows(everything).query.sql_with_params()
    pages: dict[str, list[dict]] = {label: [] for label in urls}
    exports = []
    for _ in range(REPEATS):
        for label, url in urls.items():
            pages[label].append(measure_page(client, url, sqls[label]))
        exports.append(measure_csv(client, copy_sql, copy_params))
    return 0 if report(loaded, pages, exports) else 1


if __name__ == "__main__":
    sys.exit(main())

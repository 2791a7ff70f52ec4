"""Ingest at 100,000 offers: the real pipeline against a bare COPY of the same rows.

    make bench-ingest          # or: .venv/bin/python benchmarks/ingest.py

Uses its own database (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/
gpubroker_bench_ingest), created and migrated here. The offers are the ones
benchmarks/marketplace.py builds (BENCH_OFFERS, default 100,000: GPU offers parsed by the GPU
providers' real adapters from payloads grown from the recorded ones, LLM offers shaped after
the recorded ones), built once and not timed.

Each repeat (BENCH_REPEATS, default 5: the COPY alone varies by ~25% between repeats on a
shared machine), with every offer table emptied first:

1. the first poll: every provider's catalog through `providers.pipeline.ingest`, as a poll
   calls it (flags, model identity, G-Scores, COPY, roll-ups, G-Score reference);
2. the baseline, right after, in the same database: the rows that poll stored, serialised
   beforehand, written by one `COPY … FROM STDIN` into a table made `LIKE providers_offer
   INCLUDING ALL` (the same columns, defaults, generated column, checks and the same
   indexes; no foreign keys, as the offer table has none), committed; and, to show what they
   cost, the same COPY into a table with the primary key alone and into one with the same
   indexes and the three foreign keys Django would declare for the offer's provider, GPU
   model and LLM model (deferred to the commit), which the offer table does without;
3. a re-poll with 5% of the prices lowered by 10%, through `ingest` again;
4. the first poll again (offers emptied), as the worker runs polls: each provider's poll a
   task of its own, BENCH_WORKERS at a time (default 2, the Procfile's `--concurrency=2`), in
   a pool of forked processes, each with its own connection and transaction, as Celery's
   prefork pool runs `poll_provider`; and its baseline, the same rows COPYed per provider,
   as many at a time, each COPY in its own connection and transaction.

The figures compared are wall times (the pipeline's includes its queries and commit, the
COPY's its commit), paired per repeat; Python CPU time (thread_time) of the pipeline is shown
beside them. PASS when the median pipeline/COPY ratio is at most 1.2 and the median rate at
least 20,000 offers/s, one poll at a time (steps 1-2); the rate is printed beside the COPY's
alone, which bounds it, and the rate of the polls as the worker runs them (step 4), shown, not
judged.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/gpubroker_bench_ingest"
)

from benchmarks import marketplace as bench  # noqa: E402  (after the environment is set)

REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))  # the Procfile's worker: --concurrency=2
# The LLM catalog's distinct models: 1,200 in all, 400 for each of the 3 LLM providers (real
# catalogs list ~10 (Groq) to some hundreds (DeepInfra, the Hugging Face router)), so a
# model has ~33 offers (serving providers × regions). "per-offer": every LLM offer a model of
# its own (40,000 new models at the first poll), the catalog this benchmark used before.
LLM_MODELS = os.environ.get("BENCH_LLM_MODELS", "1200")
TARGETS = {"ratio": 1.2, "offers_per_s": 20_000}
SAME_INDEXES = "bench_copy_same_indexes"
PKEY_ONLY = "bench_copy_pkey_only"
WITH_FKS = "bench_copy_with_fks"


def offer_columns() -> list[str]:
    """The columns a poll writes (providers.pipeline.WRITTEN_FIELDS), quoted."""
    from django.db import connection

    from providers.pipeline import WRITTEN_FIELDS

    return [connection.ops.quote_name(f.column) for f in WRITTEN_FIELDS]


def foreign_keys() -> list[str]:
    """The foreign keys a Django model declares for the offer's provider, GPU model and LLM
    model (deferred to the commit), which the offer table does without (`db_constraint=False`;
    providers.pipeline.lock_referenced checks them once a poll): what they would cost."""
    from django.db import connection

    from providers.models import Offer

    quote = connection.ops.quote_name
    return [
        f"FOREIGN KEY ({quote(f.column)}) REFERENCES {quote(f.related_model._meta.db_table)}"
        f"({quote(f.target_field.column)}) DEFERRABLE INITIALLY DEFERRED"
        for f in Offer._meta.concrete_fields
        if f.is_relation and not f.db_constraint
    ]


def load_average() -> str:
    return "load average " + ", ".join(f"{n:.2f}" for n in os.getloadavg())


def create_copy_tables() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {SAME_INDEXES}, {PKEY_ONLY}, {WITH_FKS}")
        cursor.execute(f"CREATE TABLE {SAME_INDEXES} (LIKE providers_offer INCLUDING ALL)")
        cursor.execute(f"CREATE TABLE {WITH_FKS} (LIKE providers_offer INCLUDING ALL)")
        for definition in foreign_keys():
            cursor.execute(f"ALTER TABLE {WITH_FKS} ADD {definition}")
        cursor.execute(
            f"CREATE TABLE {PKEY_ONLY} (LIKE providers_offer INCLUDING DEFAULTS "
            "INCLUDING GENERATED INCLUDING IDENTITY INCLUDING CONSTRAINTS, PRIMARY KEY (id))"
        )
        cursor.execute(
            "SELECT count(*) FROM pg_indexes WHERE tablename IN (%s, %s) GROUP BY tablename "
            "ORDER BY tablename",
            ["providers_offer", SAME_INDEXES],
        )
        counts = [n for (n,) in cursor.fetchall()]
    assert len(set(counts)) == 1, f"index counts differ: {counts}"


def empty() -> None:
    """No offers, price history, roll-ups or models: every repeat's first poll is a first."""
    from django.db import connection

    from providers.models import LlmModel, Offer, OfferFacet, OfferPriceBand, PriceChange

    tables = [m._meta.db_table for m in (PriceChange, OfferFacet, OfferPriceBand, Offer)]
    tables.append(LlmModel._meta.db_table)
    with connection.cursor() as cursor:
        # CASCADE: the broker's usage rows point at offers and models (none in this database).
        cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
        cursor.execute("CHECKPOINT")  # the previous repeat's writes are not flushed in this one


def stored_rows(provider=None) -> bytes:
    """The offers the pipeline stored (one provider's, if given), in COPY's text format, in
    the pipeline's column order."""
    from django.db import connection

    buffer = io.BytesIO()
    where = "" if provider is None else f"WHERE provider_id = {int(provider.pk)}"
    query = (
        f"COPY (SELECT {', '.join(offer_columns())} FROM providers_offer {where} ORDER BY id) "
        "TO STDOUT"
    )
    with connection.cursor() as cursor, cursor.cursor.copy(query) as copy:
        for chunk in copy:
            buffer.write(chunk)
    return buffer.getvalue()


def emptied(table: str) -> None:
    """`table` emptied, and the writes before flushed (not counted in what is timed next)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {table}")
        cursor.execute("CHECKPOINT")


def timed_copy(table: str, data: bytes) -> float:
    """Seconds to COPY `data` into an emptied `table` and commit."""
    emptied(table)
    started = time.perf_counter()
    copy_in(table, data)
    return time.perf_counter() - started


def copy_in(table: str, data: bytes) -> None:
    """COPY `data` into `table` in a transaction of its own, committed."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        sql = f"COPY {table} ({', '.join(offer_columns())}) FROM STDIN"
        with cursor.cursor.copy(sql) as copy:
            view = memoryview(data)
            for start in range(0, len(view), 1 << 20):
                copy.write(view[start : start + (1 << 20)])


def as_parsed(flags: list) -> None:
    """Each offer's price flags as its adapter parsed them: ingest adds its own each poll."""
    for offer, original in flags:
        offer.price_flags = original


def timed_ingest(by_provider: dict, flags: list) -> tuple[float, float, dict[str, int]]:
    """Wall and Python CPU seconds of one poll of every provider, and the summed counts."""
    from providers.pipeline import ingest

    as_parsed(flags)
    totals: dict[str, int] = {}
    started, cpu = time.perf_counter(), time.thread_time()
    for provider, catalog in by_provider.items():
        for name, n in ingest(provider, catalog).items():
            totals[name] = totals.get(name, 0) + n
    return time.perf_counter() - started, time.thread_time() - cpu, totals


# What the pool's forked processes read: set before the fork, so each has it in its memory.
_TASKS: list = []


def _ingest_task(n: int) -> tuple[dict[str, int], float]:
    """One provider's poll in a pool process: its counts and Python CPU seconds."""
    from providers.pipeline import ingest

    provider, catalog = _TASKS[n]
    cpu = time.thread_time()
    return ingest(provider, catalog), time.thread_time() - cpu


def _copy_task(n: int) -> None:
    """One provider's stored rows COPYed into the baseline table in a pool process."""
    copy_in(*_TASKS[n])


def in_pool(function, tasks: list) -> tuple[float, list]:
    """Seconds to run `function` over `tasks`, WORKERS at a time in forked processes (each
    its own connection, as Celery's prefork pool; forked before the clock starts)."""
    from django.db import connections

    global _TASKS
    _TASKS = tasks
    connections.close_all()  # a forked process must not share the parent's connection
    with multiprocessing.get_context("fork").Pool(WORKERS) as pool:
        started = time.perf_counter()
        results = pool.map(function, range(len(tasks)), chunksize=1)
        elapsed = time.perf_counter() - started
    _TASKS = []
    return elapsed, results


def pooled_ingest(by_provider: dict, flags: list) -> tuple[float, float]:
    """Wall seconds of every provider's first poll as the worker runs them, and the summed
    Python CPU of the polls."""
    empty()
    as_parsed(flags)
    elapsed, results = in_pool(_ingest_task, list(by_provider.items()))
    return elapsed, sum(cpu for _, cpu in results)


def pooled_copy(table: str, providers: list) -> float:
    """Seconds to COPY each provider's stored rows into an emptied `table`, as many at a
    time as the pool's polls."""
    data = [stored_rows(provider) for provider in providers]
    emptied(table)
    elapsed, _ = in_pool(_copy_task, [(table, rows) for rows in data])
    return elapsed


def repeat(by_provider: dict, flags: list, rng: random.Random) -> dict:
    from providers.models import LlmModel, Offer

    empty()
    first_s, first_cpu, counts = timed_ingest(by_provider, flags)
    offers = Offer.objects.count()
    models = LlmModel.objects.count()
    data = stored_rows()
    copy_s = timed_copy(SAME_INDEXES, data)
    pkey_s = timed_copy(PKEY_ONLY, data)
    fks_s = timed_copy(WITH_FKS, data)
    for catalog in by_provider.values():
        bench.move_prices(catalog, rng)
    repoll_s, repoll_cpu, recounts = timed_ingest(by_provider, flags)
    pooled_s, pooled_cpu = pooled_ingest(by_provider, flags)
    pooled_copy_s = pooled_copy(SAME_INDEXES, list(by_provider))
    return {
        "offers": offers,
        "models": models,
        "load": load_average(),
        "ingest_s": first_s,
        "ingest_cpu": first_cpu,
        "added": counts["added"],
        "copy_s": copy_s,
        "pkey_s": pkey_s,
        "fks_s": fks_s,
        "ratio": first_s / copy_s,
        "rate": offers / first_s,
        "repoll_s": repoll_s,
        "repoll_cpu": repoll_cpu,
        "repoll_changed": recounts["changed"],
        "copy_rate": offers / copy_s,
        "pooled_s": pooled_s,
        "pooled_cpu": pooled_cpu,
        "pooled_copy_s": pooled_copy_s,
        "pooled_ratio": pooled_s / pooled_copy_s,
        "pooled_rate": offers / pooled_s,
    }


def spread(values: list[float], fmt: str) -> str:
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"min {low:{fmt}}, median {mid:{fmt}}, max {high:{fmt}}"


def report(runs: list[dict]) -> bool:
    def column(name: str) -> list[float]:
        return [run[name] for run in runs]

    offers, models = runs[0]["offers"], runs[0]["models"]
    print(
        f"\n{offers:,} offers ({models:,} new LLM models at the first poll), "
        f"{len(runs)} repeats (min / median / max):\n"
    )
    rows = [
        ("first poll through providers.pipeline.ingest, wall", column("ingest_s"), ".2f", "s"),
        ("  of which Python CPU (thread_time)", column("ingest_cpu"), ".2f", "s"),
        ("COPY of the same rows, same indexes", column("copy_s"), ".2f", "s"),
        ("COPY of the same rows, primary key alone", column("pkey_s"), ".2f", "s"),
        ("COPY, same indexes and foreign keys (not kept)", column("fks_s"), ".2f", "s"),
        ("re-poll, 5% of prices moved, wall", column("repoll_s"), ".2f", "s"),
        ("  of which Python CPU (thread_time)", column("repoll_cpu"), ".2f", "s"),
        ("pipeline / COPY (same indexes), per repeat", column("ratio"), ".2f", "×"),
        ("pipeline offers/s", column("rate"), ",.0f", "/s"),
        ("  the COPY alone, rows/s", column("copy_rate"), ",.0f", "/s"),
        (f"first polls, {WORKERS} at a time (the worker), wall", column("pooled_s"), ".2f", "s"),
        ("  of which Python CPU, summed over the polls", column("pooled_cpu"), ".2f", "s"),
        (f"COPY per provider, {WORKERS} at a time", column("pooled_copy_s"), ".2f", "s"),
        ("pipeline / COPY, both that way, per repeat", column("pooled_ratio"), ".2f", "×"),
        (f"pipeline offers/s, {WORKERS} polls at a time", column("pooled_rate"), ",.0f", "/s"),
    ]
    for label, values, fmt, unit in rows:
        print(f"  {label:<48} {spread(values, fmt)} {unit}")
    changed = statistics.median(column("repoll_changed"))
    print(f"  (the re-poll rewrote a median of {changed:,.0f} changed offers)")
    ratio = statistics.median(column("ratio"))
    rate = statistics.median(column("rate"))
    pooled = statistics.median(column("pooled_rate"))
    copy_rate = statistics.median(column("copy_rate"))
    limit, floor = TARGETS["ratio"], TARGETS["offers_per_s"]
    checks = [
        (f"ingest ≤ {limit}× COPY: median {ratio:.2f}×", ratio <= limit),
        (
            f"ingest ≥ {floor:,} offers/s: median {rate:,.0f}/s (the COPY alone: "
            f"{copy_rate:,.0f} rows/s; {WORKERS} polls at a time: {pooled:,.0f} offers/s)",
            rate >= floor,
        ),
    ]
    return bench.verdicts(checks)


def main() -> int:
    bench.setup()
    from providers.registry import load_registry

    load_registry()
    create_copy_tables()
    empty()
    rng = random.Random(5)
    started = time.perf_counter()
    models = None if LLM_MODELS == "per-offer" else int(LLM_MODELS)
    by_provider = bench.catalogs(rng, bench.OFFERS, models)
    flags = [(o, o.price_flags) for c in by_provider.values() for o in c.offers]
    print(
        f"Catalogs of {len(flags):,} offers (LLM models: {LLM_MODELS}) built in "
        f"{time.perf_counter() - started:.1f} s; {bench.machine()}; {load_average()}"
    )
    print(f"Foreign keys the offer table does without: {'; '.join(foreign_keys())}")
    runs = []
    for n in range(REPEATS):
        runs.append(repeat(by_provider, flags, rng))
        run = runs[-1]
        print(
            f"repeat {n + 1}: ingest {run['ingest_s']:.2f} s, COPY {run['copy_s']:.2f} s "
            f"({run['ratio']:.2f}×), re-poll {run['repoll_s']:.2f} s, {WORKERS} at a time "
            f"{run['pooled_s']:.2f} s, COPY {run['pooled_copy_s']:.2f} s "
            f"({run['pooled_ratio']:.2f}×); {run['load']}",
            flush=True,
        )
    return 0 if report(runs) else 1


if __name__ == "__main__":
    sys.exit(main())

"""How a marketplace fragment's time grows with the offers: p95 at 1,000,000 offers against
p95 at 10,000, both measured in the same minutes, request by request in turn.

    make bench-growth          # or: .venv/bin/python benchmarks/growth.py

Two databases as benchmarks/marketplace.py loads them: BENCH_10K_DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/gpubroker_bench_10k, 10,000 offers) and BENCH_1M_DATABASE_URL
(default …/gpubroker_bench_1m, 1,000,000 offers). One that is missing or holds another number
of offers is loaded first, by marketplace.py's own loading (~1 minute for 10,000, 5–10 for
1,000,000 on 2 cores); the same as `BENCH_OFFERS=<n> BENCH_DATABASE_URL=<url>
make bench-marketplace` would leave. Redis as deployed: BENCH_REDIS_URL (default db 11 on
localhost), each size's cache under a key prefix of its own.

Each size is served by a process of its own (`growth.py --serve`, Django's test client over
that size's database: full middleware, view and template, as marketplace.py times them). After
a warm-up, each of marketplace.py's filter rows is timed in BENCH_REPEATS rounds (default 5)
of BENCH_RUNS requests per size (default 100): the HTMX fragment at 10,000 then at 1,000,000,
then the other way round, and the fragment's own SQL sent bare through psycopg the same way
(marketplace.bare_sql), so a burst of load from elsewhere on the machine falls on both sizes
alike. The process not being timed waits on its pipe. Printed per row: min/median/max over the
rounds of each size's fragment p95, their ratio, the bare SQL's ratio, the CPU per fragment,
and the shared buffers PostgreSQL touches for the request's statements at each size (EXPLAIN
ANALYZE, BUFFERS: a plan that reads more of an index at 1,000,000 shows there, whatever the
load). A row PASSes when the median of its rounds' ratios is at most 1.5.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import marketplace as bench  # noqa: E402  (its environment set by --serve's parent)

RUNS = int(os.environ.get("BENCH_RUNS", "100"))  # requests per size, row and round
REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))
WARM = 5  # untimed fragments per size and row first: compiled, cached, in shared buffers
LIMIT = 1.5  # p95 at 1,000,000 over p95 at 10,000 (issue 16)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")


@dataclass(frozen=True)
class Size:
    name: str
    offers: int
    database_url: str


def sizes() -> tuple[Size, Size]:
    base = "postgres://postgres@127.0.0.1:5432/"
    return (
        Size("10k", 10_000, os.environ.get("BENCH_10K_DATABASE_URL", base + "gpubroker_bench_10k")),
        Size("1M", 1_000_000, os.environ.get("BENCH_1M_DATABASE_URL", base + "gpubroker_bench_1m")),
    )


# --- one size's process: `growth.py --serve` --------------------------------------------------
def serve() -> None:
    """Load this size's database if it needs it, then answer one JSON line per JSON line read:
    [verb, url] → the verb's answer (VERBS)."""
    answers, sys.stdout = sys.stdout, sys.stderr  # the loading's messages are not answers
    bench.setup()
    from django.test import Client

    from providers.models import Offer

    found = Offer.objects.count()
    if found != bench.OFFERS:
        name = bench.DATABASE_URL.rsplit("/", 1)[1]
        print(f"{name}: {found:,} offers, not {bench.OFFERS:,}; loading it", flush=True)
        bench.print_load(bench.load())
    client = Client(HTTP_HOST="localhost")
    sent: dict[str, list[str]] = {}  # url → the SQL its warm fragment sends
    answers.write(json.dumps(Offer.objects.count()) + "\n")
    answers.flush()
    for line in sys.stdin:
        verb, url = json.loads(line)
        answers.write(json.dumps(VERBS[verb](client, url, sent)) + "\n")
        answers.flush()


def warm(client, url: str, sent: dict[str, list[str]]) -> dict:
    for _ in range(WARM):
        bench.timed(client, url, True)
    sent[url] = bench.statements(client, url, True)
    return {"matches": bench.matches(client, url), "buffers": buffers(sent[url])}


def buffers(statements: list[str]) -> int:
    """Shared buffers (hit or read) PostgreSQL touches executing these statements."""
    from django.db import connection

    total = 0
    connection.ensure_connection()
    with connection.connection.cursor() as cursor:  # psycopg's own, as bare_sql sends them
        for statement in statements:
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {statement}".encode())
            plan = cursor.fetchone()[0][0]["Plan"]  # the JSON, decoded by psycopg
            total += plan.get("Shared Hit Blocks", 0) + plan.get("Shared Read Blocks", 0)
    return total


VERBS = {
    "warm": warm,
    "fragment": lambda client, url, sent: bench.timed(client, url, True),
    "sql": lambda client, url, sent: bench.bare_sql(sent[url]),
}


# --- the driver -------------------------------------------------------------------------------
class Side:
    """A size's `--serve` process, asked one thing at a time."""

    def __init__(self, size: Size):
        self.size = size
        env = os.environ | {
            "BENCH_DATABASE_URL": size.database_url,
            "BENCH_OFFERS": str(size.offers),
            "REDIS_URL": REDIS_URL,
            "CACHE_KEY_PREFIX": f"bench-growth-{size.name}",
        }
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )

    def offers(self) -> int:
        """The offers stored, once the database is loaded."""
        return self.read()

    def ask(self, verb: str, url: str):
        self.process.stdin.write(json.dumps([verb, url]) + "\n")
        self.process.stdin.flush()
        return self.read()

    def read(self):
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.size.name} process stopped (its error is above)")
        return json.loads(line)

    def stop(self) -> None:
        """Ends the process (at once if it is still loading or was stopped midway)."""
        self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def measure_row(small: Side, large: Side, url: str) -> dict:
    """One round of one row: RUNS fragments and RUNS bare SQL runs per size, in turn."""
    wall = {small: [], large: []}
    cpu = {small: [], large: []}
    sql = {small: [], large: []}
    for i in range(RUNS):
        pair = (small, large) if i % 2 == 0 else (large, small)
        for side in pair:
            elapsed, thread = side.ask("fragment", url)
            wall[side].append(elapsed)
            cpu[side].append(thread)
        for side in pair:
            sql[side].append(side.ask("sql", url))
    small_p95, large_p95 = bench.p(wall[small], 95), bench.p(wall[large], 95)
    return {
        "p95": (small_p95, large_p95),
        "ratio": large_p95 / small_p95,
        "sql_ratio": bench.p(sql[large], 95) / bench.p(sql[small], 95),
        "cpu": (bench.p(cpu[small], 50), bench.p(cpu[large], 50)),
    }


def measure(small: Side, large: Side) -> list[dict]:
    rows = []
    for label, query in bench.combinations():
        url = bench.url(query)
        warmed = (small.ask("warm", url), large.ask("warm", url))
        rows.append({"label": label, "url": url, "warm": warmed, "rounds": []})
    for n in range(REPEATS):
        for row in rows:
            row["rounds"].append(measure_row(small, large, row["url"]))
        print(f"round {n + 1} of {REPEATS} done; {bench.machine()}", flush=True)
    return rows


def report(sides: tuple[Side, Side], rows: list[dict], machine_before: str) -> bool:
    small, large = (side.size for side in sides)
    names = [size.database_url.rsplit("/", 1)[1] for size in (small, large)]
    print(f"\n{small.offers:,} offers ({names[0]}) against {large.offers:,} ({names[1]}),")
    print(f"timed in turn. {machine_before} at the start, {os.getloadavg()[0]:.1f} at the end;")
    print(f"{REPEATS} rounds of {RUNS} fragments per size and row. Figures are min/median/max over")
    print(
        f"the rounds; ratio = fragment p95 at {large.name} / at {small.name}, in the same round.\n"
    )
    print(
        f"| filters | matches {small.name} / {large.name} | fragment p95 ms {small.name} "
        f"| fragment p95 ms {large.name} | ratio | bare SQL p95 ratio "
        f"| CPU/fragment p50 ms {small.name} / {large.name} | buffers {small.name} / {large.name} |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        rounds = row["rounds"]
        (a, b) = row["warm"]
        cpu = [statistics.median(r["cpu"][i] for r in rounds) for i in (0, 1)]
        print(
            f"| {row['label']} | {a['matches']} / {b['matches']} "
            f"| {bench.spread([r['p95'][0] for r in rounds])} "
            f"| {bench.spread([r['p95'][1] for r in rounds])} "
            f"| {bench.spread([r['ratio'] for r in rounds], '{:.2f}×')} "
            f"| {bench.spread([r['sql_ratio'] for r in rounds], '{:.2f}×')} "
            f"| {cpu[0]:.1f} / {cpu[1]:.1f} | {a['buffers']} / {b['buffers']} |"
        )
    checks = []
    for row in rows:
        ratios = [r["ratio"] for r in row["rounds"]]
        checks.append(
            (
                f"{row['label']}: p95 at {large.offers:,} ≤ {LIMIT}× at {small.offers:,}: "
                f"median {statistics.median(ratios):.2f}× "
                f"({bench.spread(ratios, '{:.2f}×')})",
                statistics.median(ratios) <= LIMIT,
            )
        )
    return bench.verdicts(checks)


def main() -> int:
    machine_before = bench.machine()
    sides = tuple(Side(size) for size in sizes())
    try:
        for side in sides:
            offers = side.offers()
            print(f"{side.size.name}: {offers:,} offers; warming up", flush=True)
        rows = measure(*sides)
    finally:
        for side in sides:
            side.stop()
    return 0 if report(sides, rows, machine_before) else 1


if __name__ == "__main__":
    sys.exit(serve() if sys.argv[1:] == ["--serve"] else main())

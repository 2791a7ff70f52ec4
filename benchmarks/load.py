"""The marketplace under load: the production server, HTMX fragment requests at concurrency 1,
8 and 32.

    make bench-load            # or: .venv/bin/python benchmarks/load.py

Uses its own database (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/
gpubroker_bench_load), filled with 100,000 offers (BENCH_OFFERS) the way
benchmarks/marketplace.py fills its own: through `providers.pipeline.ingest`, two re-polls moving
5% of prices (price history for the cards), a year of poll runs, VACUUM ANALYZE. With
BENCH_REUSE=1 a database that already holds the offers is used as it is.

The server is the one `make run` starts (the Procfile's `web`: uvicorn serving
gpubroker/asgi.py, no access log) with BENCH_WORKERS (default 2) worker processes, DEBUG off,
Redis at BENCH_REDIS_URL (default db 7; its keys under their own prefix). This process drives
it over loopback with keep-alive HTTP/1.1 connections from one asyncio loop, no HTTP library
(a request costs the driver a few tens of microseconds, so on two cores the server keeps nearly
all the CPU): each connection sends the marketplace's HTMX fragment request (`/` with
`HX-Request: true`) for a mix of filter URLs in turn, for BENCH_SECONDS (default 20) per
concurrency level after BENCH_WARMUP seconds (default 3). Printed per level: requests/s,
p50/p95/p99 latency, errors (anything but a 200, or a dropped connection), and the CPU used
per request by the server's processes and by the PostgreSQL backends serving them. PASS
when concurrency 8 reaches 100 requests/s and no level has an error.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/gpubroker_bench_load"
)

from benchmarks import marketplace as bench  # noqa: E402  (after the environment is set)

WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "20"))
WARMUP = float(os.environ.get("BENCH_WARMUP", "3"))
LEVELS = [int(n) for n in os.environ.get("BENCH_CONCURRENCY", "1,8,32").split(",")]
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")
TARGET_RPS, TARGET_AT = 100, 8
# What visitors ask for, as fragment URLs, repeated by how often (the filters of
# benchmarks/marketplace.py, the default list first and most).
MIX = [
    ("/", 6),
    ("/?page=2", 2),
    ("/?kind=gpu", 3),
    ("/?kind=llm", 2),
    ("/?q=llama", 2),
    ("/?kind=gpu&max_price=2&sort=gscore", 2),
    ("/?kind=gpu&gpu=H100+SXM+80GB&gpu=H100+PCIe+80GB&min_vram=80&max_price=3", 1),
    ("/?kind=llm&task=text-generation&min_context=131072&sort=throughput", 1),
    ("/?provider=deepinfra&region=us&region=eu&sort=newest&page=3", 1),
    ("/?sort=newest", 1),
    ("/?kind=gpu&max_price=2&sort=gscore&page=2", 1),
    (None, 2),  # a price limit of the visitor's own: mostly a URL not asked for before
]


# Every URL asked for so far (all levels, warm-ups included). A URL's first visit misses every
# per-query cache (the form, counts, page SQL, groups kept until the next poll); its first
# visit to the other worker does too, so the per-query hit rate is below 1 − first visits.
SEEN: set[str] = set()


def fresh(rng: random.Random) -> str:
    """A GPU filter with a price limit in cents: 2,253 URLs, few of them asked twice in a run."""
    sort = rng.choice(["price", "gscore", "newest"])
    return f"/?kind=gpu&max_price={rng.randint(50, 800) / 100:.2f}&sort={sort}"


# --- the database -----------------------------------------------------------------------------
def fill() -> int:
    """100,000 offers loaded as benchmarks/marketplace.py loads them; the count stored."""
    from providers.models import Offer

    if os.environ.get("BENCH_REUSE") and Offer.objects.count() >= bench.OFFERS * 0.9:
        return Offer.objects.count()
    return bench.load()["offers"]


# --- the server -------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int) -> subprocess.Popen:
    """The Procfile's web process, with WORKERS workers."""
    env = os.environ | {
        "DATABASE_URL": bench.DATABASE_URL,
        "REDIS_URL": REDIS_URL,
        "CACHE_KEY_PREFIX": "bench-load",
        "DEBUG": "False",
        "SECURE_SSL_REDIRECT": "False",
        "LOG_LEVEL": "WARNING",
    }
    command = [
        str(ROOT / ".venv" / "bin" / "uvicorn"),
        "gpubroker.asgi:application",
        *("--host", "127.0.0.1", "--port", str(port), "--no-access-log"),
        *("--workers", str(WORKERS)),
    ]
    server = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            status, _ = asyncio.run(one_request(port, "/"))
            if status == 200:
                return server
        except OSError:
            pass
        time.sleep(0.5)
    stop_server(server)
    raise RuntimeError("the server did not answer within 60 s")


def stop_server(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the server: the supervisor and its workers, living and reaped."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid, *children(pid)]
    for each in pids:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        # utime, stime, cutime, cstime: fields 14-17 of /proc/PID/stat (12-15 after the name).
        total += sum(int(n) for n in fields[11:15]) / ticks
    return total


def database_cpu() -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend connected to the benchmark's database
    (the server's pooled connections; the database server is on this machine)."""
    from django.db import connection

    name = bench.DATABASE_URL.rsplit("/", 1)[1]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        )
        pids = [pid for (pid,) in cursor.fetchall()]
    return {pid: process_cpu(pid) for pid in pids}


def process_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    found = []
    for path in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(path.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(path.parent.name))
        except (FileNotFoundError, ValueError):
            continue
    return found


# --- the driver -------------------------------------------------------------------------------
def request_bytes(url: str) -> bytes:
    return (
        f"GET {url} HTTP/1.1\r\nHost: localhost\r\nHX-Request: true\r\n"
        "Accept-Encoding: identity\r\n\r\n"
    ).encode()


async def read_response(reader: asyncio.StreamReader) -> int:
    """The status of one HTTP/1.1 response, its body read to the end (Content-Length or
    chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
            await reader.readexactly(size + 2)
        await reader.readuntil(b"\r\n")
    return status


async def one_request(port: int, url: str) -> tuple[int, float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.perf_counter()
    writer.write(request_bytes(url))
    status = await read_response(reader)
    writer.close()
    return status, time.perf_counter() - started


async def connection_loop(port, urls, offset, stop_at, record_from, latencies, errors, firsts):
    reader = writer = None
    n = offset
    rng = random.Random(offset)
    while time.perf_counter() < stop_at:
        url = urls[n % len(urls)] or fresh(rng)
        n += 1
        started = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request_bytes(url))
            status = await read_response(reader)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            status = 0
            if writer is not None:
                writer.close()
            reader = writer = None
        first = url not in SEEN
        SEEN.add(url)
        if started < record_from:
            continue
        if status == 200:
            latencies.append(time.perf_counter() - started)
            firsts.append(first)
        else:
            errors.append(status)
    if writer is not None:
        writer.close()


async def drive(port: int, concurrency: int) -> dict:
    urls = [url for url, weight in MIX for _ in range(weight)]
    random.Random(concurrency).shuffle(urls)
    latencies: list[float] = []
    errors: list[int] = []
    firsts: list[bool] = []  # per measured request: its URL's first visit to this server
    now = time.perf_counter()
    record_from, stop_at = now + WARMUP, now + WARMUP + SECONDS
    await asyncio.gather(
        *(
            connection_loop(port, urls, i * 7, stop_at, record_from, latencies, errors, firsts)
            for i in range(concurrency)
        )
    )
    return {"latencies": latencies, "errors": errors, "urls": len(SEEN), "first": sum(firsts)}


def level(server: subprocess.Popen, port: int, concurrency: int) -> dict:
    cpu, db = cpu_seconds(server.pid), database_cpu()
    result = asyncio.run(drive(port, concurrency))
    cpu = cpu_seconds(server.pid) - cpu
    db = sum(seconds - db.get(pid, 0.0) for pid, seconds in database_cpu().items())
    latencies = sorted(result["latencies"])
    done = len(latencies)
    pct = statistics.quantiles(latencies, n=100, method="inclusive") if done > 1 else [0] * 99
    return {
        "concurrency": concurrency,
        "requests": done,
        "rps": done / SECONDS,
        "p50": pct[49] * 1000,
        "p95": pct[94] * 1000,
        "p99": pct[98] * 1000,
        "errors": len(result["errors"]),
        "urls": result["urls"],
        "first": result["first"] / max(1, done),
        # Over warm-up and measured time, per request answered (an estimate: the driver counts
        # only the measured ones, the CPU counter all).
        "cpu_ms": cpu * 1000 / max(1, done) * SECONDS / (SECONDS + WARMUP),
        "db_ms": db * 1000 / max(1, done) * SECONDS / (SECONDS + WARMUP),
    }


def report(offers: int, rows: list[dict]) -> bool:
    cores = os.cpu_count()
    print(
        f"\n{offers:,} offers; uvicorn gpubroker.asgi:application, {WORKERS} workers; "
        f"{cores} CPUs; {SECONDS:.0f} s per level; HTMX fragment of / over {len(MIX) - 1} filter "
        "URLs and fresh GPU price limits\n"
    )
    print(
        "| concurrency | requests/s | p50 ms | p95 ms | p99 ms | errors "
        "| server CPU/request | database CPU/request | URLs so far | first visits |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['concurrency']} | {r['rps']:.1f} | {r['p50']:.1f} | {r['p95']:.1f} | "
            f"{r['p99']:.1f} | {r['errors']} | {r['cpu_ms']:.1f} ms | {r['db_ms']:.1f} ms | "
            f"{r['urls']:,} | {r['first']:.1%} |"
        )
    at = next((r for r in rows if r["concurrency"] == TARGET_AT), None)
    errors = sum(r["errors"] for r in rows)
    checks = [(f"no errors: {errors}", errors == 0)]
    if at:
        checks.insert(
            0,
            (
                f"≥ {TARGET_RPS} requests/s at concurrency {TARGET_AT}: {at['rps']:.1f}/s",
                at["rps"] >= TARGET_RPS,
            ),
        )
    return bench.verdicts(checks)


def main() -> int:
    bench.setup()
    offers = fill()
    print(f"{offers:,} offers in {bench.DATABASE_URL.rsplit('/', 1)[1]}", flush=True)
    port = free_port()
    server = start_server(port)
    try:
        rows = []
        for concurrency in LEVELS:
            rows.append(level(server, port, concurrency))
            r = rows[-1]
            print(
                f"concurrency {concurrency}: {r['rps']:.1f} requests/s, p50 {r['p50']:.1f} ms, "
                f"p99 {r['p99']:.1f} ms, {r['errors']} errors",
                flush=True,
            )
    finally:
        stop_server(server)
    return 0 if report(offers, rows) else 1


if __name__ == "__main__":
    sys.exit(main())

"""What the resilient client costs per call: breaker + limiter + cache + metrics.

    make bench-client          (or: .venv/bin/python benchmarks/client_overhead.py)

Calls a loopback HTTP server (keep-alive, a small JSON body) N times each way, in one run:
a bare httpx call, the seam's bare attempt (ProviderClient.send), and the full resilient
ProviderClient.request() with the cache off (every call goes out), on a miss (a new URL each
call, so the answer is also stored), and on a hit. Each shared store is measured in its own
process: Redis (REDIS_URL), the database store on Postgres (DATABASE_URL, in a throwaway test
database) and the embedded default, SQLite with Django's database cache (a temporary file).
Prints medians and p95 in microseconds, and each path's median overhead over bare httpx.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
N = int(os.environ.get("BENCH_CALLS", "2000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
TARGET = 1.2  # resilient call (cache off) ≤ 1.2 × a bare httpx call, on Redis
BODY = json.dumps({"object": "list", "data": [{"id": f"model-{i}"} for i in range(20)]}).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as against a real provider
    disable_nagle_algorithm = True  # else delayed ACKs add 40 ms to every call
    wbufsize = -1  # headers and body leave in one write

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args) -> None:
        pass


def timed(fn, n: int = N) -> list[float]:
    for _ in range(min(200, n)):  # warm up connections, caches and the JIT-less interpreter
        fn(-1)
    samples = []
    for i in range(n):
        started = time.perf_counter_ns()
        fn(i)
        samples.append((time.perf_counter_ns() - started) / 1000)
    return samples


def measure(store: str) -> list[dict]:
    """Run inside one configured process; returns a row per path."""
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    import httpx
    from django.conf import settings
    from django.core.management import call_command
    from django.test.utils import setup_databases, teardown_databases

    from resilience import cache
    from resilience.client import ProviderClient
    from resilience.policy import ProviderPolicy
    from resilience.store import store as shared_store

    server = subprocess.Popen(  # its own process: no GIL shared with the client measured
        [sys.executable, __file__, "serve"], stdout=subprocess.PIPE, text=True
    )
    origin = f"http://127.0.0.1:{server.stdout.readline().strip()}"
    old_config = None
    if store == "postgres":  # a throwaway test database on DATABASE_URL's server
        old_config = setup_databases(0, False)
    elif store == "sqlite":  # a temporary file, as `make run` would have
        call_command("migrate", verbosity=0)
        call_command("createcachetable")
    # The limiter on, never waiting.
    policy = ProviderPolicy("bench", origin, timeout=10, rate_limit=10**9, rate_limit_burst=10**9)
    shared_store().delete(["breaker:bench", "bucket:bench", "stats:bench"])
    cache.invalidate(["bench"])
    rows = []
    bare = httpx.Client(base_url=origin)
    rows.append(("bare httpx", timed(lambda i: bare.get("/v1/models"))))
    client = ProviderClient(policy)
    rows.append(
        (
            "seam, bare attempt",
            timed(lambda i: client.send(client._http.build_request("GET", "/v1/models"))),
        )
    )
    settings.PROVIDER_CACHE_ENABLED = False
    rows.append(("resilient, cache off", timed(lambda i: client.request("GET", "/v1/models"))))
    settings.PROVIDER_CACHE_ENABLED = True
    rows.append(
        ("resilient, cache miss", timed(lambda i: client.request("GET", f"/v1/models?n={i}")))
    )
    rows.append(("resilient, cache hit", timed(lambda i: client.request("GET", "/v1/models"))))
    # The target: resilient (cache off) against bare httpx, paired round by round in this run.
    settings.PROVIDER_CACHE_ENABLED = False
    ratios = []
    for _ in range(ROUNDS):
        base = statistics.median(timed(lambda i: bare.get("/v1/models"), N // ROUNDS))
        full = statistics.median(timed(lambda i: client.request("GET", "/v1/models"), N // ROUNDS))
        ratios.append(full / base)
    bare.close()
    client.close()
    server.terminate()
    server.wait()
    if old_config is not None:
        teardown_databases(old_config, 0)
    return [
        {
            "store": store,
            "path": name,
            "median": statistics.median(s),
            "p95": statistics.quantiles(s, n=20)[18],
        }
        for name, s in rows
    ] + [{"store": store, "ratios": ratios}]


def child_env(store: str, workdir: str) -> dict[str, str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "gpubroker.settings", "LOG_LEVEL": "WARNING"}
    env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
    env.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/gpubroker")
    if store != "redis":
        env["REDIS_URL"] = ""  # the database store, and (for sqlite) the database cache
    if store == "sqlite":
        env["DATABASE_URL"] = f"sqlite:///{workdir}/bench.sqlite3"
    return env


def serve() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_port, flush=True)
    server.serve_forever()


def main() -> None:
    if sys.argv[1:] == ["serve"]:
        serve()
        return
    if len(sys.argv) > 1:  # a child: one store
        print(json.dumps(measure(sys.argv[1])))
        return
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for store in ("redis", "postgres", "sqlite"):
            env = child_env(store, workdir)
            out = subprocess.run(
                [sys.executable, __file__, store], env=env, cwd=ROOT, capture_output=True, text=True
            )
            if out.returncode:
                sys.exit(f"{store} run failed:\n{out.stderr}")
            rows += json.loads(out.stdout.strip().splitlines()[-1])
    print(f"Resilient client overhead, {N} calls per row, loopback HTTP server (µs per call)\n")
    print(f"{'store':<9} {'path':<22} {'median':>8} {'p95':>8} {'overhead':>9}")
    for store in ("redis", "postgres", "sqlite"):
        base = next(
            r["median"] for r in rows if r["store"] == store and r.get("path") == "bare httpx"
        )
        for r in (r for r in rows if r["store"] == store and "path" in r):
            overhead = r["median"] - base
            print(
                f"{store:<9} {r['path']:<22} {r['median']:>8.0f} {r['p95']:>8.0f} {overhead:>+9.0f}"
            )
    print(f"\nresilient (cache off) / bare httpx, median of {N // ROUNDS} calls, {ROUNDS} rounds:")
    for r in (r for r in rows if "ratios" in r):
        ratios = r["ratios"]
        low, mid, high = min(ratios), statistics.median(ratios), max(ratios)
        verdict = "" if r["store"] != "redis" else ("  PASS" if mid <= TARGET else "  FAIL")
        print(f"{r['store']:<9} min {low:.2f}×  median {mid:.2f}×  max {high:.2f}×{verdict}")
    print(f"(target on Redis: median ≤ {TARGET}×)")


if __name__ == "__main__":
    main()

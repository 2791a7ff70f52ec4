r"""How fast a large Vast.ai search is parsed, stored and scored.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/gpubroker \
        .venv/bin/python benchmarks/gpu_parse.py [offers]

Builds a search answer of N offers (default 3,000, Vast's own cap) from the recorded fixture's
shape, serves it from a loopback HTTP server, and times the real adapter, ingest and G-Score
refresh in a throwaway test database (created and dropped here; your data is not touched).
Prints the median and best of 5 runs for each step.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gpubroker.settings")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402

from tests.providers.volume import vast_search  # noqa: E402

RUNS = 5


def serve(body: bytes) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def timed(
    label: str, step: Callable[[], object], before: Callable[[], object] = lambda: None
) -> None:
    seconds = []
    for _ in range(RUNS):
        before()
        started = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - started)
    median, best = statistics.median(seconds) * 1000, min(seconds) * 1000
    print(f"{label:<42} median {median:8.1f} ms   best {best:8.1f} ms")


def main(count: int) -> None:
    from providers import pipeline
    from providers.adapters.base import Catalog
    from providers.gpus import GpuVocabulary
    from providers.models import Offer, Provider
    from providers.registry import load_registry

    load_registry()
    logging.getLogger("providers.gpus").setLevel(logging.ERROR)  # the unnamed-GPU warning
    body = json.dumps(vast_search(count)).encode()
    server = serve(body)
    settings.VASTAI_BASE_URL = f"http://127.0.0.1:{server.server_port}"
    provider = Provider.objects.get(slug="vastai")
    adapter = provider.adapter()
    catalog = adapter.list_models()
    print(
        f"{count} Vast offers ({len(body) / 1e6:.1f} MB of JSON) -> {len(catalog.offers)} "
        f"offers (on-demand + interruptible), {catalog.skipped} skipped\n"
    )

    def parse_only() -> None:
        vocabulary, scratch = GpuVocabulary.load(), Catalog()
        for item in json.loads(body)["offers"]:
            adapter._offers(item, vocabulary, scratch)

    def clear() -> None:
        Offer.objects.filter(provider=provider).delete()

    timed("fetch + decode + parse (list_models)", adapter.list_models)
    timed("decode + parse only", parse_only)
    timed(
        "ingest, all new (incl. G-Score)", lambda: pipeline.ingest(provider, catalog), before=clear
    )
    timed("ingest, nothing changed (incl. G-Score)", lambda: pipeline.ingest(provider, catalog))
    timed("G-Score refresh alone", pipeline.refresh_gscore_reference)
    server.shutdown()
    adapter.close()


if __name__ == "__main__":
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)

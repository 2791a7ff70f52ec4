"""`make run`'s last word: the URL, printed once the web process answers and the Celery
banners have scrolled past, so it is on screen rather than 60 lines up.

Runs as a Procfile process (`python -m gpubroker.announce`); it then waits quietly, because
honcho stops every process when one exits.
"""

from __future__ import annotations

import argparse
import os
import signal
import time
import urllib.request


def wait_for(url: str, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return True
        except OSError:
            time.sleep(0.5)
    return False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after web answers")
    parser.add_argument("--once", action="store_true", help="exit after printing (tests)")
    args = parser.parse_args(argv)
    # honcho gives each process its own PORT (web's + 100 × position): the Makefile passes
    # web's as WEB_PORT.
    base = f"http://127.0.0.1:{os.environ.get('WEB_PORT') or os.environ.get('PORT', '8000')}/"
    up = wait_for(f"{base}healthz", time.monotonic() + 120)
    time.sleep(args.settle)  # the worker's and beat's banners print meanwhile
    state = "" if up else " (not answering yet: see the web lines above)"
    print(f"GPUBroker: {base}{state}  (status: /status/, health: /health/, admin: /admin/)")
    print("Press Ctrl-C to stop web, worker and beat.", flush=True)
    if not args.once:
        signal.pause()


if __name__ == "__main__":
    main()

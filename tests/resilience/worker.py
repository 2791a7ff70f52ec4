"""Real GPUBroker client calls in a separate process, for the cross-process tests.

    python -m tests.resilience.worker '{"slug": "groq", "prefix": "GROQ", "path": "/x",
                                    "threads": 3, "calls": 1}'

Configured only through the environment, like web, worker and beat. Prints "ready" once
Django is up, waits for a line on stdin, makes the calls and prints each outcome ("ok" or the
error's class name) on its own line as it happens.
"""

from __future__ import annotations

import json
import os
import sys
import threading


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gpubroker.settings")
    import django

    django.setup()
    from providers.models import Provider
    from resilience.client import ProviderClient
    from resilience.errors import ProviderError

    spec = json.loads(sys.argv[1])

    printing = threading.Lock()

    def calls() -> None:
        client = ProviderClient(Provider(slug=spec["slug"], env_prefix=spec["prefix"]).policy())
        for _ in range(spec["calls"]):
            try:
                client.request("GET", spec["path"])
                outcome = "ok"
            except ProviderError as exc:
                outcome = type(exc).__name__
            with printing:  # whole lines, however the threads interleave
                print(outcome, flush=True)
        client.close()

    threads = [threading.Thread(target=calls) for _ in range(spec["threads"])]
    print("ready", flush=True)
    sys.stdin.readline()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()

"""Real GPUBroker client calls in a separate process, for the cross-process tests.

    python -m tests.health.worker '{"slug": "groq", "prefix": "GROQ", "path": "/x",
                                    "threads": 3, "calls": 1}'

Configured only through the environment, like web, worker and beat. Prints "ready" once
Django is up, waits for a line on stdin, makes the calls, prints their outcomes as JSON.
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
    from providers.http import ProviderClient, ProviderError

    spec = json.loads(sys.argv[1])
    outcomes: list[str] = []

    def calls() -> None:
        client = ProviderClient(spec["slug"], spec["prefix"])
        for _ in range(spec["calls"]):
            try:
                client.request("GET", spec["path"])
                outcomes.append("ok")
            except ProviderError as exc:
                outcomes.append(type(exc).__name__)
        client.close()

    threads = [threading.Thread(target=calls) for _ in range(spec["threads"])]
    print("ready", flush=True)
    sys.stdin.readline()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps(outcomes), flush=True)


if __name__ == "__main__":
    main()

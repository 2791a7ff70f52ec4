"""What one process remembers between calls, per provider, for the shared store in use."""

from __future__ import annotations

from typing import Any

from django.conf import settings


class ProcessMemo:
    """Values keyed by provider slug and by REDIS_URL, so a value read from one store is never
    taken for another's (tests switch stores; so may a reconfigured process)."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, str], Any] = {}

    def get(self, slug: str) -> Any:
        return self._values.get((settings.REDIS_URL, slug))

    def set(self, slug: str, value: Any) -> None:
        self._values[(settings.REDIS_URL, slug)] = value

    def forget(self, slug: str | None = None) -> None:
        """Drop what is remembered of one provider (of every provider: no slug)."""
        if slug is None:
            self._values.clear()
        else:
            self._values.pop((settings.REDIS_URL, slug), None)

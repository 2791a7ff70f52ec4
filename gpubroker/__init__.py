from __future__ import annotations

from gpubroker.celery import app as celery_app

__all__ = ("celery_app",)

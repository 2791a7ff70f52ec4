from __future__ import annotations

from celery import shared_task

from providers import pipeline


# acks_late + reject_on_worker_lost: a poll whose worker process dies is handed back to the
# queue and run again (a poll is idempotent); the lock knows the task by its id (Provider.
# claim_poll), so the rerun takes over its dead predecessor's lock at once.
@shared_task(bind=True, ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def poll_provider(self, slug: str, run_id: int | None = None) -> None:
    pipeline.poll_provider(slug, run_id=run_id, task_id=self.request.id or "")

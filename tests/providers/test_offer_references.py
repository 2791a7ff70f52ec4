"""The rows offers point at (provider, GPU model, LLM model): the offer table keeps no
foreign-key constraints on them, so a poll checks and locks them once, and a delete waits for
the poll that writes offers pointing at them."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import OperationalError, connection, transaction

from providers.adapters.base import Catalog, OfferIn
from providers.models import GpuModel, Kind, LlmModel, Offer
from providers.pipeline import Referenced, ReferenceGone, ingest, lock_referenced, poll_provider
from tests.providers.conftest import serve_vast

# Two connections, each seeing what the other committed.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def polled(vastai):
    provider, server = vastai
    serve_vast(server)
    assert poll_provider("vastai").outcome == "ok"
    offer = Offer.objects.exclude(gpu=None).select_related("gpu").first()
    return provider, offer


def pointing_at(gpu: GpuModel) -> Referenced:
    """What a poll writing offers of this GPU model points at."""
    referenced = Referenced()
    referenced.ids[GpuModel].add(gpu.pk)
    return referenced


def gpu_offer(gpu_id: int) -> OfferIn:
    return OfferIn(
        upstream_id="m-1", name="RTX 4090", kind=Kind.GPU, gpu_id=gpu_id, gpu_name="RTX 4090"
    )


def test_deleting_a_gpu_model_unlinks_its_offers_and_a_provider_takes_its_offers(polled):
    provider, offer = polled
    GpuModel.objects.filter(pk=offer.gpu_id).delete()
    offer.refresh_from_db()
    assert offer.gpu_id is None
    provider.delete()
    assert not Offer.objects.filter(provider_id=provider.pk).exists()


def test_a_delete_waits_for_a_poll_writing_offers_that_point_at_the_row(polled):
    provider, offer = polled
    gpu = offer.gpu
    locked, release = threading.Event(), threading.Event()

    def poll_in_progress():
        try:
            with transaction.atomic():
                lock_referenced(provider, pointing_at(gpu))
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    poll = threading.Thread(target=poll_in_progress)
    poll.start()
    try:
        assert locked.wait(10)
        # Another poll pointing at the same GPU is not held up...
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '300ms'")
            lock_referenced(provider, pointing_at(gpu))
        # ...but deleting the GPU waits until the poll has committed.
        with pytest.raises(OperationalError, match="lock timeout"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '300ms'")
            gpu.delete()
    finally:
        release.set()
        poll.join()
    gpu.delete()
    assert not GpuModel.objects.filter(pk=gpu.pk).exists()
    assert Offer.objects.filter(pk=offer.pk, gpu=None).exists()


def test_offers_naming_a_deleted_gpu_model_are_not_written(polled):
    provider, offer = polled
    stored = Offer.objects.order_by("pk").values_list("pk", "usd_per_gpu_hour", "available")
    before = list(stored)
    gone = offer.gpu_id
    GpuModel.objects.filter(pk=gone).delete()
    with pytest.raises(ReferenceGone, match="deleted while the poll ran"):
        ingest(provider, Catalog(offers=[gpu_offer(gone)]))
    assert list(stored.all()) == before


def llm_catalog(names: list[str]) -> Catalog:
    return Catalog(
        offers=[
            OfferIn(upstream_id=name, name=name, kind="llm-inference", usd_per_1m_input=Decimal(1))
            for name in names
        ]
    )


def test_two_providers_first_polls_at_once_each_create_the_models_they_share(registry):
    """As the worker runs polls (two at a time): both list the same new models, in opposite
    orders; each model is created once and neither poll fails on the other's rows."""
    names = [f"org/Shared-{i}" for i in range(3000)]
    catalogs = {"deepinfra": llm_catalog(names), "huggingface": llm_catalog(names[::-1])}
    start = threading.Barrier(2)
    failures = []

    def poll(slug: str) -> None:
        try:
            start.wait(10)
            ingest(registry[slug], catalogs[slug])
        except Exception as exc:  # reported below, with the other thread's
            failures.append(f"{slug}: {exc!r}")
        finally:
            connection.close()

    threads = [threading.Thread(target=poll, args=(slug,)) for slug in catalogs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    assert LlmModel.objects.filter(canonical__startswith="org/shared-").count() == 3000
    for slug in catalogs:
        assert Offer.objects.filter(provider__slug=slug, llm_model__isnull=False).count() == 3000

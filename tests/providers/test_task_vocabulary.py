"""One task vocabulary: each provider's tag maps into it by the table, the raw tag is kept."""

from __future__ import annotations

import pytest

from providers.adapters.base import OfferIn
from providers.vocabulary import TASKS, task_for


@pytest.mark.parametrize(
    ("tag", "term"),
    [
        # DeepInfra's model `type`
        ("text-generation", "text"),
        ("embeddings", "embedding"),
        ("text-to-image", "image"),
        ("automatic-speech-recognition", "speech-to-text"),
        ("text-to-speech", "text-to-speech"),
        ("reranker", "rerank"),
        # Hugging Face pipeline tags
        ("image-text-to-text", "vision"),
        ("feature-extraction", "embedding"),
        ("sentence-similarity", "embedding"),
        ("text-ranking", "rerank"),
        ("text-to-audio", "audio"),
        # the router's modalities, already words of the vocabulary
        ("image", "image"),
        ("audio", "audio"),
    ],
)
def test_it_maps_each_providers_tag_into_the_vocabulary(tag, term):
    assert task_for(tag) == term
    assert term in TASKS


def test_a_tag_the_table_lacks_maps_to_no_task_and_the_raw_tag_stays_on_the_offer():
    offer = OfferIn(upstream_id="x/y", name="x/y", kind="llm-inference", task_tag="text-to-video")
    assert (offer.task, offer.task_tag) == ("", "text-to-video")


def test_an_offer_given_a_raw_task_keeps_it_as_its_tag():
    offer = OfferIn(upstream_id="x/y", name="x/y", kind="llm-inference", task="text-generation")
    assert (offer.task, offer.task_tag) == ("text", "text-generation")

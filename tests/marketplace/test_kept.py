"""What the marketplace keeps between requests (cards, roll-ups, forms) never shows a state
older than the database: a poll, a changed offer or the passing of time shows at once."""

from __future__ import annotations

import random
import re
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from marketplace import cards, formatting, history
from providers.models import Offer, Provider
from tests.marketplace.conftest import days_ago, gpu, llm, publish, usd
from tests.marketplace.test_cards import card

pytestmark = pytest.mark.django_db
FRAGMENT = {"HX-Request": "true"}


def test_a_page_seen_again_costs_two_queries(client, world):
    """The provider rows (the fingerprint of everything polls change) and the page."""
    client.get("/?kind=gpu&sort=gscore", headers=FRAGMENT)
    with CaptureQueriesContext(connection) as captured:
        assert client.get("/?kind=gpu&sort=gscore", headers=FRAGMENT).status_code == 200
    assert len(captured) == 2, [q["sql"][:80] for q in captured]


def test_a_kept_card_shows_the_offer_as_stored_now(client, registry):
    deepinfra = registry["deepinfra"]
    publish(deepinfra, llm("a/model", usd_per_1m_input=usd("1.00")), at=days_ago(1))
    assert "$1.00" in card(client.get("/?sort=price"), "a/model")
    Offer.objects.filter(upstream_id="a/model").update(usd_per_1m_input=usd("0.75"))
    assert "$0.75" in card(client.get("/?sort=price"), "a/model")


def test_a_poll_shows_on_kept_cards_and_counts(client, registry):
    deepinfra = registry["deepinfra"]
    publish(deepinfra, llm("a/model", usd_per_1m_input=usd("1")), at=days_ago(2))
    first = client.get("/?sort=price")
    assert "updated 2\xa0days ago" in card(first, "a/model")
    publish(deepinfra, llm("a/model", usd_per_1m_input=usd("1")), llm("b/model"))
    again = client.get("/?sort=price")
    assert "updated just now" in card(again, "a/model")
    assert "b/model" in again.content.decode()


def test_the_clock_moves_on_kept_cards(client, registry, gpu_cloud):
    """Freshness and the sparkline are drawn for now, not when the card was kept."""
    publish(gpu_cloud, gpu("1", "H100 SXM 80GB", usd_per_gpu_hour=usd("3")), at=days_ago(2))
    publish(gpu_cloud, gpu("1", "H100 SXM 80GB", usd_per_gpu_hour=usd("2")), at=days_ago(1))
    first = card(client.get("/?kind=gpu"), "1× H100 SXM 80GB")
    assert "updated 1\xa0day ago" in first
    Provider.objects.filter(pk=gpu_cloud.pk).update(last_success_at=days_ago(5))
    later = card(client.get("/?kind=gpu"), "1× H100 SXM 80GB")
    assert "updated 5\xa0days ago" in later
    points = re.search(r'<polyline points="([^"]+)"', later).group(1)
    assert points.split()[-1].startswith("117.0,"), "the line runs until now, at the right edge"
    assert "\x00" not in later


def test_it_renders_a_card_it_does_not_keep_yet(client, world):
    cards.forget()
    body = client.get("/?kind=gpu", headers=FRAGMENT).content.decode()
    again = client.get("/?kind=gpu", headers=FRAGMENT).content.decode()
    assert body == again and "<article" in body and "\x00" not in body


def test_a_kept_sparkline_is_the_one_drawn_now():
    """Between the times `history.lasting` gives, the points are what drawing them anew
    gives, to the character; a card's filled line is kept only that long."""
    rng = random.Random(16)
    start = timezone.now() - timedelta(days=30)
    for _ in range(300):
        afters = sorted(rng.uniform(0, 29 * 86400) for _ in range(rng.randint(1, 8)))
        steps = [(0.0, 14.0), *((a, rng.uniform(3, 25)) for a in afters), (None, 9.0)]
        now = start + timedelta(days=30, seconds=rng.uniform(0, 86400))
        text, since, until = history.lasting(start, steps, now)
        assert text == history.points(start, steps, now)
        assert since == (now - start).total_seconds() and until > since
        for later in (since + (until - since) * f for f in (0.001, 0.5, 0.999, 1.0)):
            assert history.points(start, steps, start + timedelta(seconds=later)) == text


def test_how_long_ago_moves_on_with_the_clock_though_its_words_are_kept():
    moment = timezone.now() - timedelta(minutes=2) + timedelta(seconds=0.3)
    assert formatting.ago(moment) == "1\xa0minute ago"
    assert formatting.ago(moment) == "1\xa0minute ago"  # kept
    time.sleep(0.4)
    assert formatting.ago(moment) == "2\xa0minutes ago"

from __future__ import annotations

import json
import time
from decimal import Decimal
from itertools import pairwise

import pytest
from werkzeug import Response

from providers.pipeline import poll_provider
from resilience import errors
from tests.conftest import by_id, payload
from tests.providers.conftest import serve_vast
from tests.providers.volume import vast_search

pytestmark = pytest.mark.django_db


def test_it_searches_with_the_cli_default_query(vastai):
    provider, server = vastai
    serve_vast(server)
    provider.adapter().list_models()
    request, _ = server.log[0]
    body = json.loads(request.data)
    assert request.method == "POST" and request.path == "/api/v0/bundles/"
    assert body["verified"] == {"eq": True} and body["rentable"] == {"eq": True}
    assert body["type"] == "on-demand" and body["limit"] == 3000
    assert "Authorization" not in request.headers  # searching needs no key


def test_it_divides_a_multi_gpu_offer_price_per_gpu(vastai):
    provider, server = vastai
    serve_vast(server)
    offers = by_id(provider.adapter().list_models())
    h100x8 = offers["21319944"]
    assert h100x8.gpu_count == 8
    assert h100x8.usd_per_instance_hour == Decimal("17.601389")  # dph_total, whole offer
    assert h100x8.usd_per_gpu_hour == Decimal("2.200174")  # 17.60138889 / 8
    assert h100x8.name == "8× H100 SXM 80GB" and h100x8.gpu_id is not None
    single = offers["21334871"]
    assert single.usd_per_gpu_hour == single.usd_per_instance_hour == Decimal("0.321042")


def test_it_lists_the_same_machine_interruptible_at_its_minimum_bid(vastai):
    provider, server = vastai
    serve_vast(server)
    offers = by_id(provider.adapter().list_models())
    on_demand, bid = offers["21342210"], offers["21342210:bid"]
    assert on_demand.interruptible is False and bid.interruptible is True
    # min_bid 0.34 for both GPUs + storage_total_cost 0.00083333
    assert bid.usd_per_instance_hour == Decimal("0.340833")
    assert bid.usd_per_gpu_hour == Decimal("0.170417")
    assert bid.canonical_id == "21342210:bid" and bid.gpu_name == on_demand.gpu_name == "RTX 4090"


def test_it_normalises_memory_cpu_ram_disk_and_reliability(vastai):
    provider, server = vastai
    serve_vast(server)
    offer = by_id(provider.adapter().list_models())["21334871"]
    assert offer.vram_gb == 24.0  # 24564 MiB
    assert offer.vcpus == 16.0
    assert offer.ram_gb == 31.5  # 257645 MiB × 16/128 cores
    assert offer.disk_gb == 512.4
    assert offer.reliability == 0.9962
    assert offer.benchmark_score == 63.9  # Vast's dlperf, kept apart from the G-Score
    assert offer.availability_count == 1


@pytest.mark.parametrize(
    ("ask", "country", "region"),
    [
        ("21334871", "NO", "eu"),  # "Norway, NO"
        ("21342210", "US", "us"),  # "Texas, US"
        ("21305117", "SE", "eu"),  # "Sweden": no code given
        ("21288403", "CA", "ca"),  # "Quebec, CA"
        ("21277301", "", ""),  # null geolocation
    ],
)
def test_it_derives_the_country_code_from_geolocation(vastai, ask, country, region):
    provider, server = vastai
    serve_vast(server)
    offer = by_id(provider.adapter().list_models())[ask]
    assert (offer.country, offer.region) == (country, region)


def test_it_keeps_an_offer_with_missing_data_and_an_unnamed_gpu(vastai):
    provider, server = vastai
    serve_vast(server)
    catalog = provider.adapter().list_models()
    bare = by_id(catalog)["21277301"]
    assert (
        bare.gpu_name == ""
        and bare.gpu_id is None
        and bare.name == "1× GPU not named by the provider"
    )
    assert bare.ram_gb is None  # no cpu_cores nor gpu_frac: its share of cpu_ram is unknown
    assert bare.benchmark_score is None
    assert catalog.unknown_gpus == {"": 1}  # one ask, listed on-demand and interruptible
    assert catalog.skipped == 0


def test_it_parses_every_offer_of_a_3000_offer_search(vastai):
    provider, server = vastai
    serve_vast(server, vast_search(3000))
    catalog = provider.adapter().list_models()
    on_demand = [o for o in catalog.offers if not o.interruptible]
    assert len(on_demand) == 3000 and catalog.skipped == 0
    assert len({o.upstream_id for o in catalog.offers}) == len(catalog.offers) == 6000


def test_it_skips_a_malformed_offer_and_keeps_the_rest(vastai):
    provider, server = vastai
    body = payload("vastai/bundles.json")
    body["offers"][0]["num_gpus"] = None
    serve_vast(server, body)
    catalog = provider.adapter().list_models()
    assert catalog.skipped == 1
    assert "21334871" not in by_id(catalog) and "21342210" in by_id(catalog)


def test_it_maps_a_429_without_retry_after_to_rate_limited(vastai):
    provider, server = vastai
    serve_vast(server, {"detail": "API requests too frequent endpoint threshold=4.5"}, status=429)
    with pytest.raises(errors.RateLimited, match="too frequent") as raised:
        provider.adapter().list_models()
    assert raised.value.retry_after is None


def test_it_retries_a_429_without_retry_after_no_faster_than_vasts_rate(vastai, settings):
    """Vast sends no Retry-After: each retry waits at least one interval of VASTAI_RATE_LIMIT."""
    _provider, server = vastai
    settings.VASTAI_RATE_LIMIT = 600  # one call per 0.1 s (production: 10/min, one per 6 s)
    settings.PROVIDER_RETRY_MAX_DELAY = 1
    arrivals = []

    def too_frequent(request):
        arrivals.append(time.monotonic())
        body = json.dumps({"detail": "API requests too frequent endpoint threshold=4.5"})
        return Response(body, status=429, content_type="application/json")

    server.expect_request("/api/v0/bundles/", method="POST").respond_with_handler(too_frequent)
    run = poll_provider("vastai")
    assert (run.outcome, run.error_class, run.http_calls) == ("failed", "RateLimited", 4)
    assert len(arrivals) == 4  # the call and PROVIDER_MAX_RETRIES retries, then it gives up
    assert all(later - earlier >= 0.1 for earlier, later in pairwise(arrivals))


def test_it_maps_a_success_false_body_to_a_typed_error(vastai):
    provider, server = vastai
    serve_vast(server, payload("vastai/error.json"), status=404)
    with pytest.raises(errors.NotFound, match="invalid_args: error 404/3603: no_such_ask"):
        provider.adapter().list_models()


def test_it_reads_the_status_inside_msg_when_the_http_status_is_200(vastai):
    provider, server = vastai
    serve_vast(server, payload("vastai/error.json"))
    with pytest.raises(errors.NotFound) as raised:
        provider.adapter().list_models()
    assert raised.value.status == 404


def test_it_treats_vasts_404_auth_error_as_an_invalid_key(vastai, settings):
    provider, server = vastai
    settings.VASTAI_API_KEY = "vast-wrong-key-0000"
    serve_vast(server, {"error": "auth_error", "msg": "Invalid user key"}, status=404)
    server.expect_request("/api/v0/users/current/").respond_with_json(
        {"error": "auth_error", "msg": "Invalid user key"}, status=404
    )
    with pytest.raises(errors.InvalidKey) as raised:
        provider.adapter().list_models()
    assert "vast-wrong-key-0000" not in str(raised.value)
    assert provider.test_connection().status == "invalid key"


def test_it_rejects_a_body_without_an_offers_list(vastai):
    provider, server = vastai
    serve_vast(server, {"offers": None})
    with pytest.raises(errors.BadPayload, match="no offers list"):
        provider.adapter().list_models()


def test_authenticate_proves_a_key_with_the_user_call(vastai, settings):
    provider, server = vastai
    settings.VASTAI_API_KEY = "vast-test-key-1234"
    server.expect_request(
        "/api/v0/users/current/", headers={"Authorization": "Bearer vast-test-key-1234"}
    ).respond_with_json({"id": 4242, "email": "ops@example.com"})
    result = provider.test_connection()
    assert (result.status, result.detail) == ("ok", "Key accepted for user 4242.")


def test_authenticate_without_a_key_tries_the_public_search(vastai):
    provider, server = vastai
    serve_vast(server, {"offers": []})
    assert provider.test_connection().status == "ok"
    assert json.loads(server.log[0][0].data)["limit"] == 1


def test_renting_creates_an_instance_with_the_key(vastai, settings):
    provider, server = vastai
    settings.VASTAI_API_KEY = "vast-test-key-1234"
    server.expect_request(
        "/api/v0/asks/21342210/",
        method="PUT",
        headers={"Authorization": "Bearer vast-test-key-1234"},
        json={"image": "vastai/base-image:@vastai-automatic-tag", "disk": 16.0, "price": 0.4},
    ).respond_with_json({"success": True, "new_contract": 7654321})
    result = provider.adapter().rent(
        "21342210:bid",
        {"image": "vastai/base-image:@vastai-automatic-tag", "disk": 16.0, "price": 0.4},
    )
    assert result["new_contract"] == 7654321


def test_renting_needs_a_key(vastai):
    provider, server = vastai
    with pytest.raises(errors.MissingKey, match="VASTAI_API_KEY"):
        provider.adapter().rent("21342210", {"image": "x"})
    assert server.log == []


def test_it_keeps_each_hosts_verification_and_cuda_version_as_sent(vastai):
    provider, server = vastai
    serve_vast(server)
    offers = by_id(provider.adapter().list_models())
    assert (offers["21319944"].verified, offers["21319944"].cuda_version) == (True, 12.8)
    assert (offers["21277301"].verified, offers["21277301"].cuda_version) == (False, None)
    assert offers["21319944:bid"].cuda_version == 12.8  # the same machine, by bid

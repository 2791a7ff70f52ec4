"""The public catalog API, as a program sees it: JSON over real Postgres, from offers that
reached the database the way polls put them there."""

from __future__ import annotations

import csv
import io
import json
import math

import redis
from django.core.cache import caches
from django.test import Client

from marketplace import api, catalog
from marketplace.ratelimit import WINDOW
from providers.models import Offer
from tests.marketplace.conftest import llm, publish, usd


def test_models_answers_who_serves_a_model_cheapest_first(client, recorded_world):
    response = client.get("/api/v1/models?q=gpt-oss-120b")
    assert response.status_code == 200
    (model,) = response.json()["items"]
    assert model["id"] == "openai/gpt-oss-120b"
    assert model["identity"] == "repo-id"
    assert {o["provider"] for o in model["offers"]} == {"deepinfra", "huggingface", "groq"}
    prices = [o["usd_per_1m_input"] for o in model["offers"] if o["usd_per_1m_input"]]
    assert prices == sorted(prices)
    assert all(o["model"] == "openai/gpt-oss-120b" for o in model["offers"])


def test_models_shows_an_unknown_name_as_its_own_model(client, recorded_world):
    items = client.get("/api/v1/models?provider=groq&limit=500").json()["items"]
    ids = {m["id"]: m["identity"] for m in items}
    assert ids["groq:llama-3.1-8b-instant"] == "unknown"
    assert ids["meta-llama/llama-3.3-70b-instruct"] in ("repo-id", "alias")


def test_pricing_is_flat_filtered_like_the_marketplace_and_paged_by_cursor(client, world):
    everything = client.get("/api/v1/pricing?limit=500").json()
    assert everything["next_cursor"] is None
    seen, url = [], "/api/v1/pricing?limit=2"
    while url:
        page = client.get(url).json()
        seen += [row["id"] for row in page["items"]]
        url = page["next_cursor"] and f"/api/v1/pricing?limit=2&cursor={page['next_cursor']}"
    assert seen == [row["id"] for row in everything["items"]] and len(seen) == len(set(seen))
    gpus = client.get("/api/v1/pricing?kind=gpu&max_price=1").json()["items"]
    # A market range is under a ceiling when its low end is, as on the marketplace.
    assert [(r["gpu"], r["usd_per_gpu_hour"]) for r in gpus] == [
        ("RTX 4090", 0.35),
        ("A100 PCIe 40GB", None),
    ]
    assert client.get("/api/v1/pricing?provider=nope").json()["items"] == []
    assert client.get("/api/v1/models?provider=nope").json()["items"] == []
    empty = client.get("/api/v1/pricing?provider=nope&format=csv")
    assert b"".join(empty.streaming_content).decode().count("\n") == 1  # the header alone
    text = client.get("/api/v1/pricing?task=embedding&provider=deepinfra").json()["items"]
    assert [r["name"] for r in text] == ["BAAI/bge-m3"]


def test_a_repeat_request_is_a_304_with_the_same_validators(client, world):
    first = client.get("/api/v1/pricing?kind=llm")
    assert first.status_code == 200
    assert first["ETag"] and first["Last-Modified"]
    assert "max-age=" in first["Cache-Control"] and "public" in first["Cache-Control"]
    again = client.get("/api/v1/pricing?kind=llm", headers={"If-None-Match": first["ETag"]})
    assert again.status_code == 304 and again.content == b""
    since = client.get(
        "/api/v1/pricing?kind=llm", headers={"If-Modified-Since": first["Last-Modified"]}
    )
    assert since.status_code == 304
    other = client.get("/api/v1/pricing?kind=gpu", headers={"If-None-Match": first["ETag"]})
    assert other.status_code == 200


def test_a_new_poll_changes_the_etag(client, world):
    first = client.get("/api/v1/models")
    publish(world["deepinfra"], llm("BAAI/bge-m3", task="embedding", usd_per_1m_input=usd("1")))
    again = client.get("/api/v1/models", headers={"If-None-Match": first["ETag"]})
    assert again.status_code == 200 and again["ETag"] != first["ETag"]


def test_bad_parameters_are_422_json_naming_the_field_never_500(client, world):
    cases = {
        "/api/v1/pricing?min_vram=lots": "min_vram",
        "/api/v1/pricing?max_price=-1": "max_price",
        "/api/v1/pricing?provider=no%20such": "provider",
        "/api/v1/pricing?cursor=abc": "cursor",
        "/api/v1/pricing?q=%00": "q",
        "/api/v1/pricing?task=poetry": "task",
        "/api/v1/pricing?limit=0": "limit",
        "/api/v1/models?min_context=99999999999": "min_context",
        "/api/v1/offers/99999999999999999999999": "offer_id",
    }
    for url, name in cases.items():
        response = client.get(url)
        assert response.status_code == 422, url
        errors = response.json()["detail"]
        assert any(name in map(str, e["loc"]) for e in errors), (url, errors)
        assert all(e["msg"] for e in errors)


def test_an_offer_comes_with_its_price_history(client, world):
    offer = client.get("/api/v1/pricing?q=Llama-3.3").json()["items"][0]
    publish(
        world["deepinfra"],
        llm("meta-llama/Llama-3.3-70B-Instruct", region="us", usd_per_1m_input=usd("0.20")),
    )
    body = client.get(f"/api/v1/offers/{offer['id']}").json()
    assert body["usd_per_1m_input"] == 0.2
    assert {"field": "usd_per_1m_input", "old": 0.23, "new": 0.2} in [
        {k: c[k] for k in ("field", "old", "new")} for c in body["price_history"]
    ]
    missing = client.get("/api/v1/offers/424242")
    assert missing.status_code == 404 and missing.json()["detail"]


def test_gpus_is_the_vocabulary_with_sources(client, world):
    gpus = {g["name"]: g for g in client.get("/api/v1/gpus").json()}
    assert gpus["H100 SXM 80GB"]["source"].startswith("https://")
    assert gpus["H100 SXM 80GB"]["offers_available"] == 1


def test_csv_streams_every_matching_offer(client, world):
    response = client.get("/api/v1/pricing?format=csv&kind=gpu")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert sorted(r["gpu"] for r in rows) == ["A100 PCIe 40GB", "H100 SXM 80GB", "RTX 4090"]
    rtx = next(r for r in rows if r["gpu"] == "RTX 4090")
    assert rtx["provider"] == "gpucloud" and float(rtx["usd_per_gpu_hour"]) == 0.35
    assert rtx["status"] == "available" and rtx["usd_per_1m_input"] == ""


def test_each_client_ip_is_rate_limited_with_retry_after(client, world, settings):
    settings.API_RATE_LIMIT = 3
    for _ in range(3):
        assert client.get("/api/v1/gpus").status_code == 200
    limited = client.get("/api/v1/gpus")
    assert limited.status_code == 429
    assert 1 <= int(limited["Retry-After"]) <= 61 and limited.json()["detail"]
    elsewhere = client.get("/api/v1/gpus", REMOTE_ADDR="10.0.0.9")
    assert elsewhere.status_code == 200


def test_the_limit_is_shared_by_every_worker(world, settings):
    """Two clients stand for two workers: they count against one budget in the cache."""
    settings.API_RATE_LIMIT = 2
    one, two = Client(), Client()
    assert one.get("/api/v1/gpus").status_code == 200
    assert two.get("/api/v1/gpus").status_code == 200
    assert one.get("/api/v1/gpus").status_code == 429


def test_the_api_answers_from_postgres_when_redis_is_down(client, world, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens here
        }
    }
    assert client.get("/api/v1/pricing").status_code == 200
    assert client.get("/api/v1/models").status_code == 200


def test_the_schema_and_docs_are_generated_and_served_without_a_cdn(client, db):
    schema = client.get("/api/v1/openapi.json").json()
    assert schema["openapi"].startswith("3.")
    assert {
        "/api/v1/models",
        "/api/v1/pricing",
        "/api/v1/offers/{offer_id}",
        "/api/v1/gpus",
    } <= set(schema["paths"])
    docs = client.get("/api/v1/docs").content.decode()
    assert "swagger" in docs.lower() and "cdn" not in docs.lower()


def test_postgres_writes_each_row_as_the_schema_would(world):
    """A pricing page's rows are JSON written by PostgreSQL; each holds what pydantic writes
    from the same offer (the embedded SQLite's path), field for field and in order."""
    publish(  # one price change; the other DeepInfra offers gone (unavailable)
        world["deepinfra"],
        llm("meta-llama/Llama-3.3-70B-Instruct", region="us", usd_per_1m_input=usd("0.20")),
        llm("BAAI/bge-m3", region="us", task="embedding", throughput_tps=math.nan),
    )
    providers = catalog.providers()
    ids = Offer.objects.order_by("-id").values("id")
    from_sql = catalog.json_rows(ids, providers)
    from_python = api._rows_in_python(ids, providers)
    assert [pk for pk, _ in from_sql] == [pk for pk, _ in from_python] == [r["id"] for r in ids]
    statuses = set()
    for (_, sql), (_, python) in zip(from_sql, from_python, strict=True):
        written, expected = json.loads(sql), json.loads(python)
        assert list(written) == list(api.PriceRow.model_fields) == list(expected)
        assert api.PriceRow.model_validate(written) == api.PriceRow.model_validate(expected)
        statuses.add(written["status"])
    assert statuses == {"available", "unavailable"}
    bge = next(json.loads(row) for _, row in from_sql if '"BAAI/bge-m3"' in row)
    assert bge["throughput_tps"] is None  # NaN is no number in JSON


def test_a_pricing_page_is_two_queries_whatever_its_length(
    client, world, django_assert_num_queries
):
    for url in ("/api/v1/pricing?limit=1", "/api/v1/pricing?limit=500&unavailable=true"):
        with django_assert_num_queries(2):  # the providers, the page
            assert client.get(url).status_code == 200


def test_a_client_count_expires_with_its_window(client, world, settings):
    assert client.get("/api/v1/gpus").status_code == 200
    cache = caches["default"]
    pattern = cache.make_and_validate_key("api-rate:127.0.0.1:*")
    (key,) = redis.Redis.from_url(settings.REDIS_URL).keys(pattern)
    assert 0 < redis.Redis.from_url(settings.REDIS_URL).ttl(key) <= WINDOW + 1

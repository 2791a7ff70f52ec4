"""GPU providers served on loopback: each fixture returns (provider, server)."""

from __future__ import annotations

import json

import pytest
from werkzeug import Response

from tests.conftest import payload


@pytest.fixture
def vastai(registry, serve):
    provider = registry["vastai"]
    return provider, serve(provider)


@pytest.fixture
def akash(registry, serve):
    provider = registry["akash"]
    return provider, serve(provider, "RPC_URL")


@pytest.fixture
def ionet(registry, serve, settings):
    provider = registry["ionet"]
    settings.IONET_API_KEY = "io-test-key-5678"
    return provider, serve(provider)


@pytest.fixture
def render(registry, serve):
    provider = registry["render"]
    return provider, serve(provider)


def serve_vast(server, body=None, status=200, **kwargs):
    server.expect_request("/api/v0/bundles/", method="POST").respond_with_json(
        payload("vastai/bundles.json") if body is None else body, status=status, **kwargs
    )


def serve_akash(server, body=None):
    server.expect_request("/v1/gpu-prices").respond_with_json(
        payload("akash/gpu_prices.json") if body is None else body
    )


def serve_ionet(server, body=None, *, price_per="vm"):
    """The hardware list, and quotes (price.json's shape, no fees) that read its `price` as per
    VM or, with price_per="card", per GPU."""
    body = payload("ionet/hardware.json") if body is None else body
    server.expect_request(
        "/enterprise/v1/io-cloud/vmaas/hardware", headers={"x-api-key": "io-test-key-5678"}
    ).respond_with_json(body)
    data = body.get("data") if isinstance(body, dict) else None
    listed = data.get("hardware") if isinstance(data, dict) else None
    items = {
        (str(i.get("deploy_id")), str(i.get("num_cards"))): i
        for i in (listed if isinstance(listed, list) else [])
        if isinstance(i, dict) and i.get("num_cards")
    }

    def quote(request):
        item = items[request.args["hardware_id"], request.args["gpus_per_vm"]]
        hours, replicas = int(request.args["duration_hours"]), int(request.args["replica_count"])
        per_vm = item["price"] * (item["num_cards"] if price_per == "card" else 1)
        data = payload("ionet/price.json")["data"]
        data.update(replica_count=replicas, gpus_per_vm=item["num_cards"])
        data["total_cost_usdc"] = round(per_vm * hours * replicas, 6)
        return Response(json.dumps({"data": data}), content_type="application/json")

    server.expect_request("/enterprise/v1/io-cloud/vmaas/price").respond_with_handler(quote)

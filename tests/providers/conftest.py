"""GPU providers served on loopback: each fixture returns (provider, server)."""

from __future__ import annotations

import pytest

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


def serve_ionet(server, body=None):
    server.expect_request(
        "/enterprise/v1/io-cloud/vmaas/hardware", headers={"x-api-key": "io-test-key-5678"}
    ).respond_with_json(payload("ionet/hardware.json") if body is None else body)

"""`manage.py offers`: the marketplace in a terminal, same filters, freshness on each row."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command


def offers(*args: str) -> str:
    out = io.StringIO()
    call_command("offers", *args, stdout=out)
    return out.getvalue()


def test_it_lists_gpu_offers_cheapest_first_with_their_freshness(world):
    lines = offers("--kind", "gpu").splitlines()
    assert lines[0].split()[:3] == ["PROVIDER", "OFFER", "GPU"]
    body = lines[1:]
    assert [line.split()[0] for line in body] == ["gpucloud"] * 3
    assert "RTX 4090" in body[0] and "$0.35/GPU-h" in body[0]
    assert "$0.80–$1.40/GPU-h" in body[1]  # Akash-style market range, as a range
    assert "H100 SXM 80GB" in body[2] and "just now" in body[2]


def test_it_filters_by_gpu_name_part_and_price_ceiling(world):
    assert "H100 SXM 80GB" in offers("--gpu", "h100")
    assert "No offers match." in offers("--gpu", "H100", "--max-price", "2")
    assert "RTX 4090" in offers("--max-price", "1", "--kind", "gpu")


def test_it_finds_a_model_by_part_of_its_id_at_every_provider(recorded_world):
    table = offers("--model", "gpt-oss-120b", "--limit", "100")
    providers = {line.split()[0] for line in table.splitlines()[1:]}
    assert {"deepinfra", "huggingface", "groq"} <= {p.split("(")[0] for p in providers}


def test_it_prints_json(world):
    rows = json.loads(offers("--json", "--provider", "deepinfra", "--task", "embedding"))
    assert [(r["name"], r["usd_per_1m_input"], r["provider"]) for r in rows] == [
        ("BAAI/bge-m3", "0.010000", "deepinfra")
    ]
    assert rows[0]["seen_at"] and rows[0]["provider_health"] == "ok"


def test_it_sorts_by_gscore(world):
    table = offers("--kind", "gpu", "--sort", "gscore")
    assert table.splitlines()[1:]  # scored first, unscored last


def test_bad_input_is_an_error_not_a_traceback(world):
    with pytest.raises(CommandError, match="Unknown provider 'nope'"):
        offers("--provider", "nope")
    with pytest.raises(CommandError, match="not a number"):
        offers("--max-price", "cheap")

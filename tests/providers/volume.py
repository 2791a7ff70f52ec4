"""Provider payloads built from the recorded fixtures' shape, for volume tests and benchmarks."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

PAYLOADS = Path(__file__).resolve().parent.parent / "payloads"


def vast_search(count: int) -> dict[str, Any]:
    """A Vast search answer with `count` offers: the recorded ones repeated with fresh ids and
    prices moved by up to ±25%, every derived field kept consistent with its price."""
    recorded = json.loads((PAYLOADS / "vastai" / "bundles.json").read_text())["offers"]
    offers = []
    for n in range(count):
        offer = copy.deepcopy(recorded[n % len(recorded)])
        factor = 0.75 + (n * 7919 % 500) / 1000
        offer["id"] = offer["ask_contract_id"] = 30_000_000 + n
        offer["dph_base"] = round(offer["dph_base"] * factor, 4)
        offer["min_bid"] = round(offer["min_bid"] * factor, 4)
        storage = offer.get("storage_total_cost") or 0
        offer["dph_total"] = offer["dph_base"] + storage
        if offer.get("dlperf"):
            offer["dlperf_per_dphtotal"] = offer["dlperf"] / offer["dph_total"]
        offers.append(offer)
    return {"offers": offers}


def ionet_hardware(count: int, locations: list[str]) -> dict[str, Any]:
    """An io.net hardware list with `count` GPU configurations: the recorded ones repeated with
    fresh ids, prices moved by up to ±25% and locations (ISO2) taken in turn from `locations`."""
    body = json.loads((PAYLOADS / "ionet" / "hardware.json").read_text())
    recorded = [item for item in body["data"]["hardware"] if item["num_cards"]]
    hardware = []
    for n in range(count):
        item = copy.deepcopy(recorded[n % len(recorded)])
        item["id"] = f"{item['id']}__{n}"
        item["price"] = round(item["price"] * (0.75 + (n * 7919 % 500) / 1000), 4)
        item["location"] = locations[n % len(locations)]
        hardware.append(item)
    return {"data": {"hardware": hardware}}

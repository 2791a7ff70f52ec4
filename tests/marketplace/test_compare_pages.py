"""/models/<canonical id>/ and /gpus/<gpu>/: every offer of one model side by side."""

from __future__ import annotations

import re
from decimal import Decimal

from providers.models import GpuModel
from tests.marketplace.conftest import gpu, publish, usd


def rows(response) -> list[str]:
    body = response.content.decode().split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)


def test_a_model_page_puts_every_provider_side_by_side_cheapest_healthy_first(
    client, recorded_world, django_assert_max_num_queries
):
    with django_assert_max_num_queries(8):
        response = client.get("/models/openai/gpt-oss-120b/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "<h1>openai/gpt-oss-120b</h1>" in page
    found = rows(response)
    assert len(found) == 9
    assert all(name in page for name in ("DeepInfra", "Hugging Face", "Groq"))
    inputs = []
    for row in found:
        if "not on sale" in row or "unknown" in row.split("</td>")[2]:
            continue
        price = re.search(r"\$([\d,.]+)", row.split("</td>")[2])
        inputs.append(Decimal(price.group(1).replace(",", "")))
    assert inputs == sorted(inputs) and inputs
    assert "<svg" in page and "<polyline" in page  # each offer's price history, drawn


def test_the_model_page_is_found_whatever_the_case_of_the_id(client, recorded_world):
    assert client.get("/models/OpenAI/GPT-OSS-120B/").status_code == 200
    assert client.get("/models/nobody/nothing/").status_code == 404


def test_an_unknown_name_has_its_own_page_saying_so(client, recorded_world):
    response = client.get("/models/groq:llama-3.1-8b-instant/")
    assert response.status_code == 200
    assert "no alias identifies" in response.content.decode()
    assert len(rows(response)) == 1


def test_an_alias_is_shown_with_its_source(client, recorded_world):
    page = client.get("/models/meta-llama/llama-3.3-70b-instruct/").content.decode()
    assert "llama-3.3-70b-versatile</a> at Groq" in page
    assert "https://huggingface.co/docs/inference-providers/providers/groq" in page


def test_a_gpu_page_draws_the_spread_per_provider_and_gscore_against_price(
    client, world, django_assert_max_num_queries
):
    h100 = GpuModel.objects.get(canonical="H100 SXM 80GB").pk  # as the vocabulary labels it
    publish(
        world["gpucloud"],
        gpu("1001", "H100 SXM 80GB", gpu_id=h100, usd_per_gpu_hour=usd("2.10")),
        gpu("1004", "H100 SXM 80GB", gpu_id=h100, usd_per_gpu_hour=usd("2.90")),
        gpu(
            "1005",
            "H100 SXM 80GB",
            gpu_id=h100,
            usd_per_gpu_hour_min=usd("1.20"),
            usd_per_gpu_hour_max=usd("1.60"),
        ),
    )
    with django_assert_max_num_queries(8):
        response = client.get("/gpus/H100 SXM 80GB/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "3</strong> offers at 1 provider · $1.20–$2.90 per GPU-hour" in page
    assert "market range $1.20–$1.60" in page  # a range drawn as a range
    assert "<rect" in page and "<circle" in page
    assert "median $2.50" in page


def test_an_unknown_gpu_name_404s(client, world):
    assert client.get("/gpus/Quantum 9000/").status_code == 404


def test_an_alias_or_a_providers_own_id_leads_to_the_models_page(client, recorded_world):
    response = client.get("/models/llama-3.3-70b-versatile/")  # Groq's name for it
    assert response.status_code == 302
    assert response["Location"] == "/models/meta-llama/llama-3.3-70b-instruct/"

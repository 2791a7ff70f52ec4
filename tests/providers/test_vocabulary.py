from __future__ import annotations

import json
import logging

import pytest

from providers.adapters.base import Catalog, OfferIn
from providers.gpus import CATALOG_PATH, GpuVocabulary, load_gpu_catalog, log_unknown_gpus
from providers.models import GpuModel

pytestmark = pytest.mark.django_db

# (provider, spelling, form factor, memory GB as the adapter reports it, canonical or None)
SPELLINGS = [
    # Vast.ai gpu_name, memory from gpu_ram MiB / 1024
    ("vastai", "RTX 4090", "", 24.0, "RTX 4090"),
    ("vastai", "RTX 3090", "", 24.0, "RTX 3090"),
    ("vastai", "RTX 5090", "", 31.8, "RTX 5090"),
    ("vastai", "H100 SXM", "", 79.6, "H100 SXM 80GB"),
    ("vastai", "H100 PCIE", "", 79.6, "H100 PCIe 80GB"),
    ("vastai", "H100 NVL", "", 93.6, "H100 NVL 94GB"),
    ("vastai", "H200", "", 140.4, "H200 141GB"),
    ("vastai", "A100 SXM4", "", 80.0, "A100 SXM 80GB"),
    ("vastai", "A100 SXM4", "", 40.0, "A100 SXM 40GB"),
    ("vastai", "A100 PCIE", "", 40.0, "A100 PCIe 40GB"),
    ("vastai", "A100 PCIE", "", 80.0, "A100 PCIe 80GB"),
    ("vastai", "L40S", "", 45.0, "L40S"),
    ("vastai", "L40", "", 45.0, "L40"),
    ("vastai", "L4", "", 22.5, "L4"),
    ("vastai", "A10", "", 22.5, "A10"),
    ("vastai", "A40", "", 45.0, "A40"),
    ("vastai", "RTX A6000", "", 48.0, "RTX A6000"),
    ("vastai", "RTX 6000Ada", "", 48.0, "RTX 6000 Ada"),
    ("vastai", "Tesla V100", "", 16.0, "V100 16GB"),
    ("vastai", "Tesla V100", "", 32.0, "V100 32GB"),
    ("vastai", "Tesla T4", "", 15.0, "T4"),
    # Akash model + interface, memory from ram "80Gi"
    ("akash", "h100", "SXM5", 80, "H100 SXM 80GB"),
    ("akash", "h100", "SXM", 80, "H100 SXM 80GB"),
    ("akash", "h100", "PCIe", 80, "H100 PCIe 80GB"),
    ("akash", "a100", "SXM4", 80, "A100 SXM 80GB"),
    ("akash", "a100", "PCIe", 40, "A100 PCIe 40GB"),
    ("akash", "h200", "", 141, "H200 141GB"),
    ("akash", "h200", "Nothsure", 141, "H200 141GB"),  # sic, in provider-configs
    ("akash", "rtx4090", "PCIe", 24, "RTX 4090"),
    ("akash", "rtx3090", "PCIe", 24, "RTX 3090"),
    ("akash", "rtxa6000", "PCIe", 48, "RTX A6000"),
    ("akash", "v100", "SXM2", 32, "V100 32GB"),
    ("akash", "t4", "PCIe", 16, "T4"),
    ("akash", "a40", "PCIe", 48, "A40"),
    # io.net name + interconnect, memory from vram_per_card
    ("ionet", "GeForce RTX 4090", "", 24, "RTX 4090"),
    ("ionet", "GeForce RTX 3090", "", 24, "RTX 3090"),
    ("ionet", "H100", "sxm5", 80, "H100 SXM 80GB"),
    ("ionet", "H200", "sxm5", 141, "H200 141GB"),
    ("ionet", "A100", "sxm4", 80, "A100 SXM 80GB"),
    ("ionet", "B200", "sxm6", 192, "B200"),
    ("ionet", "L40S", "", 48, "L40S"),
    ("ionet", "RTX A6000", "", None, "RTX A6000"),
    # spellings from nvidia-smi, CLIs and other catalogs
    ("other", "NVIDIA GeForce RTX 4090", "", None, "RTX 4090"),
    ("other", "rtx4090", "", None, "RTX 4090"),
    ("other", "RTX_4090", "", None, "RTX 4090"),
    ("other", "NVIDIA H100 80GB HBM3", "", None, "H100 SXM 80GB"),
    ("other", "NVIDIA A100-SXM4-80GB", "", None, "A100 SXM 80GB"),
    ("other", "AMD Instinct MI300X", "", 192, "MI300X"),
    # word order and memory in the name: io.net's catalog names and nvidia-smi's
    ("ionet", "H100 80GB SXM5", "", None, "H100 SXM 80GB"),
    ("ionet", "H100 80GB SXM5", "", 80, "H100 SXM 80GB"),
    ("ionet", "H100 80GB PCIe", "", None, "H100 PCIe 80GB"),
    ("other", "A100 80GB SXM4", "", None, "A100 SXM 80GB"),
    ("other", "SXM4 A100 40GB", "", None, "A100 SXM 40GB"),
    # GPUs real offers carry that the catalog lacked (Vast spellings per gpuhunt's tables)
    ("vastai", "H200 NVL", "", 140.4, "H200 NVL 141GB"),
    ("vastai", "B300", "", 268.0, "B300"),
    ("vastai", "GH200", "", 95.6, "GH200 96GB"),
    ("vastai", "GH200", "", 140.0, "GH200 144GB"),
    ("vastai", "A800 PCIE", "", 80.0, "A800 PCIe 80GB"),
    ("vastai", "A100X", "", 80.0, "A100X"),
    ("vastai", "RTX A5000", "", 24.0, "RTX A5000"),
    ("vastai", "RTX A4000", "", 16.0, "RTX A4000"),
    ("vastai", "RTX 4000Ada", "", 20.0, "RTX 4000 Ada"),
    ("vastai", "Q RTX 8000", "", 48.0, "Quadro RTX 8000"),
    ("vastai", "Q RTX 6000", "", 24.0, "Quadro RTX 6000"),
    ("vastai", "RTX 3090 Ti", "", 24.0, "RTX 3090 Ti"),
    ("vastai", "RTX 4080S", "", 16.0, "RTX 4080 Super"),
    ("vastai", "RTX 5080", "", 15.9, "RTX 5080"),
    ("vastai", "RTX PRO 6000 WS", "", 95.6, "RTX PRO 6000"),
    ("vastai", "Tesla P100", "", 16.0, "P100 16GB"),
    ("akash", "p100", "PCIe", 16, "P100 16GB"),
    # unknown or ambiguous: kept as spelt
    ("ionet", "H100", "", 80, None),  # SXM or PCIe? a third apart in speed
    ("akash", "a100", "", 80, None),
    ("vastai", "A100 SXM4", "", None, None),  # 40 or 80 GB
    ("akash", "p100", "PCIe", 12, None),  # the 12 GB P100 is not in the catalog
    ("vastai", "RTX 4090", "", 48.0, None),  # a 48 GB board is not the spec-sheet 4090
    ("vastai", "", "", 8.0, None),
]


@pytest.fixture
def vocabulary(registry) -> GpuVocabulary:
    return GpuVocabulary.load()


@pytest.mark.parametrize(("provider", "spelling", "variant", "memory", "canonical"), SPELLINGS)
def test_it_maps_real_spellings_to_one_gpu(
    vocabulary, provider, spelling, variant, memory, canonical
):
    model = vocabulary.match(spelling, variant=variant, memory_gb=memory)
    assert (model.canonical if model else None) == canonical


def test_it_keeps_counts_and_logs_unknown_spellings(vocabulary, caplog):
    catalog = Catalog()
    for spelling in ("k80", "k80", "RTX 4090"):
        offer = OfferIn(upstream_id=spelling, name=spelling, kind="gpu-compute")
        vocabulary.label(offer, catalog, spelling, memory_gb=16 if spelling == "k80" else 24)
        catalog.offers.append(offer)
    with caplog.at_level(logging.WARNING):
        log_unknown_gpus("akash", catalog)
    assert [(o.gpu_name, o.gpu_id is not None) for o in catalog.offers] == [
        ("k80", False),
        ("k80", False),
        ("RTX 4090", True),
    ]
    assert catalog.unknown_gpus == {"k80": 2}
    assert "2 offers name a GPU not in the catalog" in caplog.text and "'k80' ×2" in caplog.text


def test_it_loads_the_catalog_once_and_keeps_admin_aliases(registry):
    entries = json.loads(CATALOG_PATH.read_text())
    assert GpuModel.objects.count() == len(entries)
    h100 = GpuModel.objects.get(canonical="H100 SXM 80GB")
    assert h100.bf16_tflops == 989.5 and h100.memory_bandwidth_gbps == 3350
    assert h100.source.startswith("https://")
    h100.aliases.append("H100 HGX")
    h100.save()
    load_gpu_catalog()
    assert GpuModel.objects.count() == len(entries)
    h100.refresh_from_db()
    assert "H100 HGX" in h100.aliases and "H100 SXM5" in h100.aliases
    assert GpuVocabulary.load().match("NVIDIA H100 HGX").canonical == "H100 SXM 80GB"


def test_it_names_a_source_for_every_catalog_gpu():
    for entry in json.loads(CATALOG_PATH.read_text()):
        assert entry["source"].startswith("https://"), entry["canonical"]
        assert entry["memory_gb"] and entry["note"], entry["canonical"]


FIGURES = {"memory_gb", "memory_bandwidth_gbps", "bf16_dense_tflops", "fp16_dense_tflops"}


def test_every_spec_figure_is_marked_verified_with_its_source_or_unverified():
    for entry in json.loads(CATALOG_PATH.read_text()):
        verified, unverified = entry["verified"], set(entry["unverified"])
        assert set(verified) | unverified == FIGURES, entry["canonical"]
        assert not set(verified) & unverified, entry["canonical"]
        assert all(source.strip() for source in verified.values()), entry["canonical"]
        assert entry["verified_on"] == "2026-12-02", entry["canonical"]


def test_geforce_ampere_tensor_rates_follow_the_published_sparse_figure():
    """NVIDIA gives the RTX 3090 Ti 320 tensor TFLOPS (sparse, FP16 accumulate): 160 dense, and
    GeForce runs FP32 accumulate (the bf16 field) at half that. The 3090 sits on the same cores."""
    entries = {e["canonical"]: e for e in json.loads(CATALOG_PATH.read_text())}
    ti = entries["RTX 3090 Ti"]
    assert (ti["fp16_dense_tflops"], ti["bf16_dense_tflops"]) == (160.0, 80.0)
    for name in ("RTX 3090", "RTX 3080", "RTX 4090", "RTX 4080", "RTX 4080 Super", "RTX 5090"):
        assert entries[name]["bf16_dense_tflops"] * 2 == pytest.approx(
            entries[name]["fp16_dense_tflops"], abs=0.2
        ), name

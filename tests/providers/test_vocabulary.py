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
    # unknown or ambiguous: kept as spelt
    ("ionet", "H100", "", 80, None),  # SXM or PCIe? a third apart in speed
    ("akash", "a100", "", 80, None),
    ("vastai", "A100 SXM4", "", None, None),  # 40 or 80 GB
    ("akash", "p100", "PCIe", 16, None),
    ("vastai", "A100X", "", 80.0, None),
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
    for spelling in ("p100", "p100", "RTX 4090"):
        offer = OfferIn(upstream_id=spelling, name=spelling, kind="gpu-compute")
        vocabulary.label(offer, catalog, spelling, memory_gb=16 if spelling == "p100" else 24)
        catalog.offers.append(offer)
    with caplog.at_level(logging.WARNING):
        log_unknown_gpus("akash", catalog)
    assert [(o.gpu_name, o.gpu_id is not None) for o in catalog.offers] == [
        ("p100", False),
        ("p100", False),
        ("RTX 4090", True),
    ]
    assert catalog.unknown_gpus == {"p100": 2}
    assert "2 offers name a GPU not in the catalog" in caplog.text and "'p100' ×2" in caplog.text


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

"""One GPU vocabulary: the spec catalog in the GpuModel table, and the normaliser that maps
every provider's spelling of a GPU to one of its rows.

Spellings meet after vendor words (NVIDIA, GeForce, Tesla, AMD, Instinct), case, spaces and
punctuation are dropped, so "NVIDIA GeForce RTX 4090", "RTX 4090" and "rtx4090" are one GPU.
A name shared by several memory sizes (Vast's "A100 SXM4", "Tesla V100") is settled by the
offer's memory; a bare family name with no memory size or variant to settle it ("H100", which
is SXM or PCIe, a third apart in speed) matches nothing. What matches nothing keeps the
provider's spelling, is counted on the Catalog and logged once per poll: never dropped.
"""

from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.db import transaction

from providers.adapters.base import Catalog, OfferIn, usd
from providers.models import GpuModel

logger = logging.getLogger(__name__)

CATALOG_PATH = Path(__file__).resolve().parent / "gpu_catalog.json"
VENDOR_WORDS = re.compile(r"\b(?:nvidia|geforce|tesla|amd|instinct)\b")
# How far an offer's memory may sit from the spec sheet's and still be that GPU: providers
# report usable memory (Vast's L40S shows 45 of 48 GB; io.net's B200 shows 192 of 180).
MEMORY_TOLERANCE = 0.15


def spelling_key(spelling: str) -> str:
    return re.sub(r"[^a-z0-9]", "", VENDOR_WORDS.sub(" ", spelling.lower()))


@transaction.atomic
def load_gpu_catalog() -> list[GpuModel]:
    """Write providers/gpu_catalog.json into GpuModel, idempotently. Figures follow the file;
    aliases an admin added are kept."""
    models = []
    for entry in json.loads(CATALOG_PATH.read_text()):
        figures = {
            "vendor": entry["vendor"],
            "architecture": entry.get("architecture") or "",
            "memory_gb": entry.get("memory_gb"),
            "bf16_tflops": entry.get("bf16_dense_tflops"),
            "fp16_tflops": entry.get("fp16_dense_tflops"),
            "memory_bandwidth_gbps": entry.get("memory_bandwidth_gbps"),
            "source": entry.get("source") or "",
            "note": entry.get("note") or "",
        }
        aliases = entry.get("aliases", [])
        model, created = GpuModel.objects.get_or_create(
            canonical=entry["canonical"], defaults={**figures, "aliases": aliases}
        )
        if not created:
            for name, value in figures.items():
                setattr(model, name, value)
            model.aliases = aliases + [a for a in model.aliases if a not in aliases]
            model.save()
        models.append(model)
    return models


class GpuVocabulary:
    """Spelling → GpuModel, built once per poll from the table."""

    def __init__(self, models: Iterable[GpuModel]):
        self._index: dict[str, list[GpuModel]] = defaultdict(list)
        for model in models:
            for spelling in (model.canonical, *model.aliases):
                bucket = self._index[spelling_key(spelling)]
                if model not in bucket:
                    bucket.append(model)

    @classmethod
    def load(cls) -> GpuVocabulary:
        return cls(GpuModel.objects.all())

    def match(
        self, name: str, *, variant: str = "", memory_gb: float | None = None
    ) -> GpuModel | None:
        """The GPU a provider means by `name` (+ a form factor such as Akash's "SXM5" or io.net's
        "sxm4", tried first), or None when it is unknown or ambiguous."""
        spellings = [f"{name} {variant}", name] if variant else [name]
        for spelling in spellings:
            model = _by_memory(self._index.get(spelling_key(spelling), []), memory_gb)
            if model:
                return model
        return None

    def label(
        self,
        offer: OfferIn,
        catalog: Catalog,
        name: str,
        *,
        variant: str = "",
        memory_gb: float | None = None,
    ) -> None:
        """Set the offer's GPU in the shared vocabulary, or keep the provider's spelling."""
        model = self.match(name, variant=variant, memory_gb=memory_gb) if name else None
        if model is None:
            offer.gpu_name = name
            catalog.unknown_gpus[name] += 1
            return
        offer.gpu_id = model.pk
        offer.gpu_name = model.canonical


def _by_memory(candidates: list[GpuModel], memory_gb: float | None) -> GpuModel | None:
    if not memory_gb or memory_gb <= 0:
        return candidates[0] if len(candidates) == 1 else None
    near = [
        m
        for m in candidates
        if m.memory_gb is None or abs(memory_gb - m.memory_gb) <= MEMORY_TOLERANCE * m.memory_gb
    ]
    return min(near, key=lambda m: abs(memory_gb - (m.memory_gb or memory_gb)), default=None)


Parser = Callable[[Any, "GpuVocabulary", Catalog], list[OfferIn]]


def parse_gpu_offers(slug: str, items: Iterable[Any], parse: Parser) -> Catalog:
    """Run `parse` over a provider's items with the GPU vocabulary: a malformed item is
    skipped and counted, an unknown GPU kept and counted, and the unknowns logged once."""
    vocabulary = GpuVocabulary.load()
    catalog = Catalog()
    catalog.add_parsed(slug, items, lambda item: parse(item, vocabulary, catalog))
    log_unknown_gpus(slug, catalog)
    return catalog


def log_unknown_gpus(slug: str, catalog: Catalog) -> None:
    if catalog.unknown_gpus:
        spelled = ", ".join(f"{name!r} ×{n}" for name, n in catalog.unknown_gpus.most_common())
        logger.warning(
            "%s: %d offers name a GPU not in the catalog, kept as spelt: %s",
            slug,
            catalog.unknown_gpus.total(),
            spelled,
        )


def per_gpu_hour(total: Any, gpus: int, *, hours: float = 1, replicas: int = 1) -> Decimal | None:
    """A price for `replicas` machines of `gpus` GPUs over `hours`, per GPU-hour (divided
    before rounding, so 8 GPUs cost exactly 8 × the per-GPU figure, to the micro-dollar)."""
    units = Decimal(str(hours)) * replicas * gpus
    if total is None or total == "" or units <= 0:
        return None
    return usd(Decimal(str(total)) / units)


def mib_to_gb(value: Any) -> float | None:
    """Memory reported in MiB (nvidia-smi's unit) as GB the way spec sheets count it."""
    return round(float(value) / 1024, 1) if value else None

"""One GPU vocabulary: the spec catalog in the GpuModel table, and the normaliser that maps
every provider's spelling of a GPU to one of its rows.

A spelling is read as three parts, in any order: the model ("RTX 4090", "H100"), a memory size
("80GB", "80Gi") and a form factor ("SXM5", "PCIe"). Vendor words (NVIDIA, GeForce, Tesla,
Quadro, AMD, Instinct), case, spaces and punctuation are dropped from the model, and every SXM
generation is one form factor, so "NVIDIA GeForce RTX 4090", "RTX 4090" and "rtx4090" are one
GPU, and io.net's "H100 80GB SXM5" is Vast's "H100 SXM" is "H100 SXM 80GB". A name shared by
several memory sizes (Vast's "A100 SXM4", "Tesla V100") is settled by the offer's memory, or
else by a size written in the spelling; a bare family name with no memory size or variant to
settle it ("H100", which is SXM or PCIe, a third apart in speed) matches nothing. What matches
nothing keeps the provider's spelling, is counted on the Catalog, logged once per poll and
listed on the health page: never dropped.
"""

from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

from django.db import transaction

from providers.adapters.base import Catalog, OfferIn, usd
from providers.models import GpuModel

logger = logging.getLogger(__name__)

CATALOG_PATH = Path(__file__).resolve().parent / "gpu_catalog.json"
VENDOR_WORDS = re.compile(r"\b(?:nvidia|geforce|tesla|quadro|amd|instinct)\b")
# A memory size or a form factor standing as a word of its own ("-80GB", "/80Gi/", " SXM5").
MEMORY = re.compile(r"(?<![a-z0-9])(\d+)\s*(?:gb|gib|gi|g)(?![a-z0-9])")
FORM_FACTOR = re.compile(r"(?<![a-z0-9])(sxm\d?|pcie)(?![a-z0-9])")
# How far an offer's memory may sit from the spec sheet's and still be that GPU: providers
# report usable memory (Vast's L40S shows 45 of 48 GB; io.net's B200 shows 192 of 180).
MEMORY_TOLERANCE = 0.15


class Spelling(NamedTuple):
    model: str  # "h100", "rtx4090", "h100nvl"
    form: str  # "sxm", "pcie" or ""
    memory_gb: float | None  # as written in the spelling


def parse_spelling(spelling: str) -> Spelling:
    """A GPU spelling as (model, form factor, memory), whatever order the provider wrote it in."""
    text = VENDOR_WORDS.sub(" ", spelling.lower())
    sizes = MEMORY.findall(text)
    forms = FORM_FACTOR.findall(text)
    model = re.sub(r"[^a-z0-9]", "", FORM_FACTOR.sub(" ", MEMORY.sub(" ", text)))
    form = "sxm" if forms and forms[0].startswith("sxm") else (forms[0] if forms else "")
    return Spelling(model, form, float(sizes[0]) if sizes else None)


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
        self._index: dict[tuple[str, str], list[GpuModel]] = defaultdict(list)
        for model in models:
            for spelling in (model.canonical, *model.aliases):
                bucket = self._index[parse_spelling(spelling)[:2]]
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
        spelling = parse_spelling(f"{name} {variant}")
        if variant and not spelling.form:  # a variant that is no form factor: Akash's "Nothsure"
            spelling = parse_spelling(name)
        memory_gb = memory_gb or spelling.memory_gb
        for key in dict.fromkeys([spelling[:2], (spelling.model, "")]):
            model = _by_memory(self._index.get(key, []), memory_gb)
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
        if model.memory_gb:  # sold as 80 GB; the provider's 79.6 usable is kept beside it
            if offer.vram_gb and offer.vram_gb != model.memory_gb:
                offer.vram_reported_gb = offer.vram_gb
            offer.vram_gb = model.memory_gb


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
    """Memory reported in MiB (nvidia-smi's unit, and Vast's) in GiB, to one decimal: the
    binary gigabytes GPU spec sheets mean by "GB" (an 80 GB H100 has 81,920 MiB, of which
    Vast reports 81,559 usable: 79.6)."""
    return round(float(value) / 1024, 1) if value else None

"""The G-Score stored as each offer's value and one reference, and when a provider's offers
were last seen stored once on the provider (see providers.gscore and Offer.seen_at).

Measured with `make bench-marketplace` (100,000 offers): each poll of Vast.ai that moved 5% of
its prices shifted the reference and so rewrote the stored score of ~50,000 GPU offers (~6 s),
and every poll rewrote `last_seen` on each available offer (~45,000 for Vast.ai, ~4 s). Now a
re-poll writes only the offers that changed.

`offer_gscore`, the covering index for the G-Score order (0003, 0005), is rebuilt on the
value: ordering by value is ordering by score.
"""

import math

from django.db import migrations, models
from django.db.models import F, FloatField, OuterRef, Subquery, Value
from django.db.models.functions import Cast, Coalesce, Greatest, Least, NullIf, Round

OFFER = "providers_offer"
PRICES = "usd_per_1m_input, usd_per_image, usd_per_gpu_hour, usd_per_gpu_hour_min"
COVER = f"INCLUDE (facet_key, vram_gb, context_length, {PRICES}) WHERE available"  # as 0005
RELIABILITY_WEIGHT = 3
REFERENCE_PERCENTILE = 0.99


def sort_index(column: str):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        schema_editor.execute("DROP INDEX IF EXISTS offer_gscore")
        schema_editor.execute(
            f"CREATE INDEX offer_gscore ON {OFFER} ({column} DESC NULLS LAST, id) {COVER}"
        )

    return run


def fill_values(apps, schema_editor):
    """Each scored offer's value, with the arithmetic of providers.gscore.value in SQL, and
    the reference (the nearest-rank 99th percentile of the values on sale) on every provider."""
    Offer = apps.get_model("providers", "Offer")
    GpuModel = apps.get_model("providers", "GpuModel")
    Provider = apps.get_model("providers", "Provider")
    tflops = Subquery(
        GpuModel.objects.filter(pk=OuterRef("gpu_id"))
        .annotate(tflops=Coalesce("bf16_tflops", "fp16_tflops"))
        .values("tflops")[:1],
        output_field=FloatField(),
    )
    unreliability = Value(1.0) - Coalesce(F("reliability"), Value(1.0))
    penalty = Greatest(Value(0.0), Value(1.0) - RELIABILITY_WEIGHT * unreliability)
    price = NullIf(Cast("usd_per_gpu_hour", FloatField()), Value(0.0))
    scored = Offer.objects.filter(
        kind="gpu-compute", available=True, gpu__isnull=False, usd_per_gpu_hour__gt=0
    )
    scored.update(gscore_value=tflops / price * penalty)
    values = sorted(
        Offer.objects.filter(available=True, gscore_value__isnull=False).values_list(
            "gscore_value", flat=True
        )
    )
    if values:
        rank = max(0, math.ceil(REFERENCE_PERCENTILE * len(values)) - 1)
        Provider.objects.update(gscore_reference=values[rank])


def fill_scores(apps, schema_editor):
    """Back to stored scores: each value on the stored reference."""
    Offer = apps.get_model("providers", "Offer")
    Provider = apps.get_model("providers", "Provider")
    reference = Provider.objects.exclude(gscore_reference=None).values_list(
        "gscore_reference", flat=True
    )
    if reference:
        scaled = Least(Value(100.0), 100 * F("gscore_value") / reference[0])
        Offer.objects.filter(gscore_value__isnull=False).update(gscore=Round(scaled, 1))


class Migration(migrations.Migration):
    dependencies = [
        ("providers", "0006_offer_price_bands"),
    ]

    operations = [
        migrations.AddField(
            model_name="offer",
            name="gscore_value",
            field=models.FloatField(blank=True, null=True, verbose_name="G-Score value"),
        ),
        migrations.AddField(
            model_name="provider",
            name="gscore_reference",
            field=models.FloatField(blank=True, editable=False, null=True),
        ),
        # Empty until a provider's next poll: until then each offer's own last_seen is right,
        # since every poll so far wrote it on every available offer.
        migrations.AddField(
            model_name="provider",
            name="offers_seen_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.RunPython(fill_values, fill_scores),
        migrations.RunPython(sort_index("gscore_value"), sort_index("gscore")),
        migrations.RemoveField(
            model_name="offer",
            name="gscore",
        ),
    ]

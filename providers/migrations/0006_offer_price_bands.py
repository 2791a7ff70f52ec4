"""Roll-ups that answer the marketplace's facet counts under a price ceiling and a VRAM
minimum without grouping every offer that passes them (marketplace.filters):

- offers per facet combination and price band (providers.models.OfferPriceBand): at 100,000
  offers, "≤ $2/GPU-h" grouped 83,000 offers (~17 ms); now it reads a few hundred band rows and
  groups only the offers between the last band edge and the ceiling;
- each OfferFacet row's VRAM range, so "at least 80 GB" is decided for whole combinations.
"""

import django.db.models.deletion
from django.db import migrations, models
from django.db.models.functions import Coalesce


def fill_vram_ranges(apps, schema_editor):
    """The VRAM range of each roll-up row's offers; from now on every ingest writes it."""
    Offer = apps.get_model("providers", "Offer")
    OfferFacet = apps.get_model("providers", "OfferFacet")
    for row in OfferFacet.objects.all():
        offers = Offer.objects.filter(
            provider_id=row.provider_id, facet_key=row.key, available=row.available
        )
        ranges = offers.aggregate(
            low=models.Min(Coalesce("vram_gb", models.Value(-1.0))),
            high=models.Max("vram_gb"),
        )
        row.vram_low = -1.0 if ranges["low"] is None else ranges["low"]
        row.vram_high = ranges["high"]
        row.save(update_fields=["vram_low", "vram_high"])


def fill_price_bands(apps, schema_editor):
    """Band the offers already stored; from now on every ingest keeps the bands current."""
    from providers.models import UNIT_PRICE, price_band  # expressions of field names only

    Offer = apps.get_model("providers", "Offer")
    OfferPriceBand = apps.get_model("providers", "OfferPriceBand")
    banded = (
        Offer.objects.annotate(unit_price=UNIT_PRICE, upper=price_band())
        .filter(upper__isnull=False)
        .values("provider_id", "facet_key", "available", "upper")
        .annotate(n=models.Count("*"))
        .order_by()
    )
    OfferPriceBand.objects.bulk_create(
        OfferPriceBand(key=row.pop("facet_key"), offers=row.pop("n"), **row) for row in banded
    )


class Migration(migrations.Migration):

    dependencies = [
        ('providers', '0005_facet_key'),
    ]

    operations = [
        migrations.CreateModel(
            name='OfferPriceBand',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('key', models.CharField(help_text='Offer.facet_key of these offers.', max_length=300)),
                ('available', models.BooleanField()),
                ('upper', models.DecimalField(decimal_places=6, max_digits=14)),
                ('offers', models.PositiveIntegerField()),
                ('provider', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='providers.provider')),
            ],
            options={
                'indexes': [models.Index(fields=['upper'], name='offerpriceband_upper')],
            },
        ),
        migrations.RunPython(fill_price_bands, migrations.RunPython.noop),
        migrations.AddField(
            model_name="offerfacet",
            name="vram_low",
            field=models.FloatField(default=-1.0),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="offerfacet",
            name="vram_high",
            field=models.FloatField(null=True),
        ),
        migrations.RunPython(fill_vram_ranges, migrations.RunPython.noop),
    ]

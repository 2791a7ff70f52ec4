"""One column for an offer's five facet values (`Offer.facet_key`), and the marketplace's
PostgreSQL indexes rebuilt to carry it instead of the five.

Measured with `make bench-marketplace` (100,000 offers): the facet counts under "≤ $2/GPU-h"
group 83,000 index entries; by five text columns that took ~30 ms, by the one key ~13 ms. The
page of a narrow choice ("H100 at Vast.ai or io.net", ~10,000 offers) is found through
`offer_facet_key` instead of by walking ~69,000 cheaper offers in price order (see
marketplace.filters.OfferFilter.page_of_offers).
"""

import django.db.models.functions.text
from django.db import migrations, models

OFFER = "providers_offer"
PRICES = "usd_per_1m_input, usd_per_image, usd_per_gpu_hour, usd_per_gpu_hour_min"
UNIT_PRICE = f"COALESCE({PRICES})"  # providers.models.UNIT_PRICE, as Django writes it


def covering(facets: str) -> dict[str, str]:
    """0003's sort-order indexes and 0004's price-facet index, carrying `facets`."""
    included = f"{facets}, vram_gb, context_length, {PRICES}"
    cover = f"INCLUDE ({included}) WHERE available"
    return {
        "offer_unit_price": f"ON {OFFER} (({UNIT_PRICE}), id) INCLUDE ({included}, available)",
        "offer_newest": f"ON {OFFER} (first_seen DESC, id DESC) {cover}",
        "offer_context": f"ON {OFFER} (context_length DESC NULLS LAST, id) {cover}",
        "offer_throughput": f"ON {OFFER} (throughput_tps DESC NULLS LAST, id) {cover}",
        "offer_gscore": f"ON {OFFER} (gscore DESC NULLS LAST, id) {cover}",
        "offer_vram": f"ON {OFFER} (vram_gb, id) {cover}",
        "offer_price_facets": f"ON {OFFER} (({UNIT_PRICE})) INCLUDE ({facets}, {PRICES}) "
        "WHERE available",
    }


FIVE_COLUMNS = covering("kind, provider_id, region, task, gpu_name")
ONE_KEY = covering("facet_key") | {
    # A narrow choice's offers, in price order within each combination (an index-only scan
    # for the default order; the other orders read the rows).
    "offer_facet_key": f"ON {OFFER} (facet_key, ({UNIT_PRICE}), id) "
    f"INCLUDE (vram_gb, context_length, {PRICES}, available)",
}



def rebuild(indexes: dict[str, str]):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for name in FIVE_COLUMNS.keys() | ONE_KEY.keys():
            schema_editor.execute(f"DROP INDEX IF EXISTS {name}")
        for name, definition in indexes.items():
            schema_editor.execute(f"CREATE INDEX {name} {definition}")

    return run


def fill_facet_keys(apps, schema_editor):
    """Give the stored roll-up rows the key of their offers."""
    Offer = apps.get_model("providers", "Offer")
    OfferFacet = apps.get_model("providers", "OfferFacet")
    columns = ("provider_id", "kind", "region", "task", "gpu_name", "available")
    groups = Offer.objects.values(*columns, "facet_key").annotate(n=models.Count("*")).order_by()
    OfferFacet.objects.all().delete()
    OfferFacet.objects.bulk_create(
        OfferFacet(offers=row.pop("n"), key=row.pop("facet_key"), **row) for row in groups
    )


class Migration(migrations.Migration):
    dependencies = [
        ("providers", "0004_pollrun_latest_drop_unused_offer_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="offer",
            name="facet_key",
            field=models.GeneratedField(
                db_persist=True,
                expression=django.db.models.functions.text.Concat(
                    "kind",
                    models.Value("\x1f"),
                    "provider_id",
                    models.Value("\x1f"),
                    "region",
                    models.Value("\x1f"),
                    "task",
                    models.Value("\x1f"),
                    "gpu_name",
                    output_field=models.CharField(),
                ),
                output_field=models.CharField(max_length=300),
            ),
        ),
        migrations.AddField(
            model_name="offerfacet",
            name="key",
            field=models.CharField(
                default="", help_text="Offer.facet_key of these offers.", max_length=300
            ),
            preserve_default=False,
        ),
        migrations.RunPython(fill_facet_keys, migrations.RunPython.noop),
        migrations.RunPython(rebuild(ONE_KEY), rebuild(FIVE_COLUMNS)),
    ]

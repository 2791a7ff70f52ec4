"""Indexes for the marketplace at 100,000 offers (see README, "Marketplace"), and the
OfferFacet roll-up that the poll writes beside the offers.

The indexes use what only PostgreSQL has (covering INCLUDE columns, DESC NULLS LAST keys,
trigram GIN), so they are created only there; on SQLite the same queries run without them.

One index per sort order, each carrying the facet columns and the limits' columns, so that:
- a page of offers is found by an index-only scan in sort order that skips non-matching
  entries without reading the wide offer rows (the page's 24 rows are read after);
- the facet counts under a limit are a GROUP BY over the index entries in the limit's range
  (the VRAM index exists for this alone).
"""

from django.db import migrations, models
import django.db.models.deletion

OFFER = "providers_offer"
FACETS = "kind, provider_id, region, task, gpu_name"
PRICES = "usd_per_1m_input, usd_per_image, usd_per_gpu_hour, usd_per_gpu_hour_min"
# The same expression as providers.models.UNIT_PRICE, as Django writes it.
UNIT_PRICE = f"COALESCE({PRICES})"
INCLUDED = f"{FACETS}, vram_gb, context_length, {PRICES}"
COVER = f"INCLUDE ({INCLUDED}) WHERE available"
POSTGRES_INDEXES = {
    # The default order also serves "show unavailable offers", so it covers every offer.
    "offer_unit_price": f"ON {OFFER} (({UNIT_PRICE}), id) INCLUDE ({INCLUDED}, available)",
    "offer_newest": f"ON {OFFER} (first_seen DESC, id DESC) {COVER}",
    "offer_context": f"ON {OFFER} (context_length DESC NULLS LAST, id) {COVER}",
    "offer_throughput": f"ON {OFFER} (throughput_tps DESC NULLS LAST, id) {COVER}",
    "offer_gscore": f"ON {OFFER} (gscore DESC NULLS LAST, id) {COVER}",
    "offer_vram": f"ON {OFFER} (vram_gb, id) {COVER}",
    # Search: icontains is UPPER(name) LIKE UPPER('%q%'), so a trigram index on UPPER(name).
    "offer_name_trgm": f"ON {OFFER} USING gin (upper(name) gin_trgm_ops)",
}


def create_postgres_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, definition in POSTGRES_INDEXES.items():
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} {definition}")


def fill_offer_facets(apps, schema_editor):
    """Roll up the offers already stored; from now on every ingest keeps this current."""
    Offer = apps.get_model("providers", "Offer")
    OfferFacet = apps.get_model("providers", "OfferFacet")
    columns = ("provider_id", "kind", "region", "task", "gpu_name", "available")
    groups = Offer.objects.values(*columns).annotate(n=models.Count("*")).order_by()
    OfferFacet.objects.bulk_create(OfferFacet(offers=row.pop("n"), **row) for row in groups)


def drop_postgres_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in POSTGRES_INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):

    dependencies = [
        ('providers', '0002_gpu_vocabulary'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='pricechange',
            index=models.Index(fields=['offer', 'at'], name='pricechange_offer_at'),
        ),
        migrations.RunPython(create_postgres_indexes, drop_postgres_indexes),
        migrations.CreateModel(
            name='OfferFacet',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('llm-inference', 'LLM inference'), ('gpu-compute', 'GPU compute')], max_length=20)),
                ('region', models.CharField(blank=True, max_length=40)),
                ('task', models.CharField(blank=True, max_length=40)),
                ('gpu_name', models.CharField(blank=True, max_length=80)),
                ('available', models.BooleanField()),
                ('offers', models.PositiveIntegerField()),
                ('provider', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='providers.provider')),
            ],
        ),
        migrations.RunPython(fill_offer_facets, migrations.RunPython.noop),
    ]

"""Offer's indexes declared on the model (`Offer.Meta.indexes`), where `makemigrations` tracks
them, instead of SQL written out in 0003, 0004, 0005 and 0007; and three fixes to them.

- Eight of the nine marketplace indexes are in the database exactly as the model declares them
  (each `pg_indexes.indexdef` compared with the index Django creates from the declaration, on
  a freshly migrated database), so they enter the migration state only.
- `offer_newest` is rebuilt as `first_seen DESC NULLS LAST, id DESC`, the order the newest page
  asks for (marketplace.search.SORTS). Built `DESC` (NULLS FIRST), it could never serve that
  order: the page sorted every matching offer instead of reading 24 index entries.
- The B-tree on `canonical_id` and its `_like` twin are dropped (no query reads the column), and
  so is the index on `provider_id` alone (`offer_unique_per_region` leads with it). Each cost
  every ingest: ~1.4 s and ~0.3 s per 100,000 offers. The foreign key itself stays as it is.

On SQLite none of the marketplace indexes is built (providers.indexes), as before.
"""

import django.contrib.postgres.indexes
import django.db.models.deletion
import django.db.models.functions.comparison
import django.db.models.functions.text
from django.db import migrations, models

import providers.indexes

PRICES = ("usd_per_1m_input", "usd_per_image", "usd_per_gpu_hour", "usd_per_gpu_hour_min")
COVERED = ("facet_key", "vram_gb", "context_length", *PRICES)
AVAILABLE = models.Q(("available", True))
UNIT_PRICE = django.db.models.functions.comparison.Coalesce(*PRICES)
# Django's name for the index a ForeignKey gets (0001_initial).
PROVIDER_ID_INDEX = "providers_offer_provider_id_815fb13f"


def newest(first_seen: models.OrderBy) -> providers.indexes.PostgresIndex:
    return providers.indexes.PostgresIndex(
        first_seen,
        models.OrderBy(models.F("id"), descending=True),
        condition=AVAILABLE,
        include=COVERED,
        name="offer_newest",
    )


def sort_index(name: str, key: models.OrderBy | models.F) -> providers.indexes.PostgresIndex:
    return providers.indexes.PostgresIndex(
        key, models.F("id"), condition=AVAILABLE, include=COVERED, name=name
    )


def descending(column: str) -> models.OrderBy:
    return models.OrderBy(models.F(column), descending=True, nulls_last=True)


# The indexes as 0003-0007 built them (offer_newest as it was).
AS_BUILT = [
    providers.indexes.PostgresIndex(
        UNIT_PRICE, models.F("id"), include=(*COVERED, "available"), name="offer_unit_price"
    ),
    newest(models.OrderBy(models.F("first_seen"), descending=True)),
    sort_index("offer_context", descending("context_length")),
    sort_index("offer_throughput", descending("throughput_tps")),
    sort_index("offer_gscore", descending("gscore_value")),
    sort_index("offer_vram", models.F("vram_gb")),
    providers.indexes.PostgresIndex(
        UNIT_PRICE, condition=AVAILABLE, include=("facet_key", *PRICES), name="offer_price_facets"
    ),
    providers.indexes.PostgresIndex(
        models.F("facet_key"),
        UNIT_PRICE,
        models.F("id"),
        include=("vram_gb", "context_length", *PRICES, "available"),
        name="offer_facet_key",
    ),
    providers.indexes.PostgresGinIndex(
        django.contrib.postgres.indexes.OpClass(
            django.db.models.functions.text.Upper("name"), name="gin_trgm_ops"
        ),
        name="offer_name_trgm",
    ),
]


class Migration(migrations.Migration):
    dependencies = [
        ("providers", "0007_gscore_value_and_reference"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(model_name="offer", index=index) for index in AS_BUILT
            ],
        ),
        migrations.RemoveIndex(model_name="offer", name="offer_newest"),
        migrations.AddIndex(
            model_name="offer",
            index=newest(descending("first_seen")),
        ),
        migrations.AlterField(
            model_name="offer",
            name="canonical_id",
            field=models.CharField(help_text="Lowercase.", max_length=300),
        ),
        # Django would drop and re-add the foreign key constraint to drop its index, and
        # re-adding it checks every offer: drop the index alone.
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    f"DROP INDEX IF EXISTS {PROVIDER_ID_INDEX}",
                    f"CREATE INDEX {PROVIDER_ID_INDEX} ON providers_offer (provider_id)",
                ),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="offer",
                    name="provider",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="offers",
                        to="providers.provider",
                    ),
                ),
            ],
        ),
    ]

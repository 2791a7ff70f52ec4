"""Index upkeep found by the marketplace audit at 100,000 offers.

- The six Offer indexes from 0001 served no query once 0003's covering indexes existed (on
  PostgreSQL; SQLite, for a laptop's few offers, does without), yet every offer written by a
  poll and every G-Score update paid for them: dropping them took the 100,000-offer first
  ingest from ~10.0 s to ~8.3 s.
- `offer_price_facets` (PostgreSQL): the facet counts under a price ceiling alone, a GROUP BY
  over every offer under it (83,000 of 100,000 for "≤ $2"), from an index a quarter the width
  of the sort orders' covering ones. Without it the planner took a sequential scan of the table
  once polls had bloated those (~60 ms instead of ~25 ms).
- `pollrun_latest` finds a provider's latest run directly. The marketplace and health pages
  ask for it on every request; with a year of runs (~340,000) and a provider that had none
  lately, the backward scan of `started_at` cost ~130 ms a page.
"""

from django.db import migrations, models

PRICES = "usd_per_1m_input, usd_per_image, usd_per_gpu_hour, usd_per_gpu_hour_min"
PRICE_FACETS = (
    f"CREATE INDEX IF NOT EXISTS offer_price_facets ON providers_offer ((COALESCE({PRICES}))) "
    f"INCLUDE (kind, provider_id, region, task, gpu_name, {PRICES}) WHERE available"
)


def create_price_facets(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PRICE_FACETS)


def drop_price_facets(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS offer_price_facets")


# Django's names for Offer.Meta's six indexes from 0001 (available + one column each).
UNUSED_OFFER_INDEXES = [
    "providers_o_availab_34d17f_idx",
    "providers_o_availab_da77c2_idx",
    "providers_o_availab_9ae9df_idx",
    "providers_o_availab_229b10_idx",
    "providers_o_availab_c0c6bf_idx",
    "providers_o_availab_7211ac_idx",
]


class Migration(migrations.Migration):
    dependencies = [
        ("providers", "0003_marketplace_indexes"),
    ]

    operations = [
        *(migrations.RemoveIndex(model_name="offer", name=name) for name in UNUSED_OFFER_INDEXES),
        migrations.AddIndex(
            model_name="pollrun",
            index=models.Index(fields=["provider", "-started_at"], name="pollrun_latest"),
        ),
        migrations.RunPython(create_price_facets, drop_price_facets),
    ]

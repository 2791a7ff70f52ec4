"""Index upkeep found by the marketplace audit at 100,000 offers.

- The six Offer indexes from 0001 served no query once 0003's covering indexes existed (on
  PostgreSQL; SQLite, for a laptop's few offers, does without), yet every offer written by a
  poll and every G-Score update paid for them: dropping them took the 100,000-offer first
  ingest from ~10.0 s to ~8.3 s.
- `pollrun_latest` finds a provider's latest run directly. The marketplace and health pages
  ask for it on every request; with a year of runs (~340,000) and a provider that had none
  lately, the backward scan of `started_at` cost ~130 ms a page.
"""

from django.db import migrations, models


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
    ]

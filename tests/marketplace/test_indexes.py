"""The marketplace's indexes: declared on the model, built as declared, read in each order."""

from __future__ import annotations

import copy

import pytest
from django.db import connection

from marketplace import search
from providers.models import Offer

pytestmark = pytest.mark.django_db


def definitions() -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s",
            [Offer._meta.db_table],
        )
        return dict(cursor.fetchall())


def test_the_migrated_indexes_are_the_ones_the_model_declares():
    """Migrations and Offer.Meta.indexes agree: each index built afresh from its declaration
    (under another name) reads back as the migrated one does."""
    migrated = definitions()
    with connection.schema_editor() as editor:
        for index in Offer._meta.indexes:
            twin = copy.copy(index)
            twin.name = f"twin_{index.name}"
            editor.add_index(Offer, twin)
    built = definitions()
    for index in Offer._meta.indexes:
        assert built[f"twin_{index.name}"].replace("twin_", "") == migrated[index.name]


@pytest.mark.parametrize(
    ("sort", "index"),
    [
        ("price", "offer_unit_price"),
        ("newest", "offer_newest"),
        ("context", "offer_context"),
        ("throughput", "offer_throughput"),
        ("gscore", "offer_gscore"),
    ],
)
def test_each_order_is_read_from_its_index(world, sort, index):
    """A page of offers in any order is read from that order's index, with no sort step
    (told not to sort, PostgreSQL still sorts when no index gives the order)."""
    criteria = search.Criteria(selected={}, sort=sort)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("SET LOCAL enable_incremental_sort = off")
    plan = search.offers(criteria, None).values("pk")[: search.PAGE_SIZE].explain()
    assert index in plan and "Sort" not in plan, plan

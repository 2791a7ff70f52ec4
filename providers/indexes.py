"""Indexes that PostgreSQL alone builds.

The marketplace's indexes on `Offer` use what SQLite lacks (covering INCLUDE columns,
DESC NULLS LAST keys, trigram GIN). On SQLite, the embedded default for a laptop's few
offers, the same queries run without them, so there creating or dropping one writes a
comment instead of failing (SQLite also rebuilds a table, indexes included, to alter it),
and the system checks do not warn about what it cannot build.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.postgres.indexes import GinIndex
from django.core import checks
from django.db import models

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.backends.base.schema import BaseDatabaseSchemaEditor
    from django.db.backends.ddl_references import Statement


class PostgresOnly:
    name: str

    def skipped(self, schema_editor: BaseDatabaseSchemaEditor) -> str:
        """What runs instead of building or dropping the index ("" on PostgreSQL)."""
        if schema_editor.connection.vendor == "postgresql":
            return ""
        return f"-- {self.name}: PostgreSQL only"

    def create_sql(
        self, model: type[models.Model], schema_editor: BaseDatabaseSchemaEditor, **kwargs
    ) -> Statement | str:
        return self.skipped(schema_editor) or super().create_sql(model, schema_editor, **kwargs)

    def remove_sql(
        self, model: type[models.Model], schema_editor: BaseDatabaseSchemaEditor, **kwargs
    ) -> Statement | str:
        return self.skipped(schema_editor) or super().remove_sql(model, schema_editor, **kwargs)

    def check(
        self, model: type[models.Model], connection: BaseDatabaseWrapper
    ) -> list[checks.CheckMessage]:
        errors = super().check(model, connection)
        if connection.vendor != "postgresql":  # not built there: no warning about features
            errors = [error for error in errors if error.is_serious()]
        return errors


class PostgresIndex(PostgresOnly, models.Index):
    """A B-tree index, on PostgreSQL only."""


class PostgresGinIndex(PostgresOnly, GinIndex):
    """A GIN index, on PostgreSQL only."""

"""A QuerySet compiled once and run many times, its rows read as dicts.

The marketplace's hot queries cost more Python to build (the ORM compiling them) and to read
(model instances) than PostgreSQL spends running them; so they are compiled once and kept
(per process, or per snapshot when they depend on the roll-up), and their rows go through
the same converters the ORM would apply (JSON decoded; on SQLite, dates and booleans), but
into plain dicts.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import QuerySet
from django.db.models.sql.compiler import SQLCompiler


class Prepared(NamedTuple):
    sql: str
    params: tuple | None
    compiler: SQLCompiler
    converters: dict


def prepare(qs: QuerySet) -> Prepared:
    """`qs` compiled. On PostgreSQL its values are written into the SQL, as the database
    receives them, so a kept query does not adapt them again (a choice of every GPU is ~190
    facet keys)."""
    compiler = qs.query.get_compiler(connection=connection)
    try:
        sql, params = compiler.as_sql()
    except EmptyResultSet:  # a choice nothing can match (an empty catalog, on SQLite)
        return Prepared("", None, compiler, {})
    converters = compiler.get_converters([column for column, _, _ in compiler.select])
    if connection.vendor == "postgresql" and params:
        sql, params = connection.ops.compose_sql(sql, params), None
    return Prepared(sql, params, compiler, converters)


def rows(prepared: Prepared) -> list[dict[str, Any]]:
    """The query's rows, as dicts of its columns' names (aliases) to converted values."""
    if not prepared.sql:
        return []
    with connection.cursor() as cursor:
        cursor.execute(prepared.sql, prepared.params)
        names = [column[0] for column in cursor.description]
        found = cursor.fetchall()
    if prepared.converters:
        found = prepared.compiler.apply_converters(found, prepared.converters)
    return [dict(zip(names, row, strict=True)) for row in found]

"""The pricing table as CSV, streamed: every matching offer without holding them in memory.

On PostgreSQL the rows come out of `COPY (query) TO STDOUT WITH CSV`, block by block, and
go to the client as they come; formatting 100,000 rows in Python was the slow part of an
export. Elsewhere (the embedded SQLite) the csv module writes rows from a server-side
iterator.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Case, F, QuerySet, Value, When
from django.http import StreamingHttpResponse

from marketplace.catalog import seen_at
from providers.models import Offer

CHUNK_BYTES = 256 * 1024  # what goes to the client at once
COLUMNS = {
    "id": F("id"),
    "provider": F("provider__slug"),
    "kind": F("kind"),
    "name": F("name"),
    "upstream_id": F("upstream_id"),
    "model": F("llm_model__canonical"),
    "serving_provider": F("serving_provider"),
    "region": F("region"),
    "task": F("task"),
    "usd_per_1m_input": F("usd_per_1m_input"),
    "usd_per_1m_output": F("usd_per_1m_output"),
    "usd_per_image": F("usd_per_image"),
    "usd_per_gpu_hour": F("usd_per_gpu_hour"),
    "usd_per_gpu_hour_min": F("usd_per_gpu_hour_min"),
    "usd_per_gpu_hour_max": F("usd_per_gpu_hour_max"),
    "usd_per_instance_hour": F("usd_per_instance_hour"),
    "native_price": F("native_price"),
    "gpu": F("gpu_name"),
    "gpu_count": F("gpu_count"),
    "vram_gb": F("vram_gb"),
    "context_length": F("context_length"),
    "status": Case(When(available=True, then=Value("available")), default=Value("unavailable")),
    "price_source": F("price_source"),
    "price_source_date": F("price_source_date"),
    "seen_at": seen_at(),
}


def csv_response(offers: QuerySet[Offer]) -> StreamingHttpResponse:
    rows = csv_rows(offers)
    stream = _copy(*_sql(rows)) if connection.vendor == "postgresql" else _written(rows)
    response = StreamingHttpResponse(stream, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="gpubroker-pricing.csv"'
    return response


def csv_rows(offers: QuerySet[Offer]) -> QuerySet:
    """The CSV's rows: one tuple of COLUMNS per offer, by id."""
    rows = offers.order_by("id").annotate(**{f"c_{k}": v for k, v in COLUMNS.items()})
    return rows.values_list(*(f"c_{k}" for k in COLUMNS))


def _header() -> bytes:
    return (",".join(COLUMNS) + "\n").encode()  # COPY ends its lines with \n too


def _sql(rows: QuerySet) -> tuple[str | None, tuple]:
    """The query, compiled before the first byte goes out (an error then is still an
    answer); None when Django knows it matches nothing."""
    try:
        return rows.query.sql_with_params()
    except EmptyResultSet:
        return None, ()


def _copy(sql: str | None, params: tuple) -> Iterator[bytes]:
    yield _header()
    if sql is None:
        return
    with connection.cursor() as cursor:
        copy_sql = f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)"
        with cursor.cursor.copy(copy_sql, params) as copy:
            chunk = bytearray()
            for row in copy:  # psycopg hands COPY's output over a row at a time
                chunk += row
                if len(chunk) >= CHUNK_BYTES:
                    yield bytes(chunk)
                    chunk.clear()
            yield bytes(chunk)


def _written(rows: QuerySet) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    yield _header()
    for row in rows.iterator(chunk_size=2000):
        writer.writerow(row)
        if buffer.tell() > CHUNK_BYTES:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()

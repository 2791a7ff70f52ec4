"""The poll pipeline: adapter fetch → parse → normalise → one transaction of bulk writes.

A failed or malformed response never touches stored offers: the last good snapshot stays
(visibly stale) and the PollRun says what went wrong.
"""

from __future__ import annotations

import gc
import json
import logging
import re
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from itertools import batched
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import F, Q, Subquery
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast, Coalesce, Greatest
from django.utils import timezone
from psycopg.copy import QueuedLibpqWriter

from providers import gscore, llm_models
from providers.adapters.base import PRICE_FIELDS, Catalog, OfferIn
from providers.models import (
    GpuModel,
    Kind,
    LlmModel,
    Offer,
    PollRun,
    PriceChange,
    Provider,
    refresh_rollups,
)
from resilience.errors import BadPayload, ProviderError
from resilience.policy import call_policy
from resilience.secrets import scrub

logger = logging.getLogger(__name__)

BATCH_SIZE = 2000
UNIT_GPU_PRICE = Coalesce("usd_per_gpu_hour", "usd_per_gpu_hour_min")
# Columns a poll writes: every stored one but the key and those the database computes.
WRITTEN_FIELDS = [f for f in Offer._meta.concrete_fields if not (f.primary_key or f.generated)]
# Fields compared to decide whether a stored offer changed (timestamps excluded).
CONTENT_FIELDS = [
    f.attname  # gpu_id: the GPU an offer normalised to is content too
    for f in WRITTEN_FIELDS
    if f.name not in {"provider", "first_seen", "last_seen", "last_price_change"}
]
# An offer's content as a tuple, the G-Score value last: every field but that one is read off
# the adapter's OfferIn in one call (not a dict built per offer: at 100,000 offers, building
# and comparing dicts was most of a re-poll's Python time).
OFFER_FIELDS = [name for name in CONTENT_FIELDS if name != "gscore_value"]
COMPARED = [*OFFER_FIELDS, "gscore_value"]
read_offer = attrgetter(*OFFER_FIELDS)
JSON_FIELDS = {f.attname for f in WRITTEN_FIELDS if isinstance(f, models.JSONField)}
JSON_AT = [i for i, name in enumerate(OFFER_FIELDS) if name in JSON_FIELDS]
PRICE_FIELDS_AT = [(COMPARED.index(name), name) for name in PRICE_FIELDS]
KEY_AT = (COMPARED.index("upstream_id"), COMPARED.index("region"))
AVAILABLE_AT = COMPARED.index("available")
REFERENCES_AT = {GpuModel: COMPARED.index("gpu_id"), LlmModel: COMPARED.index("llm_model_id")}


def poll_provider(slug: str, run_id: int | None = None, task_id: str = "") -> PollRun:
    """Poll one provider now. `run_id`: a PollRun the sync API created when it queued this
    poll; `task_id`: the Celery task's id, by which a redelivered task takes over the lock
    its dead predecessor held."""
    provider = Provider.objects.get(slug=slug)
    run = PollRun.objects.filter(pk=run_id, provider=provider).first() if run_id else None
    if not provider.is_enabled:
        # Not saved unless queued: a disabled provider's beat entry must not fill the table.
        run = run or PollRun(provider=provider)
        _skip(run, f"Provider disabled {provider.disabled_by}; not polled.", save=bool(run.pk))
        return run
    run = run or PollRun(provider=provider)
    run.task_id = task_id
    run.save()
    if not provider.claim_poll(run):
        logger.info("%s: poll already running, not started again", slug)
        _skip(run, "A poll of this provider is already running.", save=True)
        return run
    adapter = None
    try:
        adapter = provider.adapter()
        deadline = time.monotonic() + settings.PROVIDER_POLL_DEADLINE
        # A poll asks the provider, never the response cache, and gives up at its deadline.
        with call_policy(fresh=True, deadline=deadline):
            catalog = adapter.list_models()
        drop_implausible(provider.slug, catalog)  # absurd prices are bad items too
        check_catalog(provider, catalog)
        counts = ingest(provider, catalog)
    except (ProviderError, ReferenceGone) as exc:
        _fail(run, exc)
    except Exception as exc:  # a bug or an unforeseen payload must not wedge the lock
        logger.exception("%s: poll crashed", slug)
        _fail(run, exc)
    else:
        run.outcome = PollRun.Outcome.PARTIAL if catalog.skipped else PollRun.Outcome.OK
        run.items_skipped = catalog.skipped
        run.models_unknown = catalog.unknown_models.total()
        for name, value in counts.items():
            setattr(run, f"offers_{name}", value)
    finally:
        if adapter is not None:
            run.http_calls = adapter.calls
            adapter.close()
        run.finished_at = timezone.now()
        run.save()
        provider.release_poll(run)
    return run


def _skip(run: PollRun, why: str, *, save: bool) -> None:
    run.outcome = PollRun.Outcome.SKIPPED
    run.finished_at = timezone.now()
    run.error_message = why
    if save:
        run.save()


def check_catalog(provider: Provider, catalog: Catalog) -> None:
    """Refuse a catalog that would wipe good data: items none of which parsed, or more than
    half of them bad while the provider has offers on sale. The last snapshot stays."""
    if catalog.skipped and not catalog.offers:
        raise BadPayload(
            f"{provider.slug}: none of the {catalog.skipped} items could be parsed; "
            "the last good offers are kept"
        )
    if catalog.bad_share > 0.5 and Offer.objects.for_provider(provider).available().exists():
        raise BadPayload(
            f"{provider.slug}: {catalog.skipped} of {catalog.skipped + catalog.parsed} items "
            "could not be parsed; the last good offers are kept"
        )


def _fail(run: PollRun, exc: Exception) -> None:
    run.outcome = PollRun.Outcome.FAILED
    run.error_class = type(exc).__name__
    run.error_message = scrub(str(exc))[:2000]
    logger.warning("%s: poll failed: %s: %s", run.provider.slug, run.error_class, run.error_message)


# A price at or over these is no price anyone charges: a unit or parsing error upstream.
ABSURD = {
    "usd_per_gpu_hour": Decimal(1000),
    "usd_per_gpu_hour_min": Decimal(1000),
    "usd_per_gpu_hour_max": Decimal(1000),
    "usd_per_1m_input": Decimal(1000),
    "usd_per_1m_output": Decimal(1000),
    "usd_per_1m_cached_input": Decimal(1000),
}
# Fewer prices than this for one GPU or model: no median worth comparing against.
MIN_PEERS = 3


def drop_implausible(slug: str, catalog: Catalog) -> None:
    """Skip, and count as bad items, offers with a price that cannot be one: negative, NaN,
    or absurd (see ABSURD)."""
    kept = []
    for offer in catalog.offers:
        reason = _implausible(offer)
        if reason:
            catalog.skip({"id": offer.upstream_id}, reason, slug)
        else:
            kept.append(offer)
    catalog.offers = kept


def _implausible(offer: OfferIn) -> str:
    for name, value in offer.prices().items():
        if value is None:
            continue
        if value.is_nan() or value < 0:
            return f"{name} is {value}"
        if name in ABSURD and value >= ABSURD[name]:
            return f"{name} is {value}, over {ABSURD[name]}"
    return ""


def _peer_price(offer: OfferIn) -> tuple[tuple[str, str], Decimal] | None:
    """What an offer's price is compared with (the same GPU, or the same model) and that
    price in its kind's unit; None without either."""
    if offer.kind == Kind.GPU:
        price = offer.usd_per_gpu_hour
        if price is None:
            price = offer.usd_per_gpu_hour_min
        key = ("gpu_name", offer.gpu_name) if offer.gpu_name else None
    else:
        price, key = offer.usd_per_1m_input, ("canonical_id", offer.canonical_id)
    return None if price is None or key is None else (key, price)


def flag_unusual(provider: Provider, offers: list[OfferIn]) -> None:
    """Flag each price more than PRICE_UNUSUAL_FACTOR× below or above the median for the same
    GPU (or model) over this poll and every other provider's available offers. The offer is
    kept and shown, with the flag: the number may be true, but a user should check it."""
    mine: dict[tuple[str, str], list[tuple[OfferIn, Decimal]]] = defaultdict(list)
    for offer in offers:
        if (peer := _peer_price(offer)) is not None:
            key, price = peer
            mine[key].append((offer, price))
    prices = {key: [price for _, price in group] for key, group in mine.items()}
    for key, price in _peer_prices(provider, mine):
        prices[key].append(price)
    factor = settings.PRICE_UNUSUAL_FACTOR
    for key, group in mine.items():
        if len(prices[key]) < MIN_PEERS:
            continue
        median = statistics.median(prices[key])
        for offer, price in group:
            if price * factor < median:
                offer.price_flags = [*offer.price_flags, "unusual-low"]
            elif price > median * factor:
                offer.price_flags = [*offer.price_flags, "unusual-high"]


def _peer_prices(provider: Provider, mine: dict) -> list[tuple[tuple[str, str], Decimal]]:
    """Other providers' available prices for the GPUs and models in `mine`, one query each."""
    found = []
    for column, price in (("gpu_name", UNIT_GPU_PRICE), ("canonical_id", F("usd_per_1m_input"))):
        names = sorted({name for col, name in mine if col == column})
        if not names:
            continue
        kind = Kind.GPU if column == "gpu_name" else Kind.LLM
        rows = (
            Offer.objects.filter(_one_of(column, names), kind=kind, available=True)
            .exclude(provider=provider)
            .annotate(price=price)
            .filter(price__isnull=False)
            .values_list(column, "price")
        )
        found += [((column, name), value) for name, value in rows]
    return found


def _one_of(column: str, values: list) -> Q | RawSQL:
    """`column IN values`; on PostgreSQL as `= ANY(%s)`, one array parameter: an IN list of a
    poll's 13,000 model names took longer to build and send than the query took to run."""
    if connection.vendor != "postgresql":
        return Q(**{f"{column}__in": values})
    sql = f"{connection.ops.quote_name(Offer._meta.get_field(column).column)} = ANY(%s)"
    return RawSQL(sql, [values], output_field=models.BooleanField())


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector off for the while: a poll allocates a tuple or two per offer,
    each allocation run set off a collection, and each full one walked every object of the
    catalog (~0.7 s of the 3.5 s of Python a 100,000-offer first poll took). Nothing the
    ingest builds is a cycle; whatever garbage is, the collector finds once it is back on."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@_collector_paused()
def ingest(provider: Provider, catalog: Catalog, now: datetime | None = None) -> dict[str, int]:
    """Write one poll's offers: new and changed rows in bulk, price history, vanished rows.
    An offer that did not change is not written at all."""
    now = now or timezone.now()
    incoming = _dedupe(catalog.offers)
    flag_unusual(provider, list(incoming.values()))
    if provider.kind == Kind.LLM:
        llm_models.identify(provider, incoming.values(), catalog)
    worth = scorer(incoming.values())  # written with the offer, compared like its other fields
    existing = _stored(provider)
    new: list[OfferIn] = []
    known: list[tuple[tuple[int, tuple], OfferIn]] = []
    for key, offer in incoming.items():
        if (old := existing.get(key)) is None:
            new.append(offer)
        else:
            known.append((old, offer))
    updated: list[Changed] = []
    changes: list[PriceChange] = []
    contents = _contents([offer for _, offer in known], worth)
    for ((offer_id, stored), offer), content in zip(known, contents, strict=True):
        if stored == content:
            continue
        moved = [
            PriceChange(offer_id=offer_id, field=name, old=stored[at], new=content[at], at=now)
            for at, name in PRICE_FIELDS_AT
            if not _same(stored[at], content[at])
        ]
        changes.extend(moved)
        updated.append(Changed(offer_id, offer, content, now if moved else None))

    gone_ids = [
        offer_id
        for key, (offer_id, stored) in existing.items()
        if key not in incoming and stored[AVAILABLE_AT]
    ]
    with transaction.atomic():
        referenced = _create(provider, new, worth, now)
        referenced.add([each.content for each in updated])
        _update(provider, updated, now)
        if new or updated:
            lock_referenced(provider, referenced)
        PriceChange.objects.bulk_create(changes, batch_size=BATCH_SIZE)
        _mark_gone(provider, gone_ids)
        if new or updated or gone_ids:  # else the roll-ups already count these offers
            refresh_rollups(provider)
        # Every offer still available was seen now: said once here, not on each row.
        Provider.objects.filter(pk=provider.pk).update(offers_seen_at=now)
    provider.offers_seen_at = now
    if provider.kind == Kind.GPU:
        # Outside the transaction: it updates every provider's row, and two polls that each
        # held their own provider's row while waiting for the other's would deadlock.
        refresh_gscore_reference()
    counts = {"seen": len(incoming), "added": len(new), "changed": len(updated)}
    return counts | {"gone": len(gone_ids)}


class Referenced:
    """The GPU models and LLM models the contents (`_contents`) a poll writes point at."""

    def __init__(self) -> None:
        self.ids: dict[type[models.Model], set[int]] = {model: set() for model in REFERENCES_AT}

    def add(self, contents: Sequence[tuple]) -> Sequence[tuple]:
        for model, at in REFERENCES_AT.items():
            self.ids[model].update(map(itemgetter(at), contents))
        return contents


def lock_referenced(provider: Provider, referenced: Referenced) -> None:
    """Check that the provider and the GPU and LLM models the poll's offers point at exist,
    and lock them until the transaction ends (FOR KEY SHARE, the lock a foreign-key check
    takes: polls do not wait for one another, a delete waits for the poll). The offer table
    has no such constraints (Offer.provider says why): one query a table, at the end of the
    poll's writes as the constraints' deferred checks were, instead of a check for each
    offer. Raises ReferenceGone, and the transaction writes nothing, when one was deleted
    since the poll looked it up."""
    for model, pointed_at in ({Provider: {provider.pk}} | referenced.ids).items():
        ids = pointed_at - {None}
        if not ids:
            continue
        if connection.vendor == "postgresql":
            table = connection.ops.quote_name(model._meta.db_table)
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT id FROM {table} WHERE id = ANY(%s) FOR KEY SHARE", [sorted(ids)]
                )
                found = {pk for (pk,) in cursor.fetchall()}
        else:  # SQLite: one writer at a time, nothing to lock against
            found = set(model._base_manager.filter(pk__in=ids).values_list("pk", flat=True))
        if missing := ids - found:
            raise ReferenceGone(
                f"{provider.slug}: {model._meta.verbose_name} {sorted(missing)[:5]} deleted "
                "while the poll ran; nothing was written, the next poll looks them up again"
            )


class ReferenceGone(Exception):
    """What a poll's offers point at was deleted while it ran (lock_referenced)."""


def _contents(offers: Sequence[OfferIn], worth: Callable[[OfferIn], float | None]) -> list[tuple]:
    """Each offer's content, compared with the stored offer (`_stored`), in COMPARED order:
    JSON as text, as PostgreSQL prints jsonb, so that equal lists compare equal without
    parsing the stored ones, and as COPY writes it. An offer at a time: read a column at a
    time (`map` of one attribute over every offer), it took twice as long, each offer's
    fields fetched from memory again for every column."""
    contents = []
    for offer in offers:
        values = list(read_offer(offer))
        for at in JSON_AT:
            values[at] = _json_text(values[at])
        values.append(worth(offer))
        contents.append(tuple(values))
    return contents


def _json_text(value: Any) -> str:
    """jsonb's text form of a JSON field. Lists of strings, what the fields hold, are
    remembered: offers share a handful of them. Looked up before the items are checked (1 s of
    a 100,000-offer poll): only lists of strings are remembered, and a tuple holding anything
    but strings never equals one of strings, so a hit is always one."""
    if type(value) is not list:
        return json.dumps(value, ensure_ascii=False)
    try:
        return _JSON_TEXTS[tuple(value)]
    except (KeyError, TypeError):  # not seen, or unhashable items (dicts): not a string list
        pass
    if not all(type(item) is str for item in value):
        return json.dumps(value, ensure_ascii=False)
    if len(_JSON_TEXTS) >= 10_000:  # a worker lives for many polls: stay small
        _JSON_TEXTS.clear()
    text = _JSON_TEXTS[tuple(value)] = json.dumps(value, ensure_ascii=False)
    return text


_JSON_TEXTS: dict[tuple, str] = {}


def _fields(offer: OfferIn, worth: float | None) -> dict[str, Any]:
    return dict(zip(OFFER_FIELDS, read_offer(offer), strict=True)) | {"gscore_value": worth}


def _stored(provider: Provider) -> dict[tuple[str, str], tuple[int, tuple]]:
    """The provider's stored offers by (upstream id, region): id and content as `_content`
    builds it. JSON columns are read as text: parsing 300,000 JSON values was a quarter of a
    100,000-offer re-poll."""
    columns = [
        Cast(name, models.TextField()) if name in JSON_FIELDS else F(name) for name in COMPARED
    ]
    rows = Offer.objects.filter(provider=provider).values_list("id", *columns).order_by()
    stored = {}
    upstream_at, region_at = KEY_AT
    for offer_id, *content in rows.iterator(chunk_size=BATCH_SIZE * 5):
        stored[content[upstream_at], content[region_at]] = (offer_id, tuple(content))
    return stored


def scorer(offers: Iterable[OfferIn]) -> Callable[[OfferIn], float | None]:
    """An offer's G-Score value (providers.gscore), None where it has none: one query for the
    spec figures of the GPUs in `offers`, none when there are none. Asked an offer at a
    time as its content is built, so that new offers' values are worked out while the database
    indexes the batch before (`_create`)."""
    gpus = set(map(attrgetter("gpu_id"), offers))  # those of offers not on sale too: no harm
    gpus.discard(None)
    figures = dict(
        GpuModel.objects.filter(pk__in=gpus)
        .annotate(tflops=Coalesce("bf16_tflops", "fp16_tflops"))
        .values_list("pk", "tflops")
        if gpus
        else ()
    )

    def worth(offer: OfferIn) -> float | None:
        if not (offer.available and offer.kind == Kind.GPU):
            return None
        return gscore.value(figures.get(offer.gpu_id), offer.usd_per_gpu_hour, offer.reliability)

    return worth


def refresh_gscore_reference() -> float | None:
    """Recompute the G-Score reference from the values of the offers on sale and keep it on
    every provider (two queries; no offer is written). Returns it."""
    if connection.vendor == "postgresql":
        # gscore.scale's nearest-rank percentile where the values are (the ceiling of
        # fraction × count, in the same float arithmetic), not 60,000 of them sent over.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT percentile_disc(%s) WITHIN GROUP (ORDER BY gscore_value) "
                f"FROM {Offer._meta.db_table} WHERE available AND gscore_value IS NOT NULL",
                [gscore.REFERENCE_PERCENTILE],
            )
            reference = cursor.fetchone()[0]
    else:
        on_sale = Offer.objects.filter(available=True, gscore_value__isnull=False)
        reference = gscore.scale(list(on_sale.values_list("gscore_value", flat=True)))
    Provider.objects.exclude(gscore_reference=reference).update(gscore_reference=reference)
    return reference


def _mark_gone(provider: Provider, ids: list[int]) -> None:
    """Offers missing from the poll: unavailable, unscored, last seen at the provider's
    previous poll (the last that listed them; its time is on the provider's row until this
    poll's transaction replaces it)."""
    previous = Subquery(Provider.objects.filter(pk=provider.pk).values("offers_seen_at"))
    last_seen = Greatest("last_seen", Coalesce(previous, "last_seen"))
    for start in range(0, len(ids), BATCH_SIZE):
        Offer.objects.filter(id__in=ids[start : start + BATCH_SIZE]).update(
            available=False, gscore_value=None, last_seen=last_seen
        )


def _dedupe(offers: list[OfferIn]) -> dict[tuple[str, str], OfferIn]:
    """Keyed by (upstream id, region); a provider listing one twice keeps the last."""
    return {(offer.upstream_id, offer.region): offer for offer in offers}


def _same(old, new) -> bool:
    if isinstance(old, Decimal) or isinstance(new, Decimal):
        return (old is None and new is None) or (
            old is not None and new is not None and Decimal(old) == Decimal(new)
        )
    return old == new


def _create(
    provider: Provider, new: list[OfferIn], worth: Callable[[OfferIn], float | None], now: datetime
) -> Referenced:
    """Insert new offers; returns what they point at. On PostgreSQL through COPY, a batch a
    write, each batch's contents (`_contents`) built and serialised (`copy_text`) while the
    database indexes the one before: bulk_create's per-field preparation (~0.1 ms an offer)
    made a 100,000-offer first poll take ~15 s, and building every content before the COPY
    kept the database waiting."""
    referenced = Referenced()
    if not new:
        return referenced
    if connection.vendor != "postgresql":
        contents = referenced.add(_contents(new, worth))
        offers = [
            Offer(provider=provider, first_seen=now, last_seen=now, **_fields(offer, content[-1]))
            for offer, content in zip(new, contents, strict=True)
        ]
        Offer.objects.bulk_create(offers, batch_size=BATCH_SIZE)
        return referenced
    batches = (referenced.add(_contents(batch, worth)) for batch in batched(new, COPY_BATCH))
    names = ["provider", "first_seen", "last_seen", *COMPARED]
    with connection.cursor() as cursor:  # the first three the same on every row: the head
        _copy(cursor, Offer._meta.db_table, names, batches, head=(provider.pk, now, now))
    return referenced


def _copy(
    cursor, table: str, names: list[str], batches: Iterable[Sequence[tuple]], head: tuple = ()
) -> None:
    """COPY each batch of rows into `table`'s columns of the Offer fields `names`, one write a
    batch; the values of the first fields, the same on every row, may be given once as
    `head`. The writes are queued and sent by psycopg's writer thread: written straight to the
    socket, each batch waited for the database to take in the one before (its buffers hold
    ~0.1 s of its work), so the next batch was built while the database sat idle."""
    fields = [Offer._meta.get_field(name) for name in names]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    texts = [_texts(field) for field in fields[len(head) :]]
    prefix = "".join(f"{_value_text(value)}\t" for value in head)
    sql = f"COPY {table} ({columns}) FROM STDIN"
    with cursor.cursor.copy(sql, writer=QueuedLibpqWriter(cursor.cursor)) as copy:
        for rows in batches:
            copy.write(copy_text(rows, texts, prefix))


# Rows serialised and sent at a time: the database indexes each batch while the next is built,
# and waits only for the first (5,000 made it wait ~70 ms a poll).
COPY_BATCH = 1000


def copy_text(rows: Sequence[tuple], texts: list[Callable], head: str = "") -> str:
    """`rows` in COPY's text format, a line each, each after `head`: tab-separated, NULL as
    \\N, backslashes and line breaks escaped. A column at a time, as its field's type says
    (`texts`, from `_texts`), then the lines joined: for 100,000 offers psycopg's
    `write_row`, value by value, took 0.88-1.05 s of Python, this 0.57-0.83 s."""
    if not rows:
        return ""
    values = zip(*rows, strict=True)
    columns = [_column_text(text, column) for text, column in zip(texts, values, strict=True)]
    lines = map("\t".join, zip(*columns, strict=True))
    return head + f"\n{head}".join(lines) + "\n"


def _column_text(text: Callable, values: tuple) -> Sequence[str]:
    """A column as its field's type writes it, or value by value when a value is not of that
    type (a string where a number was expected fails there, as it would in the database)."""
    try:
        return text(values)
    except (TypeError, KeyError, AttributeError):
        return list(map(_value_text, values))


def _texts(field: models.Field) -> Callable[[tuple], Sequence[str]]:
    """How a column of `field`'s values becomes COPY text."""
    if isinstance(field, models.ForeignKey):
        field = field.target_field
    if isinstance(field, models.BooleanField):
        return _booleans
    if isinstance(field, models.DateField):  # and DateTimeField
        return _dates
    if isinstance(field, models.IntegerField | models.FloatField | models.DecimalField):
        return _numbers
    return _strings  # text, and JSON already as text (`_json_text`)


def _strings(values: tuple) -> Sequence[str]:
    """As they are when none needs escaping (one search of the whole column)."""
    if _ESCAPED.search("".join(values)) is None:  # TypeError if one is None
        return values
    return list(map(_escaped, values))


def _numbers(values: tuple) -> list[str]:
    return [NULL if value is None else str(value) for value in values]


def _booleans(values: tuple) -> list[str]:
    return list(map(_BOOLEANS.__getitem__, values))


def _dates(values: tuple) -> list[str]:  # ISO 8601, with the offset when aware
    return [NULL if value is None else value.isoformat() for value in values]


def _value_text(value: Any) -> str:
    if value is None:
        return NULL
    if isinstance(value, bool):
        return _BOOLEANS[value]
    if isinstance(value, date):
        return value.isoformat()
    return _escaped(value if isinstance(value, str) else str(value))


def _escaped(text: str) -> str:
    if _ESCAPED.search(text) is None:
        return text
    return _ESCAPED.sub(lambda m: _ESCAPES[m.group()], text)


NULL = "\\N"
_BOOLEANS = {True: "t", False: "f", None: NULL}
_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_ESCAPED = re.compile(r"[\\\t\n\r]")


class Changed(NamedTuple):
    """A stored offer whose content changed: its id, the offer as polled, its new content
    (`_content`), and the time its price moved (None: only other fields did)."""

    id: int
    offer: OfferIn
    content: tuple
    price_moved: datetime | None


def _update(provider: Provider, changed: list[Changed], now: datetime) -> None:
    """Overwrite changed offers in bulk; first_seen is kept, last_price_change only moves
    for offers whose price moved. On PostgreSQL the new contents are copied into a temporary
    table and written by one UPDATE … FROM it: an INSERT … ON CONFLICT of model instances
    (bulk_create) spent ~3 ms an offer building instances and 50 placeholders each."""
    if not changed:
        return
    if connection.vendor != "postgresql" or len(changed) < STAGED_FROM:
        _update_instances(provider, changed, now)
        return
    names = ["id", *COMPARED, "last_seen", "last_price_change"]
    columns = [connection.ops.quote_name(Offer._meta.get_field(n).column) for n in names]
    table = Offer._meta.db_table
    written = [c for c, name in zip(columns, names, strict=True) if name not in UNCHANGED]
    assignments = ", ".join(f"{c} = changed.{c}" for c in written)
    moved = connection.ops.quote_name("last_price_change")
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE offer_changes ON COMMIT DROP AS "
            f"SELECT {', '.join(columns)} FROM {table} WITH NO DATA"
        )
        rows = [(each.id, *each.content, now, each.price_moved) for each in changed]
        _copy(cursor, "offer_changes", names, batched(rows, COPY_BATCH))
        cursor.execute(
            f"UPDATE {table} SET {assignments}, "
            f"{moved} = COALESCE(changed.{moved}, {table}.{moved}) "
            f"FROM offer_changes changed WHERE {table}.id = changed.id"
        )
        cursor.execute("DROP TABLE offer_changes")  # now: a test's transaction outlives this


# Fewer changed offers than this are written by one INSERT … ON CONFLICT (one statement
# instead of the temporary table's three; their preparation is no matter at this size).
STAGED_FROM = 500
# Columns an update leaves as they are: the key, and what is written apart.
UNCHANGED = {"id", "upstream_id", "region", "last_price_change"}


def _update_instances(provider: Provider, changed: list[Changed], now: datetime) -> None:
    """bulk_create's INSERT … ON CONFLICT DO UPDATE: a few offers, or no COPY (SQLite)."""
    update_fields = [f for f in CONTENT_FIELDS if f not in ("upstream_id", "region")]
    update_fields.append("last_seen")
    for price_moved, extra in ((True, ["last_price_change"]), (False, [])):
        group = [
            Offer(
                provider=provider,
                first_seen=now,
                last_seen=now,
                **_fields(each.offer, each.content[-1]),
                last_price_change=each.price_moved,
            )
            for each in changed
            if bool(each.price_moved) == price_moved
        ]
        Offer.objects.bulk_create(
            group,
            batch_size=BATCH_SIZE,
            update_conflicts=True,
            unique_fields=["provider", "upstream_id", "region"],
            update_fields=update_fields + extra,
        )


def poll_many(slug: str | None = None, progress=None) -> list[PollRun]:
    """Poll one provider, or every enabled one, in the foreground."""
    providers = [Provider.objects.get(slug=slug)] if slug else Provider.objects.enabled()
    runs = []
    for provider in providers:
        if progress:
            progress(f"Polling {provider.name}…")
        run = poll_provider(provider.slug)
        runs.append(run)
        if progress:
            progress(_describe(run))
    return runs


def _count(n: int, noun: str) -> str:
    """1 offer, 2 offers, 0 calls."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _describe(run: PollRun) -> str:
    if run.succeeded:
        return (
            f"  {run.outcome}: {_count(run.offers_seen, 'offer')} ({run.offers_added} new, "
            f"{run.offers_changed} changed, {run.offers_gone} gone, "
            f"{run.items_skipped} skipped) in {_count(run.http_calls, 'call')}"
        )
    return f"  {run.outcome}: " + " ".join(filter(None, [run.error_class, run.error_message]))

"""Broker keys, their monthly budgets and one usage record per request (what each offer was
seen to do is rolled up from these into providers.Observation: broker/usage.py)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import date, datetime
from decimal import Decimal

from django.db import connection, models
from django.db.models import Q
from django.utils import timezone

from providers.models import Offer

KEY_PREFIX = "gpb_"
ZERO = Decimal(0)


class Strategy(models.TextChoices):
    PRICE = "price", "Cheapest expected cost"
    LATENCY = "latency", "Lowest observed latency"
    THROUGHPUT = "throughput", "Highest observed throughput"
    ROUND_ROBIN = "round-robin", "Round-robin"
    WEIGHTED = "weighted", "Weighted random by success rate"


def hash_key(raw: str) -> str:
    """SHA-256 of the key: a 256-bit random token needs no slow hash, and a lookup is one
    indexed equality."""
    return hashlib.sha256(raw.encode()).hexdigest()


def month_start(now: datetime | None = None) -> date:
    return (now or timezone.now()).date().replace(day=1)


def relaxed_commit() -> None:
    """The current transaction's commit does not wait for the disk (Postgres'
    synchronous_commit off): a crash may lose its last few hundred milliseconds of writes,
    never corrupt them, and a request's bookkeeping stops costing a disk flush each."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


class ApiKeyQuerySet(models.QuerySet):
    def active(self) -> ApiKeyQuerySet:
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        )


class ApiKey(models.Model):
    """A key a user sends as `Authorization: Bearer gpb_…`. Only its hash is stored."""

    name = models.CharField(max_length=100)
    hashed = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=12, editable=False, help_text="To recognise a key.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    monthly_budget_usd = models.DecimalField(
        max_digits=12, decimal_places=6, null=True, blank=True, help_text="Empty: no limit."
    )
    # Spend of `spend_month`; a request in a later month starts it again from zero.
    spend_month = models.DateField(null=True, blank=True, editable=False)
    spent_usd = models.DecimalField(max_digits=16, decimal_places=9, default=ZERO, editable=False)
    # Held for requests in flight (their estimated cost), released when each is charged.
    reserved_usd = models.DecimalField(
        max_digits=16, decimal_places=9, default=ZERO, editable=False
    )
    in_flight = models.IntegerField(default=0, editable=False)
    allowed_models = models.JSONField(
        default=list, blank=True, help_text="Canonical model ids; empty: every model."
    )
    allowed_providers = models.JSONField(
        default=list, blank=True, help_text="Provider slugs; empty: every provider."
    )
    strategy = models.CharField(
        max_length=20, choices=Strategy.choices, default=Strategy.PRICE, help_text="Default."
    )

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        verbose_name = "broker API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def issue(cls, name: str, budget_usd: Decimal | None = None, **fields) -> tuple[ApiKey, str]:
        """A new key: the row, and the raw key, which is shown once and never stored."""
        raw = KEY_PREFIX + secrets.token_urlsafe(32)
        key = cls.objects.create(
            name=name,
            hashed=hash_key(raw),
            prefix=raw[:12],
            monthly_budget_usd=budget_usd,
            **fields,
        )
        return key, raw

    @classmethod
    def find(cls, raw: str) -> ApiKey | None:
        """The key for a bearer token, whatever its state (the caller says why it fails)."""
        if not raw.startswith(KEY_PREFIX):
            return None
        return cls.objects.filter(hashed=hash_key(raw)).first()

    @property
    def usable(self) -> bool:
        return self.revoked_at is None and not (
            self.expires_at and self.expires_at <= timezone.now()
        )

    def revoke(self) -> None:
        self.revoked_at = timezone.now()
        ApiKey.objects.filter(pk=self.pk).update(revoked_at=self.revoked_at)

    def spent_this_month(self) -> Decimal:
        return self.spent_usd if self.spend_month == month_start() else ZERO

    def budget_left(self) -> Decimal | None:
        if self.monthly_budget_usd is None:
            return None
        return max(ZERO, self.monthly_budget_usd - self.spent_this_month())

    def over_budget(self) -> bool:
        left = self.budget_left()
        return left is not None and left <= 0

    def allows_model(self, canonical: str) -> bool:
        return not self.allowed_models or canonical in {m.lower() for m in self.allowed_models}

    def allows_provider(self, slug: str) -> bool:
        return not self.allowed_providers or slug in self.allowed_providers

    def reserve(self, estimate: Decimal, *, lease: bool = False) -> bool:
        """Hold `estimate` of the budget for a request about to go out, so concurrent requests
        cannot overspend by more than one request: a request goes when its estimate fits
        beside the spend and what requests in flight hold, or when none is in flight and
        something is left (that one may overspend, by itself alone). A `lease` (a process's
        share for many requests, broker.leases) only when it fits: it has no such allowance.

        One statement, one round trip (it is on every request's path): a new month's reset,
        the check against the budget as stored now, the hold, and the spend returned to
        refresh this key's view of it (the instance may be one a process remembers)."""
        if self.monthly_budget_usd is None:
            return True
        month = month_start()
        with connection.cursor() as cursor:
            params = [month, month, estimate, self.pk, month, estimate] + ([] if lease else [month])
            cursor.execute(reserve_sql(lease=lease), params)
            row = cursor.fetchone()
        if row is None:
            return False
        self.spend_month = month
        self.spent_usd = self._meta.get_field("spent_usd").to_python(row[0])
        return True

    def settle(
        self, estimate: Decimal, cost: Decimal, *, reserved: bool, requests: int = 1
    ) -> None:
        """Add the cost of `requests` requests and release what they held (`estimate` in
        all), in one UPDATE (no read-modify-write in Python); the month turning meanwhile
        starts the spend again. Raw SQL, like `reserve`: the ORM took longer to build this
        statement than the database to run it."""
        held = reserved and self.monthly_budget_usd is not None
        month = month_start()
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {connection.ops.quote_name(ApiKey._meta.db_table)}"
                f" SET spent_usd = {_SPENT} + %s, spend_month = %s,"
                " in_flight = in_flight - %s, reserved_usd = reserved_usd - %s WHERE id = %s",
                [month, cost, month, requests if held else 0, estimate if held else ZERO, self.pk],
            )


# The spend this month, as a column expression: a month with no spend yet starts from zero.
_SPENT = "(CASE WHEN spend_month = %s THEN spent_usd ELSE 0 END)"


def reserve_sql(*, lease: bool = False) -> str:
    """ApiKey.reserve's statement. On Postgres its commit does not wait for the disk flush
    (synchronous_commit off for this statement's transaction alone, set inside it so it
    stays one round trip): a hold lost in a crash frees budget, it never overspends."""
    relaxed = ""
    if connection.vendor == "postgresql":
        relaxed = " AND set_config('synchronous_commit', 'off', true) IS NOT NULL"
    return (
        f"UPDATE {connection.ops.quote_name(ApiKey._meta.db_table)}"
        f" SET spent_usd = {_SPENT}, spend_month = %s, in_flight = in_flight + 1,"
        " reserved_usd = reserved_usd + %s"
        " WHERE id = %s AND monthly_budget_usd IS NOT NULL"
        f" AND ({_SPENT} <= monthly_budget_usd - %s - reserved_usd"
        + ("" if lease else f" OR (in_flight = 0 AND {_SPENT} < monthly_budget_usd)")
        + f"){relaxed}"
        " RETURNING spent_usd"
    )


class Outcome(models.TextChoices):
    OK = "ok"
    REFUSED = "refused"  # by the broker: over budget, model not allowed, unknown model…
    UPSTREAM_ERROR = "upstream_error"  # a provider's 4xx, passed to the client
    NO_PROVIDER = "no_provider"  # every candidate skipped or failed
    STREAM_ERROR = "stream_error"  # failed after the first byte
    CLIENT_GONE = "client_gone"  # the client hung up before the end


class CostSource(models.TextChoices):
    PROVIDER = "provider", "The provider's usage.estimated_cost"
    PRICES = "prices", "Tokens × stored price"
    UNKNOWN = "unknown", "No usage or no price"


class Usage(models.Model):
    """One request to the broker: who, what, who served it, what it cost and how it went."""

    key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="usage")
    at = models.DateTimeField(default=timezone.now, db_index=True)
    endpoint = models.CharField(max_length=40)
    model = models.CharField(max_length=300)
    provider = models.CharField(max_length=50, blank=True, default="")
    offer = models.ForeignKey(Offer, null=True, blank=True, on_delete=models.SET_NULL)
    upstream_model = models.CharField(max_length=300, blank=True, default="")
    stream = models.BooleanField(default=False)
    attempts = models.JSONField(default=list, help_text="[{provider, offer, error}] in order.")
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    cost_usd = models.DecimalField(max_digits=16, decimal_places=9, null=True, blank=True)
    cost_source = models.CharField(max_length=10, choices=CostSource.choices)
    ttfb_ms = models.FloatField(null=True, blank=True)
    total_ms = models.FloatField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    status_code = models.PositiveSmallIntegerField()
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-at"]
        verbose_name_plural = "usage"
        indexes = [models.Index(fields=["key", "-at"], name="usage_key_at")]

    def __str__(self) -> str:
        return f"{self.key_id} {self.model} via {self.provider or '-'}: {self.outcome}"

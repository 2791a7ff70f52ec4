from __future__ import annotations

import time
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING, NamedTuple

from django.conf import settings
from django.contrib.postgres.indexes import OpClass
from django.core.validators import slug_re
from django.db import connection, models, router, transaction
from django.db.models import Case, Count, F, Max, Min, Q, QuerySet, Value, When
from django.db.models.functions import Coalesce, Concat, Upper
from django.utils import timezone
from django.utils.module_loading import import_string
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from providers import crypto, gscore
from providers.indexes import PostgresGinIndex, PostgresIndex
from resilience import secrets
from resilience.errors import KEY_PROBLEMS, OK, ProviderError, UndecryptableKey, outcome_of
from resilience.policy import ProviderPolicy, call_policy

if TYPE_CHECKING:
    from providers.adapters.base import ProviderAdapter


class ConnectionResult(NamedTuple):
    status: str  # ok / no key / invalid key / expired / rate limited / unreachable / error
    detail: str


class Kind(models.TextChoices):
    LLM = "llm-inference", "LLM inference"
    GPU = "gpu-compute", "GPU compute"


class ReferencedQuerySet(models.QuerySet):
    """Rows that offers point at: providers, GPU models, LLM models. The offer table holds no
    foreign-key constraints on them (Offer's fields say why); a delete locks the rows first, as
    such a constraint's check would have, before Django collects what points at them. A poll
    writing offers that point at one either commits first, and its offers are deleted or
    unlinked with the rest, or waits and then finds it gone (providers.pipeline.lock_referenced)."""

    def delete(self) -> tuple[int, dict[str, int]]:
        with transaction.atomic(using=self.db, savepoint=False):
            self.lock()
            return super().delete()

    def lock(self) -> None:
        """Lock these rows until the transaction ends (FOR UPDATE, in key order)."""
        list(self.order_by("pk").select_for_update().values_list("pk", flat=True))

    delete.alters_data = True
    delete.queryset_only = True


class ReferencedModel(models.Model):
    """A model whose rows offers point at: deleted under a lock (ReferencedQuerySet)."""

    objects = ReferencedQuerySet.as_manager()

    class Meta:
        abstract = True

    def delete(self, using=None, keep_parents=False):
        using = using or router.db_for_write(type(self), instance=self)
        with transaction.atomic(using=using, savepoint=False):
            ReferencedQuerySet(type(self), using=using).filter(pk=self.pk).lock()
            return super().delete(using=using, keep_parents=keep_parents)

    delete.alters_data = True


class ProviderQuerySet(ReferencedQuerySet):
    def enabled(self) -> ProviderQuerySet:
        """Enabled in the database and not switched off by <PREFIX>_ENABLED (a setting made
        for each provider in the registry)."""
        switched_off = [
            slug
            for slug, entry in settings.PROVIDER_REGISTRY.items()
            if not getattr(settings, f"{entry['env_prefix']}_ENABLED")
        ]
        return self.filter(enabled=True).exclude(slug__in=switched_off)

    def by_slug(self, slug: str) -> ProviderQuerySet:
        """A slug from a URL or query string: text that cannot be a slug (a NUL byte, which
        Postgres refuses with an error) matches nothing instead of reaching the database."""
        return self.filter(slug=slug) if slug_re.match(slug) else self.none()


class Provider(ReferencedModel):
    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    adapter_path = models.CharField(max_length=200)
    env_prefix = models.CharField(max_length=40)
    enabled = models.BooleanField(default=True)
    base_url = models.URLField(
        help_text="Default origin from the registry; <PREFIX>_BASE_URL overrides it."
    )
    key_required = models.BooleanField(default=False)
    poll_interval = models.PositiveIntegerField(
        default=300, help_text="Seconds between price polls."
    )
    regions = models.JSONField(default=list, blank=True, help_text="Data-residency regions.")
    docs_url = models.URLField(blank=True)
    polling_since = models.DateTimeField(null=True, blank=True, editable=False)
    # The PollRun holding the poll lock: only it releases the lock.
    poll_owner = models.BigIntegerField(null=True, blank=True, editable=False)
    last_polled_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_success_at = models.DateTimeField(null=True, blank=True, editable=False)
    # When the provider's latest ingest saw its offers: each offer it still marks available was
    # in that poll. Kept here, not rewritten on every such offer (see Offer.seen_at).
    offers_seen_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The G-Score scale: the value that scores 100 (providers.gscore), the same on every
    # provider's row. Kept with the providers, which every page that shows offers loads
    # anyway, so a score costs no query and a moved scale rewrites no offer.
    gscore_reference = models.FloatField(null=True, blank=True, editable=False)
    # What the latest health check that could tell found wrong with the key (a code of
    # resilience.errors.KEY_PROBLEMS; "" when the key worked), and the key it was about (its
    # fingerprint), so a key put in since is not blamed for the old one. The broker skips a
    # provider whose key in effect was found wanting (`key_finding`).
    key_problem = models.CharField(max_length=40, blank=True, default="", editable=False)
    key_problem_fingerprint = models.CharField(max_length=8, blank=True, default="", editable=False)
    key_checked_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ProviderQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def setting(self, name: str):
        return getattr(settings, f"{self.env_prefix}_{name}")

    def policy(self, *, base_url: str | None = None) -> ProviderPolicy:
        """What the resilience layer needs to call this provider: its <PREFIX>_ knobs.
        `base_url` for a second origin of the same provider (a Hub, an RPC node)."""
        return ProviderPolicy(
            slug=self.slug,
            base_url=base_url or self.setting("BASE_URL"),
            timeout=self.setting("TIMEOUT"),
            rate_limit=self.setting("RATE_LIMIT"),
            rate_limit_burst=getattr(settings, f"{self.env_prefix}_RATE_LIMIT_BURST", None),
            env_prefix=self.env_prefix,
        )

    @property
    def env_enabled(self) -> bool:
        return self.setting("ENABLED")

    @property
    def is_enabled(self) -> bool:
        return self.enabled and self.env_enabled

    @property
    def disabled_by(self) -> str:
        """Where a disabled provider was switched off ("" when it is enabled)."""
        if not self.enabled:
            return "in admin"
        return "" if self.env_enabled else f"by {self.env_prefix}_ENABLED"

    @property
    def lists_repo_ids(self) -> bool:
        """Whether this provider names models by their Hugging Face repo id (the registry's
        `"model_names": "hf-repo-ids"`); others' names need an alias to be identified."""
        entry = settings.PROVIDER_REGISTRY.get(self.slug, {})
        return entry.get("model_names") == "hf-repo-ids"

    @property
    def effective_base_url(self) -> str:
        return self.setting("BASE_URL")

    @cached_property
    def _credential(self) -> Credential | None:
        # The reverse one-to-one: no query when it was select_related (the broker does).
        try:
            return self.credential
        except Credential.DoesNotExist:
            return None

    def api_key(self) -> str:
        """The key in effect: an admin-managed key wins over <PREFIX>_API_KEY."""
        if self._credential:
            try:
                return secrets.remember(self._credential.key())
            except crypto.InvalidToken:
                raise UndecryptableKey(
                    f"{self.slug}: key cannot be decrypted: check GPUBROKER_ENCRYPTION_KEYS"
                ) from None
        return secrets.remember(self.setting("API_KEY").strip())

    @property
    def key_source(self) -> str:
        if self._credential:
            return "admin"
        return "environment" if self.setting("API_KEY") else "none"

    @property
    def key_fingerprint(self) -> str:
        """The key's last characters, from the stored fingerprint: nothing is decrypted."""
        if self._credential:
            return self._credential.fingerprint
        return secrets.fingerprint(self.setting("API_KEY").strip())

    def note_key_check(self, error: BaseException | None) -> None:
        """Keep what a health check learnt about the key: it worked (no error), or it was
        missing, rejected or unreadable. Any other failure (a timeout, a 5xx) says nothing
        about the key and leaves the finding as it was."""
        code = outcome_of(error)
        if code != OK and code not in KEY_PROBLEMS:
            return
        self.key_problem = "" if code == OK else code
        self.key_problem_fingerprint = self.key_fingerprint if self.key_problem else ""
        self.key_checked_at = timezone.now()
        self.save(update_fields=["key_problem", "key_problem_fingerprint", "key_checked_at"])

    @property
    def key_finding(self) -> str:
        """What the latest health check found wrong with the key in effect ("" when
        nothing, or when the key has changed since)."""
        if not self.key_problem or self.key_problem_fingerprint != self.key_fingerprint:
            return ""
        return KEY_PROBLEMS.get(self.key_problem, self.key_problem)

    def test_connection(self) -> ConnectionResult:
        """Call the provider's authenticate() and say what happened in ops' words. It answers
        the admin's button inside the request, so it is one attempt (no retries) that ends
        within PROVIDER_TEST_CONNECTION_SECONDS: a hanging provider costs seconds, not
        attempts × timeout."""
        adapter = self.adapter()
        deadline = time.monotonic() + settings.PROVIDER_TEST_CONNECTION_SECONDS
        try:
            # A test is a test: no cached answer.
            with call_policy(fresh=True, max_retries=0, deadline=deadline):
                result = adapter.authenticate()
        except ProviderError as exc:
            return ConnectionResult(exc.label, str(exc))
        finally:
            adapter.close()
        return ConnectionResult("ok", result.detail)

    def adapter(self) -> ProviderAdapter:
        return self.adapter_class()(self)

    def adapter_class(self) -> type[ProviderAdapter]:
        return import_string(self.adapter_path)

    @property
    def polls_network(self) -> bool:
        """Whether a poll calls the provider (not so for a shipped price sheet)."""
        return import_string(self.adapter_path).polls_network

    def is_stale(self, now=None) -> bool:
        if not self.last_success_at:
            return True
        now = now or timezone.now()
        return now - self.last_success_at > timedelta(seconds=2 * self.poll_interval)

    def claim_poll(self, run: PollRun | None = None) -> bool:
        """Take the poll lock for `run` (a conditional UPDATE); False if a poll is running.

        The lock is free when nobody holds it; it is taken over when its holder has held it
        longer than PROVIDER_POLL_LOCK_SECONDS, or when its holder was an earlier delivery of
        the same Celery task (redelivered because its worker died mid-poll): that holder's
        run is marked abandoned."""
        now = timezone.now()
        owner = run.pk if run else None
        mine = Provider.objects.filter(pk=self.pk)
        if mine.filter(polling_since__isnull=True).update(polling_since=now, poll_owner=owner):
            return True
        expired = now - timedelta(seconds=settings.PROVIDER_POLL_LOCK_SECONDS)
        dead = Q(polling_since__lt=expired)
        if run and run.task_id:
            earlier = PollRun.objects.filter(task_id=run.task_id, outcome=PollRun.Outcome.RUNNING)
            dead |= Q(poll_owner__in=earlier.exclude(pk=owner).values("pk"))
            dead |= Q(poll_owner=owner)  # a queued run's own task, delivered again
        previous = mine.values_list("poll_owner", flat=True).first()
        if not mine.filter(dead).update(polling_since=now, poll_owner=owner):
            return False
        if previous and previous != owner:
            PollRun.objects.filter(pk=previous).abandon()
        return True

    def release_poll(self, run: PollRun) -> None:
        """Note when the provider was polled, and release the lock if `run` still holds it
        (one whose lock was taken over leaves the new holder's alone)."""
        now = timezone.now()
        fields = {"last_polled_at": now}
        if run.succeeded:
            fields["last_success_at"] = now
        held = Q(poll_owner=run.pk) if run.pk else Q(poll_owner__isnull=True)
        Provider.objects.filter(pk=self.pk).update(
            **fields,
            polling_since=Case(When(held, then=None), default=F("polling_since")),
            poll_owner=Case(When(held, then=None), default=F("poll_owner")),
        )
        for name, value in fields.items():
            setattr(self, name, value)

    def sync_schedule(self):
        """Create or update this provider's beat entry to match poll_interval and enabled."""
        interval, _ = IntervalSchedule.objects.get_or_create(
            every=self.poll_interval, period=IntervalSchedule.SECONDS
        )
        task, created = PeriodicTask.objects.get_or_create(
            name=f"poll {self.slug}",
            defaults={
                "task": "providers.tasks.poll_provider",
                "interval": interval,
                "args": f'["{self.slug}"]',
                "expire_seconds": self.poll_interval,
                "enabled": self.enabled,
            },
        )
        if not created and (task.interval_id, task.enabled) != (interval.pk, self.enabled):
            task.interval = interval
            task.expire_seconds = self.poll_interval
            task.enabled = self.enabled
            task.save(update_fields=["interval", "expire_seconds", "enabled"])
        return task


class Credential(models.Model):
    """A provider API key, encrypted at rest. Only the fingerprint is ever shown."""

    provider = models.OneToOneField(Provider, on_delete=models.CASCADE)
    encrypted_key = models.TextField(editable=False)
    fingerprint = models.CharField(max_length=8, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.provider} key {self.fingerprint}"

    def set_key(self, raw: str) -> None:
        raw = raw.strip()
        secrets.remember(raw)
        self.encrypted_key = crypto.encrypt(raw)
        self.fingerprint = secrets.fingerprint(raw)

    def key(self) -> str:
        return crypto.decrypt(self.encrypted_key)

    @property
    def readable(self) -> bool:
        """Decryptable with the current keys (checked without decrypting)."""
        return crypto.readable(self.encrypted_key)

    def rotate(self) -> None:
        self.encrypted_key = crypto.rotate(self.encrypted_key)


class GpuModel(ReferencedModel):
    """One GPU in the shared vocabulary, with spec-sheet figures and their source."""

    canonical = models.CharField(max_length=60, unique=True)
    vendor = models.CharField(max_length=20)
    architecture = models.CharField(max_length=40, blank=True)
    memory_gb = models.FloatField(null=True, blank=True)
    bf16_tflops = models.FloatField(null=True, blank=True)
    fp16_tflops = models.FloatField(null=True, blank=True)
    memory_bandwidth_gbps = models.FloatField(null=True, blank=True)
    source = models.URLField(blank=True)
    aliases = models.JSONField(
        default=list,
        blank=True,
        help_text="Provider spellings of this GPU. Ones added here survive catalog reloads.",
    )
    note = models.TextField(blank=True, default="", help_text="Where each figure came from.")

    class Meta:
        ordering = ["canonical"]

    def __str__(self) -> str:
        return self.canonical


# What each code in Offer.price_flags tells the user.
PRICE_FLAGS = {
    "unusual-low": "Unusual price: far below what other providers ask for the same; check the "
    "provider before relying on it.",
    "unusual-high": "Unusual price: far above what other providers ask for the same; check the "
    "provider before relying on it.",
    "bid-above-on-demand": "The minimum bid is above the on-demand price: this interruptible "
    "listing is no discount.",
}


class Identity(models.TextChoices):
    REPO_ID = "repo-id", "Hugging Face repo id, as the provider lists it"
    ALIAS = "alias", "Provider's own name, mapped by a sourced alias"
    UNKNOWN = "unknown", "Provider's own name, not identified"


class LlmModel(ReferencedModel):
    """One model, however many providers serve it. `canonical` is the lowercase Hugging Face
    repo id; a provider's name that no alias identifies is its own model, `<slug>:<name>`
    (a colon is never in a repo id, so it cannot merge with a real one by accident)."""

    canonical = models.CharField(max_length=300, unique=True)
    display_name = models.CharField(max_length=300, help_text="With the author's casing.")
    identity = models.CharField(max_length=10, choices=Identity.choices)
    task = models.CharField(max_length=40, blank=True, default="")
    context_length = models.PositiveIntegerField(
        null=True, blank=True, help_text="The longest context any provider reports for it."
    )
    first_seen = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["canonical"]
        verbose_name = "LLM model"

    def __str__(self) -> str:
        return self.display_name

    @property
    def known(self) -> bool:
        return self.identity != Identity.UNKNOWN


class ModelAlias(models.Model):
    """A provider's own name for a model, and the page that says which weights it serves.
    Rows from providers/model_aliases.json follow the file on every load; rows added in the
    admin are kept."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="aliases")
    name = models.CharField(max_length=300, help_text="Exactly as the provider's API lists it.")
    model = models.CharField(
        max_length=300, help_text="The Hugging Face repo id it serves, with the author's casing."
    )
    source = models.URLField(help_text="The page that says which weights this name serves.")
    note = models.TextField(blank=True, default="")
    from_file = models.BooleanField(default=False, editable=False)

    class Meta:
        ordering = ["provider", "name"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "name"], name="modelalias_unique_name")
        ]
        verbose_name_plural = "model aliases"

    def __str__(self) -> str:
        return f"{self.provider_id}: {self.name} → {self.model}"


class PriceSource(models.TextChoices):
    API = "api", "Provider API"
    SHEET = "sheet", "Price sheet"


# An offer's price in its kind's unit (per 1M input tokens, per image, per GPU-hour; for a
# market range its median where the provider states one, else its low end), for sorting and
# the marketplace's price ceiling. Offer.Meta.indexes key three indexes on it.
PRICE_COLUMNS = ("usd_per_1m_input", "usd_per_image", "usd_per_gpu_hour", "usd_per_gpu_hour_min")
UNIT_PRICE = Coalesce(*PRICE_COLUMNS)


# The marketplace's five facet values of an offer in one column (kind, provider, region, task,
# GPU model, joined by the ASCII unit separator, which no provider's names contain). Grouping
# by one column instead of five halves the time of the facet counts under a limit, and
# "offers in these facet combinations" is one indexed lookup (marketplace.search).
FACET_KEY_SEPARATOR = "\x1f"
FACET_KEY = Concat(
    "kind",
    *(
        part
        for column in ("provider_id", "region", "task", "gpu_name")
        for part in (models.Value(FACET_KEY_SEPARATOR), column)
    ),
    output_field=models.CharField(),
)


# What the marketplace filters a page of offers on (marketplace.search), carried by each sort
# order's index so that the page is found by an index-only scan in that order which skips the
# entries that do not match, without reading the wide offer rows (the page's 24 are read after),
# and the facet counts under a limit group the index entries in the limit's range.
COVERED = ("facet_key", "vram_gb", "context_length", *PRICE_COLUMNS)


def sort_index(name: str, *keys: str | F | models.OrderBy) -> PostgresIndex:
    """A sort order's index over the available offers, covering what the page filters on."""
    return PostgresIndex(*keys, name=name, include=COVERED, condition=Q(available=True))


def keyed_index(name: str, *keys: str | F | models.OrderBy) -> PostgresIndex:
    """A sort order's index per facet key over the available offers, covering what the page
    filters on (marketplace.search.merged_ids)."""
    return PostgresIndex(
        "facet_key", *keys, name=name, include=COVERED[1:], condition=Q(available=True)
    )


class OfferQuerySet(models.QuerySet):
    def available(self) -> OfferQuerySet:
        return self.filter(available=True)

    def for_provider(self, provider: Provider) -> OfferQuerySet:
        return self.filter(provider=provider)

    def unmatched_gpus(self) -> QuerySet:
        """Each GPU spelling on sale that the catalog does not know, per provider, with how
        many offers carry it: the next gap in the vocabulary, most common first."""
        return (
            self.filter(kind=Kind.GPU, gpu__isnull=True, available=True)
            .values("provider__name", "gpu_name")
            .annotate(offers=Count("*"))
            .order_by("-offers", "provider__name", "gpu_name")
        )

    def flagged(self) -> OfferQuerySet:
        """Offers on sale whose price carries a warning (PRICE_FLAGS)."""
        return self.available().exclude(price_flags=[]).select_related("provider")


class Offer(models.Model):
    """One sellable thing (a model endpoint or a GPU instance) in normalised units.

    Every price is nullable: unknown is unknown, never 0.
    """

    # Not indexed alone: the unique constraint's index leads with the provider.
    # No foreign-key constraint on this and the GPU and LLM model: checked a row at a time,
    # the three cost ~1.1 s of a 100,000-offer poll's ~7 s (docs/performance.md). A poll
    # checks and locks the rows its offers point at once each instead
    # (providers.pipeline.lock_referenced), and deleting one locks it first
    # (ReferencedQuerySet), so the two cannot interleave; Django carries out on_delete.
    provider = models.ForeignKey(
        Provider,
        on_delete=models.CASCADE,
        related_name="offers",
        db_index=False,
        db_constraint=False,
    )
    upstream_id = models.CharField(max_length=300, help_text="Exact id for calls.")
    canonical_id = models.CharField(max_length=300, help_text="Lowercase.")
    region = models.CharField(max_length=40, blank=True, default="")
    name = models.CharField(max_length=300)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    task = models.CharField(max_length=40, blank=True, default="")
    task_tag = models.CharField(
        max_length=60, blank=True, default="", help_text="The provider's own task tag."
    )
    # Indexed where set only (Meta.indexes): a GPU offer has no model.
    llm_model = models.ForeignKey(
        LlmModel,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="offers",
        db_index=False,
        db_constraint=False,  # see provider
    )
    serving_provider = models.CharField(max_length=60, blank=True, default="")
    description = models.TextField(blank=True, default="")
    context_length = models.PositiveIntegerField(null=True, blank=True)
    country = models.CharField(max_length=2, blank=True, default="")
    compliance_tags = models.JSONField(default=list, blank=True)

    usd_per_1m_input = models.DecimalField(max_digits=14, decimal_places=6, null=True)
    usd_per_1m_output = models.DecimalField(max_digits=14, decimal_places=6, null=True)
    # A prompt-cache hit, where the provider publishes its price (Groq's sheet, DeepInfra's
    # `rate_per_input_token_cached`): input tokens read from cache, per 1M.
    usd_per_1m_cached_input = models.DecimalField(max_digits=14, decimal_places=6, null=True)
    usd_per_image = models.DecimalField(max_digits=14, decimal_places=6, null=True)
    usd_per_gpu_hour = models.DecimalField(max_digits=14, decimal_places=6, null=True)
    usd_per_gpu_hour_min = models.DecimalField(max_digits=14, decimal_places=6, null=True)
    usd_per_gpu_hour_max = models.DecimalField(max_digits=14, decimal_places=6, null=True)
    usd_per_instance_hour = models.DecimalField(max_digits=14, decimal_places=6, null=True)
    native_price = models.CharField(
        max_length=120, blank=True, default="", help_text="Price in a unit we do not convert."
    )
    price_source = models.CharField(max_length=10, choices=PriceSource.choices, default="api")
    price_source_url = models.URLField(blank=True, default="")
    price_source_date = models.DateField(null=True, blank=True)
    price_note = models.CharField(max_length=300, blank=True, default="")
    # Warnings about the price that a user should see before acting on it (PRICE_FLAGS).
    price_flags = models.JSONField(default=list, blank=True)
    # A model the provider retires: when (past or scheduled), and its named successor.
    deprecated_at = models.DateTimeField(null=True, blank=True)
    replaced_by = models.CharField(max_length=300, blank=True, default="")

    throughput_tps = models.FloatField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)

    # Indexed where set only (Meta.indexes): an LLM offer has no GPU.
    gpu = models.ForeignKey(
        GpuModel,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_index=False,
        db_constraint=False,  # see provider
    )
    gpu_name = models.CharField(max_length=80, blank=True, default="")
    gpu_count = models.PositiveIntegerField(null=True, blank=True)
    # The spec-sheet size of the GPU it normalised to (80 for an H100), so "at least 80 GB"
    # finds H100s; what the provider measured (79.6 usable) is kept beside it when it differs.
    vram_gb = models.FloatField(null=True, blank=True)
    vram_reported_gb = models.FloatField(null=True, blank=True)
    vcpus = models.FloatField(null=True, blank=True)
    ram_gb = models.FloatField(null=True, blank=True)
    disk_gb = models.FloatField(null=True, blank=True)
    reliability = models.FloatField(null=True, blank=True)
    interruptible = models.BooleanField(null=True, blank=True)
    verified = models.BooleanField(
        null=True, blank=True, help_text="Host verified by the provider."
    )
    cuda_version = models.FloatField(
        "CUDA version", null=True, blank=True, help_text="Newest CUDA the host's driver runs."
    )
    availability_count = models.PositiveIntegerField(null=True, blank=True)
    benchmark_score = models.FloatField(null=True, blank=True)
    capabilities = models.JSONField(
        default=list, blank=True, help_text="As the provider reports them: tools, input:image…"
    )
    # What the G-Score scores (providers.gscore.value): tflops / USD per GPU-hour × penalty.
    # Empty when unknown or not on sale; the 0–100 score is `gscore`, scaled when read.
    gscore_value = models.FloatField("G-Score value", null=True, blank=True)

    available = models.BooleanField(default=True)
    first_seen = models.DateTimeField()
    # When this row was last written as seen; an offer still available was seen by its
    # provider's later polls too: `seen_at` says when a poll last listed it.
    last_seen = models.DateTimeField()
    last_price_change = models.DateTimeField(null=True, blank=True)
    facet_key = models.GeneratedField(
        expression=FACET_KEY, output_field=models.CharField(max_length=300), db_persist=True
    )

    objects = OfferQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "upstream_id", "region"], name="offer_unique_per_region"
            )
        ]
        # The marketplace's, at 100,000 offers and more (marketplace.search). Each costs every
        # ingest time, so an index no query reads is not kept.
        indexes = [
            # Price order, the default. It also serves "show unavailable offers", so it covers
            # every offer.
            PostgresIndex(
                UNIT_PRICE, "id", name="offer_unit_price", include=[*COVERED, "available"]
            ),
            # Each key as the page orders by it (unknown last), or the index cannot serve it.
            sort_index("offer_newest", F("first_seen").desc(nulls_last=True), F("id").desc()),
            sort_index("offer_context", F("context_length").desc(nulls_last=True), "id"),
            sort_index("offer_throughput", F("throughput_tps").desc(nulls_last=True), "id"),
            sort_index("offer_gscore", F("gscore_value").desc(nulls_last=True), "id"),
            # No index on vram_gb: a VRAM minimum is decided per facet combination from the
            # roll-up, and the offers of mixed combinations are found through offer_facet_key
            # (which carries vram_gb); `offer_vram` was read by no request of the marketplace or
            # the API at 100,000 offers (pg_stat_user_indexes), and cost every ingest.
            # The facet counts under a price ceiling alone, from an index a quarter the width of
            # the sort orders' (without it the planner chose a scan of the table once polls had
            # bloated those).
            PostgresIndex(
                UNIT_PRICE,
                name="offer_price_facets",
                include=["facet_key", *PRICE_COLUMNS],
                condition=Q(available=True),
            ),
            # A narrow choice's offers, in price order within each facet combination.
            PostgresIndex(
                "facet_key",
                UNIT_PRICE,
                "id",
                name="offer_facet_key",
                include=["vram_gb", "context_length", *PRICE_COLUMNS, "available"],
            ),
            # A page of a few facet keys in another order than price, merged from each key's
            # first offers (marketplace.search.merged_ids): one index range per key instead
            # of walking the whole order past every other key's offers.
            keyed_index("offer_key_newest", F("first_seen").desc(nulls_last=True), F("id").desc()),
            *(
                keyed_index(f"offer_key_{name}", F(column).desc(nulls_last=True), "id")
                for name, column in (
                    ("context", "context_length"),
                    ("throughput", "throughput_tps"),
                    ("gscore", "gscore_value"),
                )
            ),
            # Search: icontains is UPPER(name) LIKE UPPER('%q%'), so trigrams of UPPER(name).
            PostgresGinIndex(OpClass(Upper("name"), name="gin_trgm_ops"), name="offer_name_trgm"),
            # The catalog API pages by id (keyset, marketplace.catalog): a page filtered on
            # kind, GPU model or provider walks one of these instead of skipping every other
            # offer in id order (an H100 page skipped ~40,000 LLM offers first at 100,000).
            *(
                PostgresIndex(field, "id", name=f"offer_api_{name}", condition=Q(available=True))
                for field, name in (("kind", "kind"), ("gpu_name", "gpu"), ("provider", "provider"))
            ),
            # The offers of a GPU model or an LLM model (its page; SET NULL when one is
            # deleted): only offers that have one, so an LLM offer costs no entry in the GPU
            # index nor a GPU offer in the model index (every entry costs every poll).
            *(
                models.Index(fields=[field], name=name, condition=Q(**{f"{field}__isnull": False}))
                for field, name in (("gpu", "offer_gpu"), ("llm_model", "offer_llm_model"))
            ),
            # A model named by a provider's own id (providers.llm_models.resolve: the broker's
            # requests, the model pages): LLM offers only, so a small index.
            PostgresIndex(
                fields=["upstream_id"], name="offer_llm_upstream_id", condition=Q(kind=Kind.LLM)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} @ {self.provider_id}"

    @property
    def price_warnings(self) -> list[str]:
        return [PRICE_FLAGS.get(code, code) for code in self.price_flags]

    @property
    def retired(self) -> bool:
        """Deprecated by the provider as of now (a scheduled date still to come is not yet)."""
        return self.deprecated_at is not None and self.deprecated_at <= timezone.now()

    @property
    def sheet_age_days(self) -> int | None:
        """How old the price sheet this price came from is, in days (None: not from a sheet)."""
        if self.price_source != PriceSource.SHEET or not self.price_source_date:
            return None
        return (timezone.localdate() - self.price_source_date).days

    @property
    def sheet_is_old(self) -> bool:
        age = self.sheet_age_days
        return age is not None and age > settings.PRICE_SHEET_MAX_AGE_DAYS

    @property
    def gscore(self) -> float | None:
        """The G-Score shown, 0–100 on the current scale; None when not scored."""
        reference = self.provider.gscore_reference
        if not self.available or self.gscore_value is None or not reference:
            return None
        return gscore.score(self.gscore_value, reference)

    @property
    def page_url(self) -> str:
        """Where to rent or call this offer at the provider: its model page, or the console
        (each adapter's `page_url`); the adapter class only, no client is built."""
        return import_string(self.provider.adapter_path).page_url(self.upstream_id)

    @property
    def seen_at(self) -> datetime:
        """When a poll last listed this offer: for one still available, its provider's latest
        poll, which is not written to every unchanged row (at 100,000 offers that rewrite
        was a quarter of a re-poll's time)."""
        polled = self.provider.offers_seen_at
        if self.available and polled and polled > self.last_seen:
            return polled
        return self.last_seen


class Observation(models.Model):
    """What GPUBroker's broker saw an offer do when it served requests over a recent window:
    rolled up from the broker's usage records (broker/usage.py, every few minutes), read by
    the model page and by `latency` and `throughput` routing. Only requests served at the
    first attempt count (a fallback's time to first byte includes the failed attempts)."""

    offer = models.OneToOneField(
        Offer, on_delete=models.CASCADE, related_name="observation", primary_key=True
    )
    since = models.DateTimeField(help_text="Start of the window the figures cover.")
    until = models.DateTimeField(help_text="When they were rolled up (the window's end).")
    requests = models.PositiveIntegerField(help_text="Requests it served in the window.")
    streamed = models.PositiveIntegerField(help_text="Of those, streamed.")
    latency_ms = models.FloatField(
        null=True, blank=True, help_text="Mean time to the first byte of a streamed answer."
    )
    throughput_tps = models.FloatField(
        null=True, blank=True, help_text="Output tokens per second of generation."
    )

    def __str__(self) -> str:
        return f"{self.offer_id}: {self.latency_ms} ms, {self.throughput_tps} tok/s"

    @property
    def window_hours(self) -> int:
        return round((self.until - self.since).total_seconds() / 3600)


class OfferFacet(models.Model):
    """How many of a provider's offers share each combination of the marketplace's facet
    values. Rewritten with the offers by every ingest, so the marketplace lists its choices
    and counts without grouping every offer on every request."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    region = models.CharField(max_length=40, blank=True)
    task = models.CharField(max_length=40, blank=True)
    gpu_name = models.CharField(max_length=80, blank=True)
    available = models.BooleanField()
    offers = models.PositiveIntegerField()
    key = models.CharField(max_length=300, help_text="Offer.facet_key of these offers.")
    # The range of these offers' VRAM (GB): -1 the low end when one has none, NULL the high
    # end when none has any. A GPU model's offers at one provider mostly share one figure, so
    # "at least N GB" is decided here for whole combinations (marketplace.search).
    vram_low = models.FloatField()
    vram_high = models.FloatField(null=True)

    COLUMNS = ("kind", "region", "task", "gpu_name", "available")

    def __str__(self) -> str:
        return f"{self.provider_id} {self.kind} {self.region} {self.task} {self.gpu_name}"

    @classmethod
    def refresh(cls, provider: Provider) -> None:
        groups = Offer.objects.filter(provider=provider).values(*cls.COLUMNS, "facet_key")
        groups = groups.annotate(
            n=Count("*"),
            vram_low=Min(Coalesce("vram_gb", Value(-1.0))),
            vram_high=Max("vram_gb"),
        )
        cls.objects.filter(provider=provider).delete()
        cls.objects.bulk_create(
            cls(provider=provider, offers=row.pop("n"), key=row.pop("facet_key"), **row)
            for row in groups.order_by()
        )


# Upper edges of the price bands `OfferPriceBand` counts offers in, in steps of 1-2-5 from
# 0.0001 to 50,000 (in each kind's own unit: per 1M input tokens, per image, per GPU-hour).
PRICE_BAND_EDGES = tuple(
    Decimal(mantissa).scaleb(exponent) for exponent in range(-4, 5) for mantissa in (1, 2, 5)
)


def price_band() -> Case:
    """An offer's price band: the lowest edge at or over its unit price (needs the
    `unit_price` annotation); NULL with no price or one over the top edge."""
    return Case(
        *(When(unit_price__lte=edge, then=Value(edge)) for edge in PRICE_BAND_EDGES),
        output_field=models.DecimalField(max_digits=14, decimal_places=6),
    )


class OfferPriceBand(models.Model):
    """How many of a provider's offers in each facet combination cost at most each price band's
    upper edge and more than the edge below it. Rewritten with the offers by every ingest, so
    the facet counts under a price ceiling add up whole bands here and group only the offers
    between the last whole band and the ceiling (none when the ceiling is an edge: $1, $2, $5),
    instead of grouping every offer under the ceiling on every request."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=300, help_text="Offer.facet_key of these offers.")
    available = models.BooleanField()
    upper = models.DecimalField(max_digits=14, decimal_places=6)
    offers = models.PositiveIntegerField()

    class Meta:
        indexes = [models.Index(fields=["upper"], name="offerpriceband_upper")]

    def __str__(self) -> str:
        return f"{self.key!r} ≤ {self.upper}: {self.offers}"

    @classmethod
    def refresh(cls, provider: Provider) -> None:
        banded = (
            Offer.objects.filter(provider=provider)
            .annotate(unit_price=UNIT_PRICE, upper=price_band())
            .filter(upper__isnull=False)  # no price, or above the top edge
            .values("facet_key", "available", "upper")
            .annotate(n=Count("*"))
            .order_by()
        )
        cls.objects.filter(provider=provider).delete()
        cls.objects.bulk_create(
            cls(
                provider=provider,
                key=row["facet_key"],
                available=row["available"],
                upper=row["upper"],
                offers=row["n"],
            )
            for row in banded
        )

    @staticmethod
    def edge_under(ceiling: Decimal) -> Decimal | None:
        """The highest band edge at or under a price ceiling."""
        return max((edge for edge in PRICE_BAND_EDGES if edge <= ceiling), default=None)


def refresh_rollups(provider: Provider) -> None:
    """Rewrite `provider`'s OfferFacet and OfferPriceBand rows from its offers. On PostgreSQL
    in one statement: the offers grouped once by facet key, availability and price band (the
    band found by a binary search of the edges, `width_bucket`, not up to 27 comparisons a
    row), both roll-ups written from those groups, the old rows deleted. Grouped by hashing:
    after a first poll the table has no statistics yet, the planner expects a few dozen rows
    and sorts 45,000 wide keys on disk instead (a 100,000-offer first poll's two roll-ups
    took ~0.7 s that way, as two queries; this ~0.15 s)."""
    if connection.vendor != "postgresql":
        OfferFacet.refresh(provider)
        OfferPriceBand.refresh(provider)
        return
    quote = connection.ops.quote_name
    facets, bands = OfferFacet._meta.db_table, OfferPriceBand._meta.db_table
    unit = f"COALESCE({', '.join(map(quote, PRICE_COLUMNS))})"
    # Edges negated in ascending order: width_bucket finds the greatest at or under the
    # negated price, so the lowest edge at or over the price; index 0 (over the top) is NULL.
    negated = sorted(-edge for edge in PRICE_BAND_EDGES)
    facet_columns = ", ".join(OfferFacet.COLUMNS[:-1])
    firsts = ", ".join(f"min({name}) AS {name}" for name in OfferFacet.COLUMNS[:-1])
    pk = provider.pk
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute(
            f"WITH old_facets AS (DELETE FROM {facets} WHERE provider_id = %s), "
            f"old_bands AS (DELETE FROM {bands} WHERE provider_id = %s), "
            "groups AS ("
            "SELECT facet_key, available, "
            f"(%s::numeric[])[width_bucket(-{unit}, %s::numeric[])] AS upper, "
            "count(*) AS offers, min(COALESCE(vram_gb, -1.0)) AS vram_low, "
            f"max(vram_gb) AS vram_high, {firsts} "
            f"FROM {Offer._meta.db_table} WHERE provider_id = %s GROUP BY 1, 2, 3), "
            f"new_facets AS (INSERT INTO {facets} (provider_id, {facet_columns}, available, "
            "offers, key, vram_low, vram_high) "
            f"SELECT %s, {firsts}, available, sum(offers), facet_key, min(vram_low), "
            "max(vram_high) FROM groups GROUP BY facet_key, available) "
            f"INSERT INTO {bands} (provider_id, key, available, upper, offers) "
            "SELECT %s, facet_key, available, upper, offers FROM groups WHERE upper IS NOT NULL",
            [pk, pk, [-edge for edge in negated], negated, pk, pk, pk],
        )
        cursor.execute("RESET enable_sort")  # the session's again (ingest may be in a longer one)


class PriceChange(models.Model):
    """Append-only: one row per price field that changed in a poll."""

    offer = models.ForeignKey(Offer, on_delete=models.CASCADE, related_name="price_changes")
    field = models.CharField(max_length=40)
    old = models.DecimalField(max_digits=14, decimal_places=6, null=True)
    new = models.DecimalField(max_digits=14, decimal_places=6, null=True)
    at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["at"]
        indexes = [models.Index(fields=["offer", "at"], name="pricechange_offer_at")]

    def __str__(self) -> str:
        return f"{self.field}: {self.old} → {self.new} at {self.at:%Y-%m-%d %H:%M}"


class PollRunQuerySet(models.QuerySet):
    def stale(self) -> PollRunQuerySet:
        """Runs still `running` after the poll lock would have expired: their worker died."""
        expired = timezone.now() - timedelta(seconds=settings.PROVIDER_POLL_LOCK_SECONDS)
        return self.filter(outcome=PollRun.Outcome.RUNNING, started_at__lt=expired)

    def abandon(self) -> int:
        """Mark running runs abandoned: their worker died, and their writes were rolled back."""
        return self.filter(outcome=PollRun.Outcome.RUNNING).update(
            outcome=PollRun.Outcome.ABANDONED,
            finished_at=timezone.now(),
            error_class="Abandoned",
            error_message=PollRun.ABANDONED_MESSAGE,
        )


class PollRun(models.Model):
    class Outcome(models.TextChoices):
        RUNNING = "running"
        OK = "ok"
        PARTIAL = "partial"
        FAILED = "failed"
        SKIPPED = "skipped"
        ABANDONED = "abandoned"  # its worker died mid-poll; nothing it wrote was kept

    SUCCEEDED = (Outcome.OK, Outcome.PARTIAL)
    FAILURES = (Outcome.FAILED, Outcome.ABANDONED)
    ABANDONED_MESSAGE = (
        "The worker stopped during this poll (killed, or out of memory); its writes were "
        "rolled back and the poll ran again or will at its next interval."
    )

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="poll_runs")
    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default="running")
    http_calls = models.PositiveIntegerField(default=0)
    error_class = models.CharField(max_length=80, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    offers_seen = models.PositiveIntegerField(default=0)
    offers_added = models.PositiveIntegerField(default=0)
    offers_changed = models.PositiveIntegerField(default=0)
    offers_gone = models.PositiveIntegerField(default=0)
    items_skipped = models.PositiveIntegerField(default=0)
    # Offers whose model name no alias identifies (each kept as its own model).
    models_unknown = models.PositiveIntegerField(default=0, db_default=0)
    task_id = models.CharField(max_length=64, blank=True, default="", editable=False)

    objects = PollRunQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at"]
        # A provider's latest run, asked on every marketplace and health page: without it,
        # a year of runs is scanned for a provider that has none lately (~130 ms a page).
        indexes = [models.Index(fields=["provider", "-started_at"], name="pollrun_latest")]

    def __str__(self) -> str:
        return f"{self.provider_id} {self.started_at:%Y-%m-%d %H:%M} {self.outcome}"

    @property
    def succeeded(self) -> bool:
        """The poll wrote the provider's offers (some items may have been skipped)."""
        return self.outcome in self.SUCCEEDED

    def as_dict(self) -> dict:
        return {
            "id": self.pk,
            "provider": self.provider.slug,
            "outcome": self.outcome,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "http_calls": self.http_calls,
            "offers_seen": self.offers_seen,
            "offers_added": self.offers_added,
            "offers_changed": self.offers_changed,
            "offers_gone": self.offers_gone,
            "items_skipped": self.items_skipped,
            "models_unknown": self.models_unknown,
            "error_class": self.error_class,
            "error_message": self.error_message,
        }

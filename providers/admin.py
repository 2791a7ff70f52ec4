from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.cache import cache
from django.db.models import Count
from django.template.response import TemplateResponse

from providers.models import (
    Credential,
    GpuModel,
    Kind,
    LlmModel,
    ModelAlias,
    Observation,
    Offer,
    PollRun,
    Provider,
)
from resilience.errors import ProviderError

# Data residency an admin can state for a provider (from a contract, say): the region codes
# offers are tagged with (providers/geo.py: "eu" for the EU/EEA, where the GDPR applies, and
# a lowercase country code elsewhere).
RESIDENCY_CHOICES = [
    ("eu", "eu: EU/EEA (offers are tagged gdpr)"),
    ("us", "us: United States"),
]

UNREADABLE = "cannot be decrypted: check GPUBROKER_ENCRYPTION_KEYS"


class ProviderForm(forms.ModelForm):
    """Regions as a multi-select, not a JSON text box: the residencies an admin may state, the
    regions stored offers carry, and any already chosen."""

    regions = forms.MultipleChoiceField(
        required=False,
        widget=forms.SelectMultiple(attrs={"size": 8}),
        help_text="Where the provider serves, if a contract or its documentation says so ("
        + "; ".join(label for _, label in RESIDENCY_CHOICES)
        + "). The next poll tags its offers; left empty, they stay region=unspecified.",
    )

    class Meta:
        model = Provider
        fields = ["name", "kind", "enabled", "poll_interval", "regions", "docs_url"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        known = Offer.objects.exclude(region="").values_list("region", flat=True).distinct()
        stated = {code for code, _ in RESIDENCY_CHOICES}
        regions = sorted({*stated, *known, *(self.instance.regions or [])})
        self.fields["regions"].choices = [(r, r) for r in regions]


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    form = ProviderForm
    list_display = [
        "name",
        "slug",
        "kind",
        "enabled",
        "poll_interval",
        "key_in_effect",
        "last_success_at",
    ]
    list_filter = ["kind", "enabled"]
    readonly_fields = [
        "slug",
        "adapter_path",
        "env_prefix",
        "base_url",
        "effective_base_url",
        "key_in_effect",
        "key_finding",
        "key_checked_at",
        "last_polled_at",
        "last_success_at",
        "polling_since",
    ]
    fields = ["name", "kind", "enabled", "poll_interval", "regions", "docs_url", *readonly_fields]
    actions = ["test_connection"]

    @admin.display(description="latest health check found")
    def key_finding(self, provider: Provider) -> str:
        """What the broker reads to skip the provider (health/checks.py writes it)."""
        return provider.key_finding or "nothing wrong with the key in effect"

    @admin.display(description="API key in effect")
    def key_in_effect(self, provider: Provider) -> str:
        """The stored fingerprint and where the key comes from; the key is never decrypted
        here, so a list with a key from an old encryption key still renders."""
        source = provider.key_source
        if source == "none":
            return "none"
        if source == "environment":
            return f"{provider.key_fingerprint} from environment ({provider.env_prefix}_API_KEY)"
        if not provider._credential.readable:
            return f"{provider.key_fingerprint} admin-managed, {UNREADABLE}"
        return f"{provider.key_fingerprint} from admin-managed"

    def save_model(self, request, obj: Provider, form, change) -> None:
        super().save_model(request, obj, form, change)
        obj.sync_schedule()  # an interval edited here reschedules the beat entry

    @admin.action(description="Test connection")
    def test_connection(self, request, queryset) -> None:
        for provider in queryset:
            result = provider.test_connection()
            level = messages.SUCCESS if result.status == "ok" else messages.WARNING
            # The admin capitalises a message's first letter ("Io.net"), so the provider's
            # name never comes first.
            message = f"Test connection to {provider.name}: {result.status}. {result.detail}"
            self.message_user(request, message, level)


class CredentialForm(forms.ModelForm):
    api_key = forms.CharField(
        label="API key",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Write-only: stored encrypted; only its last 4 characters are ever shown.",
    )

    class Meta:
        model = Credential
        fields = ["provider"]

    def clean_api_key(self) -> str:
        """Whitespace around a pasted key is dropped; a control character or a non-ASCII one
        inside it cannot go in an HTTP header, so the key is refused (without repeating it)."""
        key = self.cleaned_data["api_key"].strip()
        if not key.isascii() or not key.isprintable():
            raise forms.ValidationError(
                "The key contains a character an HTTP header cannot carry (a line break, a "
                "tab or a non-ASCII character): paste it again."
            )
        return key

    def save(self, commit: bool = True) -> Credential:
        credential = super().save(commit=False)
        credential.set_key(self.cleaned_data["api_key"])
        if commit:
            credential.save()
        return credential


@admin.register(Credential)
class CredentialAdmin(admin.ModelAdmin):
    form = CredentialForm
    list_display = ["provider", "fingerprint", "decrypts", "updated_at"]
    readonly_fields = ["fingerprint", "decrypts", "updated_at"]

    @admin.display(description="decrypts with current keys", boolean=True)
    def decrypts(self, credential: Credential) -> bool | None:
        return credential.readable if credential.pk else None


@admin.register(Offer)
class OfferAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "provider",
        "kind",
        "task",
        "region",
        "usd_per_1m_input",
        "usd_per_1m_output",
        "usd_per_gpu_hour",
        "g_score",
        "available",
        "seen",
    ]
    list_filter = ["provider", "kind", "available", ("gpu", admin.EmptyFieldListFilter)]
    search_fields = ["name", "upstream_id", "gpu_name"]
    list_select_related = ["provider"]
    actions = ["rent"]

    @admin.display(description="G-Score", ordering="gscore_value")
    def g_score(self, offer: Offer) -> float | None:
        return offer.gscore

    @admin.display(description="last seen")
    def seen(self, offer: Offer):
        return offer.seen_at

    @admin.action(description="Rent on the provider (asks to confirm)", permissions=["change"])
    def rent(self, request, queryset) -> TemplateResponse | None:
        """Create a billed instance from one GPU offer: a confirmation page first, never
        automatically. Providers whose API cannot rent say where to go instead."""
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one offer to rent.", messages.WARNING)
            return None
        offer = queryset.select_related("provider").get()
        if offer.kind != Kind.GPU:
            self.message_user(request, "Only GPU offers can be rented.", messages.WARNING)
            return None
        adapter = offer.provider.adapter()
        try:
            adapter.check_rentable()  # or NotSupported, naming the provider's console
            adapter.api_key(required=True)  # no key, no rental: say so before the form
            form = RentForm(request.POST if "confirm" in request.POST else None, offer=offer)
            if form.is_bound and not form.is_valid():
                form.reissue()  # a corrected resubmission gets a fresh one-time token
            elif form.is_valid():
                result = adapter.rent(offer.upstream_id, form.payload())
                self.message_user(
                    request,
                    f"Rented {offer.name} on {offer.provider.name} as instance "
                    f"{result['new_contract']}.",
                    messages.SUCCESS,
                )
                return None
        except ProviderError as exc:
            reason = str(exc).removeprefix(f"{adapter.slug}: ")
            self.message_user(
                request, f"Not rented on {offer.provider.name}: {reason}", messages.ERROR
            )
            return None
        finally:
            adapter.close()
        context = {
            **self.admin_site.each_context(request),
            "title": "Rent this offer?",
            "opts": self.model._meta,
            "offer": offer,
            "form": form,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/providers/offer/rent.html", context)


class RentForm(forms.Form):
    """The create-instance body (Vast's PUT /api/v0/asks/{id}/ fields)."""

    image = forms.CharField(max_length=1024, initial="vastai/base-image:@vastai-automatic-tag")
    disk = forms.FloatField(label="Disk (GB)", min_value=8, initial=16)
    price = forms.DecimalField(
        label="Bid ($/hour for the whole offer)",
        min_value=Decimal("0.001"),
        max_value=Decimal(128),
        decimal_places=3,
        required=False,
        help_text="Interruptible offers only; a higher bid can stop yours.",
    )

    # One rental per confirmation page: a double click or a replayed POST finds its token spent.
    once = forms.CharField(widget=forms.HiddenInput)
    TOKEN_SECONDS = 600

    def __init__(self, *args: Any, offer: Offer, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.offer = offer
        if offer.interruptible:
            self.fields["price"].required = True
        else:
            del self.fields["price"]
        if not self.is_bound:
            self.initial["once"] = self._issue()

    def _issue(self) -> str:
        token = uuid.uuid4().hex
        cache.set(f"rent-once:{token}", self.offer.pk, self.TOKEN_SECONDS)
        return token

    def reissue(self) -> None:
        self.data = self.data.copy()
        self.data["once"] = self._issue()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not self.errors and not cache.delete(f"rent-once:{cleaned['once']}"):
            raise forms.ValidationError(
                "This confirmation was already used or has expired, so nothing was rented "
                "now. Check the provider's console before trying again."
            )
        return cleaned

    def payload(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        del data["once"]
        if data.get("price") is not None:
            data["price"] = float(data["price"])
        return data


@admin.register(PollRun)
class PollRunAdmin(admin.ModelAdmin):
    list_display = [
        "provider",
        "started_at",
        "outcome",
        "http_calls",
        "offers_seen",
        "offers_added",
        "offers_changed",
        "offers_gone",
        "models_unknown",
        "error_class",
    ]
    list_filter = ["provider", "outcome"]
    list_select_related = ["provider"]


@admin.register(GpuModel)
class GpuModelAdmin(admin.ModelAdmin):
    list_display = ["canonical", "vendor", "architecture", "memory_gb", "bf16_tflops"]
    search_fields = ["canonical"]


@admin.register(LlmModel)
class LlmModelAdmin(admin.ModelAdmin):
    """Models as identified. An "unknown" one is a provider's name no alias identifies: add
    an alias (with its source) below and the provider's next poll moves its offers over."""

    list_display = ["display_name", "canonical", "identity", "task", "context_length", "n_offers"]
    list_filter = ["identity", "task"]
    search_fields = ["canonical", "display_name"]
    readonly_fields = ["canonical", "identity", "first_seen"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(n_offers=Count("offers"))

    @admin.display(description="offers", ordering="n_offers")
    def n_offers(self, model: LlmModel) -> int:
        return model.n_offers


@admin.register(ModelAlias)
class ModelAliasAdmin(admin.ModelAdmin):
    """Rows from providers/model_aliases.json are rewritten from it on every load; add yours
    here (they are kept)."""

    list_display = ["name", "provider", "model", "source", "from_file"]
    list_filter = ["provider", "from_file"]
    search_fields = ["name", "model"]


@admin.register(Observation)
class ObservationAdmin(admin.ModelAdmin):
    """Rolled up from the broker's usage records every few minutes; read-only."""

    list_display = ["offer", "requests", "streamed", "latency_ms", "throughput_tps", "until"]
    list_select_related = ["offer"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

from __future__ import annotations

from django import forms
from django.contrib import admin, messages

from providers.models import Credential, GpuModel, Offer, PollRun, Provider


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
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
        "last_polled_at",
        "last_success_at",
        "polling_since",
    ]
    fields = ["name", "kind", "enabled", "poll_interval", "regions", "docs_url", *readonly_fields]
    actions = ["test_connection"]

    @admin.display(description="API key in effect")
    def key_in_effect(self, provider: Provider) -> str:
        source = provider.key_source
        if source == "none":
            return "none"
        origin = (
            "admin-managed" if source == "admin" else f"environment ({provider.env_prefix}_API_KEY)"
        )
        return f"{provider.key_fingerprint} from {origin}"

    def save_model(self, request, obj: Provider, form, change) -> None:
        super().save_model(request, obj, form, change)
        obj.sync_schedule()  # an interval edited here reschedules the beat entry

    @admin.action(description="Test connection")
    def test_connection(self, request, queryset) -> None:
        for provider in queryset:
            result = provider.test_connection()
            level = messages.SUCCESS if result.status == "ok" else messages.WARNING
            self.message_user(request, f"{provider.name}: {result.status}. {result.detail}", level)


class CredentialForm(forms.ModelForm):
    api_key = forms.CharField(
        label="API key",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Write-only: stored encrypted; only its last 4 characters are ever shown.",
    )

    class Meta:
        model = Credential
        fields = ["provider"]

    def save(self, commit: bool = True) -> Credential:
        credential = super().save(commit=False)
        credential.set_key(self.cleaned_data["api_key"])
        if commit:
            credential.save()
        return credential


@admin.register(Credential)
class CredentialAdmin(admin.ModelAdmin):
    form = CredentialForm
    list_display = ["provider", "fingerprint", "updated_at"]
    readonly_fields = ["fingerprint", "updated_at"]


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
        "available",
        "last_seen",
    ]
    list_filter = ["provider", "kind", "available"]
    search_fields = ["name", "upstream_id"]
    list_select_related = ["provider"]


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
        "error_class",
    ]
    list_filter = ["provider", "outcome"]
    list_select_related = ["provider"]


@admin.register(GpuModel)
class GpuModelAdmin(admin.ModelAdmin):
    list_display = ["canonical", "vendor", "architecture", "memory_gb", "bf16_tflops"]

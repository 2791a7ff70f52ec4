from __future__ import annotations

import secrets

from django.contrib import admin, messages
from django.utils import timezone

from broker.models import KEY_PREFIX, ApiKey, Usage, hash_key


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "prefix", "monthly_budget_usd", "spent_usd", "spend_month",
                    "strategy", "expires_at", "revoked_at")  # fmt: skip
    readonly_fields = ("prefix", "created_at", "spent_usd", "spend_month", "reserved_usd")
    fields = ("name", "prefix", "monthly_budget_usd", "allowed_models", "allowed_providers",
              "strategy", "expires_at", "revoked_at", "created_at", "spent_usd", "spend_month",
              "reserved_usd")  # fmt: skip
    actions = ["revoke"]

    def save_model(self, request, obj: ApiKey, form, change: bool) -> None:
        if not change:  # the raw key is made here, shown once below, and never stored
            raw = KEY_PREFIX + secrets.token_urlsafe(32)
            obj.hashed, obj.prefix = hash_key(raw), raw[:12]
            super().save_model(request, obj, form, change)
            messages.warning(request, f"The new key, shown only now: {raw}")
            return
        super().save_model(request, obj, form, change)

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset) -> None:
        done = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {done} key(s).")


@admin.register(Usage)
class UsageAdmin(admin.ModelAdmin):
    list_display = ("at", "key", "model", "provider", "outcome", "status_code", "cost_usd",
                    "cost_source", "ttfb_ms", "total_ms")  # fmt: skip
    list_filter = ("outcome", "provider", "endpoint", "cost_source")
    list_select_related = ("key",)

    def has_add_permission(self, request) -> bool:
        return False

from __future__ import annotations

from django.urls import path

from health import views

app_name = "health"
urlpatterns = [
    path("", views.index, name="index"),
    path("<slug:slug>/", views.detail, name="detail"),
    path("<slug:slug>/reset-breaker", views.reset_breaker, name="reset-breaker"),
    path("<slug:slug>/check", views.check_now, name="check"),
    path("<slug:slug>/invalidate-cache", views.invalidate_cache, name="invalidate-cache"),
]

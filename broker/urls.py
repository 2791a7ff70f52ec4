from __future__ import annotations

from django.urls import path

from broker import views

app_name = "broker"
urlpatterns = [
    path("v1/chat/completions", views.chat_completions, name="chat-completions"),
    path("v1/embeddings", views.embeddings, name="embeddings"),
    path("v1/models", views.models, name="models"),
    path("v1/models/<path:name>", views.model, name="model"),
    path("api/v1/inference", views.inference, name="inference"),
    path("api/v1/auth", views.auth, name="auth"),
    path("usage/", views.usage_page, name="usage"),
]

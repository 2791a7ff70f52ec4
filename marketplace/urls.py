from __future__ import annotations

from django.urls import path

from marketplace import views

app_name = "marketplace"
urlpatterns = [
    path("", views.index, name="index"),
    path("marketplace/", views.index),
    path("offers/<int:pk>/", views.offer_detail, name="offer"),
    path("models/<path:canonical>/", views.model_detail, name="model"),
    path("gpus/<path:name>/", views.gpu_detail, name="gpu"),
]

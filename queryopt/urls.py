from __future__ import annotations

from django.urls import path

from queryopt import views

app_name = "queryopt"
urlpatterns = [
    path("", views.index, name="index"),
]

from __future__ import annotations

from django.urls import path

from profiling import views

app_name = "profiling"
urlpatterns = [
    path("", views.index, name="index"),
]

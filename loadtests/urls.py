from __future__ import annotations

from django.urls import path

from loadtests import views

urlpatterns = [
    path("", views.overview, name="home"),
]

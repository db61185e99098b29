from __future__ import annotations

from django.urls import path

from shop import views

urlpatterns = [
    path("books", views.book_list),
    path("checksum", views.checksum),
    path("report", views.report),
]

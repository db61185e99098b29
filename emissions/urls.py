from __future__ import annotations

from django.urls import path

from emissions import views

app_name = "emissions"

urlpatterns = [
    path("", views.index, name="index"),
    path("batches/", views.batches, name="batches"),
    path("batches/<str:ref>/", views.batch, name="batch"),
    path("batches/<str:ref>/calculate/", views.batch_calculate, name="calculate"),
    path("batches/<str:ref>/activities/", views.batch_activities, name="batch-activities"),
    path("emissions/totals/", views.totals, name="totals"),
    path("activities/", views.activities, name="activities"),
    path("activities/by-site/", views.activities_by_site, name="by-site"),
]

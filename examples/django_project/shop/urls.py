from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("", views.home),
    path("healthz", views.healthz),
    path("search/", views.search),
    path("items/<int:item_id>/", views.item),
]

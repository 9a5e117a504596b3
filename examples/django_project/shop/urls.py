from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("", views.home),
    path("healthz", views.healthz),
    # No trailing slash, as in the other examples: /search?q=shirt answers 200, not a 301 to /search/.
    path("search", views.search),
    path("items/<int:item_id>", views.item),
]

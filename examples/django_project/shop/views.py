"""Views of the example project."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse

ITEMS = {1: "Blue cotton shirt", 2: "Red wool scarf"}


def home(request: HttpRequest) -> HttpResponse:
    return HttpResponse("hello from Django")


def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def search(request: HttpRequest) -> JsonResponse:
    q = request.GET.get("q", "")
    return JsonResponse({"q": q, "results": [v for v in ITEMS.values() if q.lower() in v.lower()]})


def item(request: HttpRequest, item_id: int) -> JsonResponse:
    if item_id not in ITEMS:
        raise Http404("no such item")
    return JsonResponse({"id": item_id, "name": ITEMS[item_id]})

from __future__ import annotations

from django.urls import include, path, re_path

from . import views

api = [
    path("items/<int:pk>/", views.item),
]

urlpatterns = [
    path("", views.home),
    path("api/", include(api)),
    re_path(r"^legacy/(?P<pk>[0-9]+)/$", views.item),
    path("echo/", views.echo),
    path("read/", views.read_stream),
    path("form/", views.form),
    path("upload/", views.upload),
    path("ignore/", views.ignore_body),
    path("stream/", views.stream),
    path("astream/", views.astream),
    path("stream-fails/", views.stream_fails),
    path("file/", views.file),
    path("boom/", views.boom),
    path("missing/", views.missing),
    path("status/<int:code>/", views.status),
    path("not-modified/", views.not_modified),
    path("async-echo/", views.async_echo),
    path("head/", views.head_ok),
    path("probe/", views.context_probe),
    path("sql-error/", views.sql_error),
]

"""Settings of the example project: the smallest Django that serves a few views."""

from __future__ import annotations

import os

# An example's key: never reuse it. A real project reads it from the environment.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-a-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

# "devsecmw": its system check validates DEVSECMW at `manage.py check` and `runserver`.
INSTALLED_APPS: list[str] = ["devsecmw"]
MIDDLEWARE = [
    # First, so devsecmw sees every request and every response the others produce.
    "devsecmw.django.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]
# Options of devsecmw (all optional). DEVSECMW_* environment variables override them; a
# devsecmw.toml or [tool.devsecmw] in pyproject.toml comes below (`devsecmw config` shows all).
DEVSECMW = {"mode": "monitor", "ignore_paths": ["/healthz"]}

ROOT_URLCONF = "shop.urls"
WSGI_APPLICATION = "shop.wsgi.application"
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True

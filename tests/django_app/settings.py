"""Settings of the test project. Tests apply them with ``settings.configure(**as_dict())``;
the end-to-end test points ``DJANGO_SETTINGS_MODULE`` here."""

from __future__ import annotations

from typing import Any

SECRET_KEY = "devsecmw-tests-only"  # a test project, never deployed
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "django_app.urls"
MIDDLEWARE = ["devsecmw.django.SecurityMiddleware"]
INSTALLED_APPS: list[str] = []
DATABASES: dict[str, Any] = {}
USE_TZ = True
USE_I18N = False
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
# Keep Django's request logging quiet in test output; errors still reach the test as responses.
LOGGING_CONFIG = None


def as_dict() -> dict[str, Any]:
    return {k: v for k, v in globals().items() if k.isupper()}

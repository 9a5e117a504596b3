"""Django application of devsecmw: ``INSTALLED_APPS = [..., "devsecmw"]`` registers its system
check, so ``manage.py check`` (and ``runserver``) reject a broken ``DEVSECMW`` setting with a
message naming the key. The middleware itself is ``devsecmw.django.SecurityMiddleware``.

Only Django imports this module (it needs Django; the rest of devsecmw does not).
"""

from __future__ import annotations

from django.apps import AppConfig  # type: ignore[import-untyped]


class DevsecmwConfig(AppConfig):  # type: ignore[misc]  # Django ships no type information
    name = "devsecmw"
    label = "devsecmw"
    verbose_name = "devsecmw"

    def ready(self) -> None:
        from .django import register_checks

        register_checks()

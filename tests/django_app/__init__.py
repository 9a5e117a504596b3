"""A minimal Django project for devsecmw's tests (no database, no installed apps)."""


def setup() -> None:
    """Configure Django with this project's settings (once per process) and set it up."""
    import django
    from django.conf import settings

    from . import settings as app_settings

    if not settings.configured:
        settings.configure(**app_settings.as_dict())
    django.setup()

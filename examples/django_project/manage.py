#!/usr/bin/env python
"""A minimal Django project with devsecmw in MIDDLEWARE (see shop/settings.py).

Install and run (http://127.0.0.1:8000):

    python -m pip install ".[django]"          # from the repository root
    cd examples/django_project && python manage.py runserver 127.0.0.1:8000

Try it (``manage.py check`` validates the DEVSECMW setting too):

    curl 'http://127.0.0.1:8000/search?q=shirt'
    curl "http://127.0.0.1:8000/search?q=1'%20UNION%20SELECT%20password%20FROM%20users--"

Zero code, spans on the terminal (OTel's SDK via the distro). DJANGO_SETTINGS_MODULE goes
first: OpenTelemetry's own Django instrumentation, when installed, reads the settings
before manage.py runs:

    python -m pip install ".[django,instrument]" opentelemetry-distro
    cd examples/django_project && DJANGO_SETTINGS_MODULE=shop.settings \
        OTEL_TRACES_EXPORTER=console OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none \
        opentelemetry-instrument python manage.py runserver 127.0.0.1:8000 --noreload

Or to any OTLP endpoint (Jaeger, Tempo, an OpenTelemetry Collector):

    python -m pip install ".[django,instrument]" opentelemetry-distro opentelemetry-exporter-otlp-proto-http
    cd examples/django_project && DJANGO_SETTINGS_MODULE=shop.settings \
        OTEL_SERVICE_NAME=django-example OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 \
        OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none \
        opentelemetry-instrument python manage.py runserver 127.0.0.1:8000 --noreload
"""

from __future__ import annotations

import os
import sys

SETTINGS = "shop.settings"


def main() -> None:
    django_conf = sys.modules.get("django.conf")
    if "DJANGO_SETTINGS_MODULE" not in os.environ and django_conf is not None and django_conf.settings.configured:
        # Something configured Django before this script (OpenTelemetry's Django instrumentation
        # under opentelemetry-instrument does, with empty settings): say so instead of failing later.
        sys.exit(
            "manage.py: Django was configured before manage.py ran (opentelemetry-instrument?): "
            f"set DJANGO_SETTINGS_MODULE={SETTINGS} in the environment first"
        )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS)
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()

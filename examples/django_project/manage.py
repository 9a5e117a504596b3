#!/usr/bin/env python
"""A minimal Django project with devsecmw in MIDDLEWARE (see shop/settings.py).

Run it (http://127.0.0.1:8000):

    cd examples/django_project && python manage.py runserver 127.0.0.1:8000

Send its spans and metrics to any OTLP endpoint (Jaeger, Tempo, an OpenTelemetry Collector):

    pip install opentelemetry-distro opentelemetry-exporter-otlp-proto-http
    OTEL_SERVICE_NAME=django-example OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 \
        OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf opentelemetry-instrument \
        python manage.py runserver 127.0.0.1:8000 --noreload
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()

"""A minimal Django project for devsecmw's tests (no database, no installed apps)."""

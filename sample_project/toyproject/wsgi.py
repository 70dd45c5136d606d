"""WSGI config for toyproject."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "toyproject.settings")

application = get_wsgi_application()

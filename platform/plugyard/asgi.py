"""ASGI entry point for servers: `granian --interface asgi plugyard.asgi:app`."""

from __future__ import annotations

from plugyard import log, settings
from plugyard.app import create_app

_settings = settings.from_env()
log.configure(log_format=_settings.log_format, level=_settings.log_level)
app = create_app(_settings)

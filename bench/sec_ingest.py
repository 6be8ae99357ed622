"""Section 5: metrics ingest. A slot until ingest exists; then the figures of `bench.ingest`.

`bench/ingest.py` (events/s of signed batches through `plugyard serve`, through the service
in-process, and a bare COPY floor) is written together with the ingest endpoint. When it is
present this section runs it as a subprocess and reports its JSON; when it is absent or fails,
the section says so and prints no number.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

from bench.report import Row, Section, ratio, verdict

TITLE = "Metrics ingest"
TARGET = 0.5  # issue 10: events/s through the real ingest path >= 0.5x a bare COPY


def _slot(reason: str) -> Section:
    return Section(
        number="5",
        title=TITLE,
        rows=[Row(measure="metrics batches → control plane", result=f"NOT MEASURED: {reason}")],
        notes=["Slot kept: events/s through the ingest endpoint vs a bare asyncpg COPY floor."],
    )


def run(*, quick: bool) -> Section:
    """Run `python -m bench.ingest --json` if it exists and tabulate it against its COPY floor."""
    if importlib.util.find_spec("bench.ingest") is None:
        return _slot("metrics ingest is not built yet (no bench/ingest.py)")
    args = [sys.executable, "-m", "bench.ingest", "--json"] + (["--batches", "40"] if quick else [])
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=600, check=True)
        results = json.loads(done.stdout.strip().splitlines()[-1])
        floor = float(results["floor_copy"]["events_per_s"])
        rows = [
            Row(
                measure=f"{label} ({results.get('events', '?')} events)",
                result=f"{float(results[key]['events_per_s']):,.0f} events/s",
                floor=f"{floor:,.0f} events/s" if key != "floor_copy" else "",
                ratio=ratio(float(results[key]["events_per_s"]), floor),
                target="≥ 0.5x COPY" if key == "http" else "",
                verdict=verdict(float(results[key]["events_per_s"]) >= TARGET * floor)
                if key == "http"
                else "",
            )
            for key, label in (
                ("floor_copy", "floor: bare COPY of the same rows"),
                ("service", "ingest service in-process"),
                ("http", "signed batches via plugyard serve"),
            )
        ]
    except subprocess.CalledProcessError as exc:
        last = (exc.stderr or "").strip().splitlines()[-1:] or ["no output"]
        return _slot(f"bench.ingest failed (exit {exc.returncode}: {last[0][:160]})")
    except (subprocess.SubprocessError, OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        return _slot(f"bench.ingest did not produce figures ({type(exc).__name__})")
    return Section(
        number="5",
        title=TITLE,
        rows=rows,
        notes=[
            "From `python -m bench.ingest --json`: the same events as signed batches through the "
            "real HTTP ingest path, and through the ingest service in-process, vs a bare COPY."
        ],
    )

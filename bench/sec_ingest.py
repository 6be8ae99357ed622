"""Section 5: metrics ingest. A slot until ingest exists; then the figures of `bench.ingest`.

`bench/ingest.py` (events/s of signed batches through `plugyard serve`, through the service
in-process, and a bare COPY floor) is written together with the ingest endpoint. When it is
present this section runs it as a subprocess with `--rounds` (the three interleaved, order
rotated each round, each run on a fresh database) and reports the medians from its JSON; when
it is absent or fails, the section says so and prints no number.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from typing import Any

from bench.report import Row, Section, verdict

TITLE = "Metrics ingest"
TARGET = 0.5  # issue 10: events/s through the real ingest path >= 0.5x a bare COPY
LABELS = {
    "floor_copy": "floor: bare COPY of the same rows",
    "service": "ingest service in-process",
    "http": "signed batches via plugyard serve",
}


def _slot(reason: str) -> Section:
    return Section(
        number="5",
        title=TITLE,
        rows=[Row(measure="metrics batches → control plane", result=f"NOT MEASURED: {reason}")],
        notes=["Slot kept: events/s through the ingest endpoint vs a bare asyncpg COPY floor."],
    )


def _cpu(cpu: dict[str, float]) -> str:
    return " / ".join(f"{cpu[k]:.2f}" if k in cpu else "-" for k in ("client", "server", "postgres"))


def _section(results: dict[str, Any]) -> Section:
    floor = float(results["floor_copy"]["events_per_s"])
    rows = []
    for key, label in LABELS.items():
        figures = results[key]
        rows.append(
            Row(
                measure=f"{label} ({results['events']} events)",
                result=f"{float(figures['events_per_s']):,.0f} events/s",
                floor=f"{floor:,.0f} events/s" if key != "floor_copy" else "",
                ratio=f"{float(figures['ratio']):.2f}x" if key != "floor_copy" else "1.00x",
                target="≥ 0.5x COPY" if key == "http" else "",
                verdict=verdict(float(figures["ratio"]) >= TARGET) if key == "http" else "",
            )
        )
    rows.append(
        Row(
            measure="CPU s per run: bench process / plugyard serve / PostgreSQL backends",
            result="; ".join(f"{key.split('_')[0]} {_cpu(results[key]['cpu_s'])}" for key in LABELS),
        )
    )
    per_round = "; ".join(
        f"{n} ({' → '.join(one['order'])}): service {one['ratio']['service']:.2f}x, "
        f"http {one['ratio']['http']:.2f}x"
        for n, one in enumerate(results["per_round"], 1)
    )
    tails = ", ".join(f"{key} {results[key]['compaction_tail_s']:.2f} s" for key in ("service", "http"))
    return Section(
        number="5",
        title=TITLE,
        rows=rows,
        notes=[
            f"From `python -m bench.ingest --json --rounds {results['rounds']}`: the same events as "
            "signed batches through the real HTTP ingest path, and through the ingest service "
            "in-process, vs a bare COPY; each round runs the three back to back, order rotated, each "
            "on a fresh clone of a migrated database. Medians; the ratio column is the median of the "
            "per-round ratios to that round's floor. The clock stops when no delta is left to "
            "compact; every total is checked after it. Per round (order): "
            f"{per_round}. Compaction tail after the last answer (median): {tails}. CPU seconds "
            "while the clock ran (/proc): the bench process (the COPY client, the service and its "
            "compactor in-process, or the HTTP client), the `plugyard serve` process tree, and the "
            "PostgreSQL backends of the run's database (not the shared WAL writer or checkpointer)."
        ],
    )


def run(*, quick: bool, rounds: int) -> Section:
    """Run `python -m bench.ingest --json --rounds N` if it exists and tabulate it against its floor."""
    if importlib.util.find_spec("bench.ingest") is None:
        return _slot("metrics ingest is not built yet (no bench/ingest.py)")
    args = [sys.executable, "-m", "bench.ingest", "--json", "--rounds", str(rounds)]
    args += ["--batches", "40"] if quick else []
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=300 + 300 * rounds, check=True)
        return _section(json.loads(done.stdout.strip().splitlines()[-1]))
    except subprocess.CalledProcessError as exc:
        last = (exc.stderr or "").strip().splitlines()[-1:] or ["no output"]
        return _slot(f"bench.ingest failed (exit {exc.returncode}: {last[0][:160]})")
    except (subprocess.SubprocessError, OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        return _slot(f"bench.ingest did not produce figures ({type(exc).__name__})")

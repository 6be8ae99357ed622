"""Results, the stdout table and the markdown block for docs/benchmarks.md."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess

import msgspec


class Row(msgspec.Struct, kw_only=True):
    """One measured line: a result next to its floor from the same run."""

    measure: str
    result: str
    floor: str = ""
    ratio: str = ""
    target: str = ""
    verdict: str = ""


class Section(msgspec.Struct, kw_only=True):
    """A numbered section: its rows plus free-form notes (curves, EXPLAIN verdicts)."""

    number: str
    title: str
    rows: list[Row] = []
    notes: list[str] = []


COLUMNS = ("measure", "result", "floor", "ratio", "target", "verdict")


def ms(value: float | None) -> str:
    """Milliseconds with a sensible precision."""
    if value is None or value != value:
        return "-"
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"


def rps(value: float) -> str:
    """Requests per second."""
    return f"{value / 1000:.2f}k req/s" if value >= 1000 else f"{value:.0f} req/s"


def ratio(result: float, floor: float) -> str:
    """`result / floor` as `0.93x`."""
    return f"{result / floor:.2f}x" if floor else "-"


def verdict(ok: bool | None) -> str:
    """`met` / `MISSED` / blank when there is no target."""
    return "" if ok is None else ("met" if ok else "MISSED")


def machine() -> dict[str, str]:
    """nproc, CPU model, memory and kernel of this machine."""
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
        with open("/proc/meminfo") as f:
            kib = int(next(ln.split()[1] for ln in f if ln.startswith("MemTotal")))
        memory = f"{kib / 1024 / 1024:.1f} GiB"
    except OSError:
        memory = "?"
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "memory": memory,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def _widths(rows: list[Row]) -> list[int]:
    cells = [COLUMNS, *[tuple(getattr(r, c) for c in COLUMNS) for r in rows]]
    return [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]


def text_table(sections: list[Section]) -> str:
    """The human table printed to stdout."""
    out: list[str] = []
    for section in sections:
        out.append(f"\n== {section.number}. {section.title}")
        if section.rows:
            widths = _widths(section.rows)
            out.append("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)))
            out.append("  ".join("-" * w for w in widths))
            for row in section.rows:
                cells = (getattr(row, c) for c in COLUMNS)
                out.append("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)))
        out.extend(f"  {note}" for note in section.notes)
    return "\n".join(out)


def markdown(sections: list[Section], header: dict[str, str]) -> str:
    """The block to paste into docs/benchmarks.md."""
    out = [f"### Run of {header['date']}", ""]
    out += [f"- **{k}**: {v}" for k, v in header.items() if k != "date"]
    for section in sections:
        out += ["", f"#### {section.number}. {section.title}", ""]
        if section.rows:
            out.append("| " + " | ".join(COLUMNS) + " |")
            out.append("|" + "---|" * len(COLUMNS))
            for row in section.rows:
                out.append("| " + " | ".join(getattr(row, c).replace("|", "\\|") for c in COLUMNS) + " |")
            out.append("")
        for note in section.notes:
            if note.startswith("|"):
                out.append(note)
                continue
            if out and out[-1].startswith("|"):
                out.append("")  # end the table before the next paragraph line
            out.append(f"{note}  ")
    return "\n".join(out) + "\n"


def now() -> str:
    """The run's date and time (UTC)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def git_state() -> str:
    """HEAD commit and how many files differ from it (other work may be in progress)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], capture_output=True, text=True, timeout=10
        ).stdout.splitlines()
    except OSError:
        return "?"
    return f"{head or '?'}" + (f" + {len(dirty)} uncommitted file(s)" if dirty else " (clean)")


def loadavg() -> str:
    """The 1/5/15-minute load averages."""
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"

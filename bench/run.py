"""`python -m bench`: run the benchmark sections and print a table (and a markdown block).

Everything it needs is started here on loopback ports (its own database, workerd processes,
control plane, floor servers) and stopped at the end. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench import load, report
from bench.procs import workerd_version
from bench.report import Section
from bench.stack import Stack

ALL = ("1", "1b", "2", "3", "4", "5", "6", "7")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--sections", default=",".join(ALL), help="comma-separated, e.g. 1,2 (default: all)")
    p.add_argument("--quick", action="store_true", help="short smoke run of every section (~2 min)")
    p.add_argument("--seconds", type=float, help="seconds per load run (default 5; quick 2)")
    p.add_argument("--rounds", type=int, help="interleaved rounds per target (default 4; quick 1)")
    p.add_argument("--connections", type=int, default=32, help="load concurrency (default 32)")
    p.add_argument(
        "--instr-requests", type=int, help="requests per count in section 1b (default 1500; quick 200)"
    )
    p.add_argument("--cold", type=int, help="new versions for the cold path (default 200; quick 30)")
    p.add_argument("--publishes", type=int, help="publishes and rollbacks (default 100; quick 10)")
    p.add_argument("--scale", help="tenant counts for section 6 (default 100,1000,10000; quick 100,1000)")
    p.add_argument("--markdown", type=Path, help="also write the markdown block to this file")
    p.add_argument(
        "--no-install", action="store_true", help="do not apt-get install missing wrk/hey/valgrind"
    )
    p.add_argument("--workdir", type=Path, help="keep logs and gateway storage here (default: a temp dir)")
    return p


def _plan(args: argparse.Namespace) -> list[tuple[str, Callable[[Stack], Section]]]:
    from bench import (
        sec_cold,
        sec_control,
        sec_ingest,
        sec_instr,
        sec_pool,
        sec_publish,
        sec_scale,
        sec_scale_db,
        sec_warm,
    )

    quick = args.quick
    seconds = args.seconds or (2.0 if quick else 5.0)
    rounds = args.rounds or (1 if quick else 4)
    conns = args.connections
    sizes = [int(s) for s in (args.scale or ("100,1000" if quick else "100,1000,10000")).split(",")]
    wanted = [s.strip() for s in args.sections.split(",") if s.strip()]
    plan: dict[str, list[tuple[str, Callable[[Stack], Section]]]] = {
        "1": [("1", lambda st: sec_warm.run(st, seconds=seconds, rounds=rounds, connections=conns))],
        "1b": [
            (
                "1b",
                lambda st: sec_instr.run(
                    st, requests=args.instr_requests or (200 if quick else 1500), rounds=rounds
                ),
            )
        ],
        "2": [("2", lambda st: sec_cold.run(st, count=args.cold or (30 if quick else 200)))],
        "3": [("3", lambda st: sec_publish.run(st, count=args.publishes or (10 if quick else 100)))],
        "4": [("4", lambda st: sec_control.run(st, seconds=seconds, rounds=rounds, connections=conns))],
        "5": [("5", lambda st: sec_ingest.run(quick=quick, rounds=rounds))],
        "6": [
            (
                "6a",
                lambda st: sec_scale.run(
                    st,
                    sizes=sizes,
                    probes=100 if quick else 500,
                    push_samples=10 if quick else 30,
                    seconds=seconds,
                ),
            ),
            ("6b", lambda st: sec_scale_db.run(st, sizes=sizes, probes=30 if quick else 100)),
        ],
        "7": [("7", lambda st: sec_pool.run(st, seconds=seconds, rounds=rounds, connections=conns))],
    }
    unknown = [w for w in wanted if w not in plan]
    if unknown:
        raise SystemExit(f"unknown section(s): {unknown}; choose from {', '.join(ALL)}")
    return [item for w in ALL if w in wanted for item in plan[w]]


def main(argv: list[str] | None = None) -> int:
    """Run the selected sections; returns 1 if any section failed to run (never for a missed target)."""
    args = _parser().parse_args(argv)
    plan = _plan(args)
    tools = (*load.TOOLS, "valgrind") if any(number == "1b" for number, _ in plan) else load.TOOLS
    load.ensure_tools(install=not args.no_install, tools=tools)
    header = {
        "date": report.now(),
        **report.machine(),
        "workerd": workerd_version(),
        "load tools": load.tool_versions(tools),
        "command": ("python -m bench " + shlex.join(sys.argv[1:] if argv is None else argv)).strip(),
        "code": report.git_state(),
        "load average": report.loadavg(),
        "mode": "QUICK smoke run: one short round, figures not meaningful" if args.quick else "full",
    }
    print("Plugyard benchmarks: " + ", ".join(f"{k}: {v}" for k, v in header.items()), flush=True)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="plugyard-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"[bench] logs and gateway storage under {workdir}", flush=True)
    stack = Stack(workdir)
    sections: list[Section] = []
    failed = False
    started = time.monotonic()
    try:
        for number, step in plan:
            t0 = time.monotonic()
            print(f"[bench] section {number} ...", flush=True)
            try:
                section = step(stack)
            except Exception as exc:  # report and go on: one broken section must not hide the rest
                failed = True
                traceback.print_exc()
                section = Section(
                    number=number, title="(failed)", notes=[f"FAILED: {type(exc).__name__}: {exc}"]
                )
            section.notes.append(f"(section took {time.monotonic() - t0:.0f} s)")
            sections.append(section)
            print(report.text_table([section]), flush=True)
    finally:
        stack.close()
    header["duration"] = f"{time.monotonic() - started:.0f} s"
    # The harness itself keeps ~2 cores busy, so only the figure at start shows other work.
    header["load average"] += f" at start (other work on the box); {report.loadavg()} at end"
    block = report.markdown(sections, header)
    print("\n\n----- markdown for docs/benchmarks.md -----\n" + block, flush=True)
    if args.markdown:
        args.markdown.write_text(block)
    return 1 if failed else 0

"""`plugyard gateway pool`: run the supervised gateway pool in the foreground (docs/operations.md)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from msgspec.structs import replace

from plugyard.gateway.supervisor import PoolSettings, Supervisor


def cmd_pool(args: argparse.Namespace) -> int:
    """Start the pool and supervise it until SIGINT/SIGTERM; prints the status every minute."""
    settings = PoolSettings.from_env()
    if args.processes is not None:
        settings = replace(settings, processes=args.processes)
    if args.listen:
        settings = replace(settings, listen=args.listen)
    if args.isolate_budget is not None:
        settings = replace(settings, isolate_budget=args.isolate_budget)
    storage = args.storage_dir or os.environ.get("PLUGYARD_GATEWAY_STORAGE_DIR")
    secret = os.environ.get("PLUGYARD_GATEWAY_SECRET", "")
    if not storage:
        raise ValueError("set PLUGYARD_GATEWAY_STORAGE_DIR (or --storage-dir): the gateway's durable state")
    if not secret:
        raise ValueError("PLUGYARD_GATEWAY_SECRET is not set: the gateway would refuse every push")
    storage_dir = Path(storage)
    storage_dir.mkdir(parents=True, exist_ok=True)
    supervisor = Supervisor(
        settings,
        storage_dir=storage_dir,
        secret=secret,
        log_file=sys.stderr.buffer,
        control_plane_url=os.environ.get("PLUGYARD_CONTROL_PLANE_URL") or None,
        name=os.environ.get("PLUGYARD_GATEWAY_NAME", "gateway"),
    )
    supervisor.start()
    done = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    print(json.dumps(supervisor.status()), flush=True)
    try:
        while not done.wait(60):
            print(json.dumps(supervisor.status()), flush=True)
    finally:
        supervisor.stop()
    return 0


def add_parser(gateway: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `plugyard gateway pool`."""
    p = gateway.add_parser(
        "pool",
        help="run K supervised workerd processes on one socket (PLUGYARD_GATEWAY_PROCESSES, _LISTEN, "
        "_ISOLATE_BUDGET, _PROBE_INTERVAL_S, _PROBE_DEADLINE_S, _STORAGE_DIR; PLUGYARD_CONTROL_PLANE_URL)",
    )
    p.add_argument("--processes", type=int, help="serving processes (default: the number of cores)")
    p.add_argument("--listen", help="host:port of the shared socket (default 127.0.0.1:8787)")
    p.add_argument("--isolate-budget", type=int, help="recycle a process past this many isolates (2000)")
    p.add_argument("--storage-dir", help="the Durable Objects' SQLite directory")
    p.set_defaults(func=cmd_pool)

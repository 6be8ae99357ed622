"""Section 1b: warm path as user-space instructions per request, counted by valgrind's callgrind.

Wall-clock throughput (section 1) swings with CPU steal on this shared, virtualised box; the
instructions one request costs in workerd's own process do not. The floor front workerd
(bench/floors/front.capnp) and two gateways run under `valgrind --tool=callgrind`; per target
the counters are zeroed (`callgrind_control -z`), `hey -n N -c 1` sends N requests one at a
time, a dump is taken (`callgrind_control -d`) and its total divided by N. Kernel time (socket
I/O, system calls) is not counted, nor anything outside the server process.
"""

from __future__ import annotations

import re
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

from bench import load, pushes
from bench.procs import FLOORS, Workerd, free_port, stop_process
from bench.report import Row, Section, ratio, verdict
from bench.stack import Stack
from plugyard.gateway.process import WORKERD_BIN, GatewayProcess
from plugyard.metrics.schemas import INGEST_PATH

HOST = "warm.bench.test"
TARGET = 0.9
BINDING = "static service binding (floor)"
LOADER = "bare LOADER.get, warm (floor)"
BARE = "gateway → warm plugin, metrics off"
GATEWAY = "gateway → warm plugin (as deployed: metrics and plugin logs on)"
# Metrics flush interval of the deployed gateway under callgrind. A flush (seal, sign, hand to
# the outbox, POST) costs a few million instructions: every 2 s (the default) at the ~150
# requests/s workerd manages under callgrind, it added 10-20k instructions to each request,
# at the ~8k requests/s of a real run ~0.3k. Scaled by the slowdown, the flush falls outside
# the counted windows.
FLUSH_MS = 120_000
VALGRIND = (
    "valgrind",
    "--tool=callgrind",
    "--smc-check=all-non-file",  # V8 writes and rewrites JIT code in anonymous memory
    "--dump-instr=no",
    "--collect-jumps=no",
)
START_TIMEOUT_S = 180.0  # workerd starts in ~1 s, under callgrind in 30-120 s on this box
STOP_GRACE_S = 15.0
WARMUP = 300


class Callgrind:
    """Runs workerd under callgrind through a wrapper script, with files kept under `workdir`."""

    def __init__(self, workdir: Path) -> None:
        """Write the wrapper (`workdir`/vgworkerd): GatewayProcess takes one executable path."""
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.prefix = f"--vgdb-prefix={self.dir / 'vgdb'}"
        real = WORKERD_BIN.resolve()
        command = [*VALGRIND, self.prefix, f"--callgrind-out-file={self.dir}/callgrind.%p", str(real)]
        self.wrapper = self.dir / "vgworkerd"
        self.wrapper.write_text("#!/bin/sh\nexec " + shlex.join(command) + ' "$@"\n')
        self.wrapper.chmod(0o755)

    def _control(self, option: str, pid: int) -> None:
        out = subprocess.run(
            ["callgrind_control", self.prefix, option, str(pid)], capture_output=True, text=True, timeout=60
        )
        if out.returncode != 0 or "Error" in out.stdout + out.stderr:
            raise RuntimeError(f"callgrind_control {option} {pid}: {out.stdout[-300:]} {out.stderr[-300:]}")

    def zero(self, pid: int) -> None:
        """Reset the process's counters (vgdb runs the command before it returns)."""
        for dump in self.dir.glob(f"callgrind.{pid}.*"):
            dump.unlink()
        self._control("-z", pid)

    def dump(self, pid: int) -> int:
        """Dump the counters; returns the instructions (Ir) counted since the last `zero`."""
        self._control("-d", pid)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            dumps = sorted(self.dir.glob(f"callgrind.{pid}.*"), key=lambda p: int(p.suffix[1:]))
            if dumps:
                text = dumps[-1].read_text(errors="replace")
                total = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
                if total:
                    for dump in dumps:
                        dump.unlink()
                    return int(total.group(1))
            time.sleep(0.1)
        raise RuntimeError(f"no callgrind dump from process {pid}")


def _hey(url: str, n: int, host: str | None) -> None:
    """`hey -n n -c 1`: n requests one at a time; raises unless all of them answered 200."""
    cmd = ["hey", "-n", str(n), "-c", "1", *(["-host", host] if host else []), url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60 + n).stdout
    if not re.search(rf"\[200\]\s+{n} responses", out):
        raise RuntimeError(f"hey {url}: not {n} responses with status 200:\n{out[-600:]}")


def _alive(pids: list[int]) -> list[int]:
    """The pids that still exist, zombies left aside (`ps`)."""
    out = subprocess.run(
        ["ps", "-o", "pid=,stat=", "-p", ",".join(map(str, pids))], capture_output=True, text=True
    )
    return [
        int(f[0]) for f in (ln.split() for ln in out.stdout.splitlines()) if f and not f[1].startswith("Z")
    ]


def run(stack: Stack, *, requests: int, rounds: int) -> Section:
    """Start the floor front and two gateways under callgrind, warm them, count `rounds` times."""
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is missing: `apt-get install -y valgrind`")
    code = (FLOORS / "plugin.js").read_text()
    cg = Callgrind(stack.workdir / "callgrind")
    # The deployed gateway sends metrics and plugin logs to the run's control plane, as in
    # section 1 (it ingests from a separate process: its own work is not counted here).
    ingest_url = f"http://127.0.0.1:{stack.control_plane.port}{INGEST_PATH}"
    front = Workerd("front.capnp", stack.log("callgrind-front"), experimental=True, binary=cg.wrapper)

    def make_gateway(
        name: str, ingest_url: str | None = None, env: dict[str, str] | None = None
    ) -> GatewayProcess:
        return GatewayProcess(
            port=free_port(),
            storage_dir=stack.workdir / name,
            secret=stack.secret,
            log=stack.log(name),
            workerd=cg.wrapper,
            ingest_url=ingest_url,
            env=env,
        )

    gateways = {
        BARE: make_gateway("callgrind-gateway-no-metrics"),
        GATEWAY: make_gateway(
            "callgrind-gateway",
            ingest_url=ingest_url,
            env={"PLUGYARD_METRICS_FLUSH_MS": str(FLUSH_MS)},
        ),
    }
    counts: dict[str, list[float]] = {}
    try:
        front.start(timeout_s=START_TIMEOUT_S)
        assert front.proc is not None
        for process in gateways.values():
            process.start(timeout_s=START_TIMEOUT_S)
            pushes.push_plugin(process.url, stack.secret, "warm", "prod", f"{HOST}/*", "hello", code)
        targets: dict[str, tuple[int, str, str | None]] = {
            BINDING: (front.proc.pid, front.url + "/binding/x", None),
            LOADER: (front.proc.pid, front.url + "/loader/x?id=warm", None),
            **{name: (gw.proc.pid, gw.url + "/x", HOST) for name, gw in gateways.items() if gw.proc},
        }
        for _pid, url, host in targets.values():
            _hey(url, WARMUP, host)  # past V8's tier-up and the first metrics flush
        counts = {name: [] for name in targets}
        names = list(targets)
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                pid, url, host = targets[name]
                cg.zero(pid)
                _hey(url, requests, host)
                counts[name].append(cg.dump(pid) / requests)
    finally:
        # SIGTERM to all at once (valgrind exits cleanly: final dump, vgdb FIFOs removed), then
        # wait; SIGKILL what is left after the grace period.
        started = [p for p in (front.proc, *(g.proc for g in gateways.values())) if p]
        procs = [p for p in started if p.poll() is None]
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in procs:
            stop_process(proc, grace_s=max(0.1, deadline - time.monotonic()))
        for gateway in gateways.values():
            gateway.stop()  # removes its generated config
        for out in cg.dir.glob("callgrind.*"):
            out.unlink()
    left = _alive([p.pid for p in started]) if started else []
    if left:
        raise RuntimeError(f"callgrind processes still running after stop: {left}")
    return _section(counts, requests=requests, rounds=rounds)


def _k(value: float) -> str:
    return f"{value / 1000:.0f}k"


def _section(counts: dict[str, list[float]], *, requests: int, rounds: int) -> Section:
    med = {name: load.median(values) for name, values in counts.items()}
    section = Section(number="1b", title="Warm path: instructions per request (callgrind)")
    for name, values in counts.items():
        spread = (max(values) - min(values)) / med[name] * 100 if med[name] else 0.0
        floors = [
            f"{ratio(med[name], med[f])} {tag}" for f, tag in ((BINDING, "binding"), (LOADER, "LOADER.get"))
        ]
        is_gateway = name == GATEWAY
        binding_ratio = med[BINDING] / med[name] if med[name] else 0.0
        section.rows.append(
            Row(
                measure=f"{name} (hey -n {requests} -c 1)",
                result=f"{_k(med[name])} instr/req (±{spread / 2:.1f} %: {', '.join(_k(v) for v in values)})",
                floor="" if name == BINDING else f"{_k(med[BINDING])} / {_k(med[LOADER])}",
                ratio="1.00x" if name == BINDING else ", ".join(floors if name != LOADER else floors[:1]),
                target="binding/gateway ≥ 0.9x" if is_gateway else "",
                verdict=f"{binding_ratio:.3f}x {verdict(binding_ratio >= TARGET)}" if is_gateway else "",
            )
        )
    section.notes.append(
        "INSTRUCTIONS, NOT WALL-CLOCK: user-space instructions (callgrind Ir) executed by the "
        "server's workerd process per request, all its threads; kernel time (socket I/O, "
        "system calls, scheduling), cache misses, waits and the load client are not counted. "
        f"{rounds} interleaved round(s), order rotated each round, of {requests} requests one at "
        f"a time after {WARMUP} warm-up requests per target; medians, the spread is half the "
        "range of the rounds (GC and JIT tiering move counts by ±2-3 %). Ratios are result/floor "
        "(>1x: more instructions); the verdict applies section 1's 0.9x target to "
        "binding/gateway instructions. The floors share one front workerd; each gateway has the "
        "plugin pushed straight to it; the deployed one sends metrics and plugin logs to the "
        f"run's control plane, with its metrics flush every {FLUSH_MS // 1000} s instead of 2 s: "
        "under callgrind workerd serves ~50x fewer requests per second, and a 2-s flush then "
        "added 10-20k instructions to each request (~0.3k at a real run's rate)."
    )
    return section

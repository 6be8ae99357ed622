"""One workerd process of a gateway pool (see supervisor.py): launch, output, probe, stop.

A member is either the `state` process (holds the Durable Objects' SQLite storage, serves no
plugin traffic, reachable by the others on its loopback debug port) or a `serve` process (serves
the pool's shared listening socket and has its own loopback admin socket for probes).
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, NamedTuple

import httpx

from plugyard import signing
from plugyard.gateway import config

PROCESS_PATH = "/_plugyard/process"
DRAIN_PATH = "/_plugyard/process/drain"
# How much longer than the pause before SIGTERM a draining process holds requests: the margin for a
# busy supervisor or process (a held request waits at most pause + margin).
HOLD_MARGIN_S = 1.0


class Flight(NamedTuple):
    """A plugin dispatch a serving process announced and has not settled (src/pool.js)."""

    seq: int
    plugin_id: str


# The dispatch lines a member keeps (newest last). Only a hang needs them, so they are kept as
# raw bytes and parsed then; a dispatch still in flight further back than this is not one that
# blocks the process now (the culprit's line is the last, or among the last, it wrote).
DISPATCH_TAIL_BYTES = 1 << 20
# The stdout reader sleeps this long after each read so that it takes the dispatch lines in
# batches: reading each line as workerd writes it woke the supervisor ~10,000 times a second per
# serving process (measured: 18 ms of supervisor CPU per 1,000 requests, 16% of a core at K=2 on
# 2 cores, taken from the serving processes). A hang is detected seconds later, so the delay is
# harmless; the pipe is enlarged (PIPE_BYTES) so that workerd never waits on it meanwhile.
READ_PAUSE_S = 0.01
PIPE_BYTES = 1 << 20
_START = b"plugyard:> "
_SETTLE = b"plugyard:< "


def in_flight(lines: bytes) -> dict[int, Flight]:
    """The dispatches announced in `lines` (dispatch lines only) and not settled in them."""
    flights: dict[int, Flight] = {}
    for raw in lines.splitlines():
        if raw.startswith(_START):
            seq, _, plugin_id = raw[len(_START) :].partition(b" ")
            with contextlib.suppress(ValueError):
                flights[int(seq)] = Flight(int(seq), plugin_id.decode(errors="replace"))
        elif raw.startswith(_SETTLE):
            with contextlib.suppress(ValueError):
                flights.pop(int(raw[len(_SETTLE) :]), None)
    return flights


class Member:
    """A workerd process in the pool."""

    def __init__(
        self,
        *,
        name: str,
        role: str,
        workdir: Path,
        cfg: config.GatewayConfig,
        probe_port: int,
        storage_dir: Path,
        env: dict[str, str],
        secret: str,
        log: IO[bytes] | None,
        pass_fds: tuple[int, ...] = (),
        extra_args: tuple[str, ...] = (),
    ) -> None:
        """Describe the process; `start` launches it."""
        self.name = name
        self.role = role
        self.probe_port = probe_port
        self.secret = secret
        self.log = log
        self.state = "new"  # new → starting → ready → draining | killed → exited
        self.isolates = 0
        self._dispatches: collections.deque[bytes] = collections.deque()
        self._dispatch_bytes = 0
        self.last_probe_ok = 0.0
        self.started_at = 0.0
        self._lock = threading.Lock()
        path = config.write(cfg, workdir / f"{name}.capnp")
        storage_dir.mkdir(parents=True, exist_ok=True)
        self._argv = [*config.command(cfg, path, storage_dir=storage_dir), *extra_args]
        self._env = env
        self._pass_fds = pass_fds
        self.proc: subprocess.Popen[bytes] | None = None
        self._client = httpx.Client(timeout=2.0)

    @property
    def pid(self) -> int | None:
        """The OS process id (None before start)."""
        return None if self.proc is None else self.proc.pid

    def alive(self) -> bool:
        """Whether the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Launch workerd; its stdout is read by a thread (dispatch lines; the rest goes to the log)."""
        self.state = "starting"
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(  # noqa: S603 - a fixed command line of our own
            self._argv,
            env=self._env,
            stdout=subprocess.PIPE,
            stderr=self.log or subprocess.DEVNULL,
            pass_fds=self._pass_fds,
            start_new_session=True,
        )
        threading.Thread(target=self._read, name=f"{self.name}-stdout", daemon=True).start()

    def _read(self) -> None:
        # workerd writes console.log lines synchronously, so this must keep up: a full pipe would
        # block the gateway. It reads big chunks and keeps the dispatch lines as bytes, parsed
        # only when asked (`flights`): per-line Python work here cost the pool a third of its
        # throughput (bench section 7). Other lines (rare) go to the log.
        assert self.proc is not None
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        set_pipe_size = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux only
        if set_pipe_size is not None:
            with contextlib.suppress(OSError):  # capped by /proc/sys/fs/pipe-max-size; 64 KiB suffices
                fcntl.fcntl(fd, set_pipe_size, PIPE_BYTES)
        partial = b""
        while chunk := os.read(fd, PIPE_BYTES):
            data = partial + chunk
            cut = data.rfind(b"\n") + 1
            lines, partial = data[:cut], data[cut:]
            if not lines:
                continue
            if lines.count(b"\n") != (b"\n" + lines).count(b"\nplugyard:"):
                lines = self._log_other_lines(lines)
            self._keep(lines)
            time.sleep(READ_PAUSE_S)

    def _log_other_lines(self, lines: bytes) -> bytes:
        """Write the lines that are not dispatch lines to the log; return the dispatch lines."""
        kept: list[bytes] = []
        for raw in lines.splitlines(keepends=True):
            if raw.startswith((_START, _SETTLE)):
                kept.append(raw)
            elif self.log is not None:
                self.log.write(f"[{self.name}] ".encode() + raw)
        if self.log is not None:
            self.log.flush()
        return b"".join(kept)

    def _keep(self, lines: bytes) -> None:
        with self._lock:
            self._dispatches.append(lines)
            self._dispatch_bytes += len(lines)
            while self._dispatch_bytes > DISPATCH_TAIL_BYTES and len(self._dispatches) > 1:
                self._dispatch_bytes -= len(self._dispatches.popleft())

    @property
    def flights(self) -> dict[int, Flight]:
        """Dispatches in flight, as far as the kept tail of dispatch lines tells."""
        with self._lock:
            lines = b"".join(self._dispatches)
        return in_flight(lines)

    def probe(self, timeout_s: float) -> dict[str, object] | None:
        """Ask the process about itself; None if it does not answer in time (or at all)."""
        # Serving processes answer the signed per-process probe; the state process its liveness.
        serve = self.role == "serve"
        headers = signing.sign(self.secret, method="GET", path=PROCESS_PATH) if serve else {}
        path = PROCESS_PATH if serve else "/_plugyard/health"
        try:
            response = self._client.get(
                f"http://127.0.0.1:{self.probe_port}{path}", headers=headers, timeout=timeout_s
            )
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        body: dict[str, object] = response.json()
        self.last_probe_ok = time.monotonic()
        isolates = body.get("isolates")
        if isinstance(isolates, int):
            self.isolates = isolates
        return body

    def wait_ready(self, timeout_s: float) -> bool:
        """Poll until the process answers its probe; False if it exited or timed out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                return False
            if self.probe(0.5) is not None:
                if self.role == "serve":
                    self._warm_up()
                self.state = "ready"
                return True
            time.sleep(0.05)
        return False

    def _warm_up(self) -> None:
        # One data-plane request (it matches no route) loads the pushed state from the state
        # process now, so this process can serve from memory even if the state process is down
        # when its first real request arrives.
        with contextlib.suppress(httpx.HTTPError):
            self._client.get(
                f"http://127.0.0.1:{self.probe_port}/",
                headers={"host": "warm-up.plugyard.invalid"},
                timeout=5.0,
            )

    def last_flight(self) -> Flight | None:
        """The most recent dispatch still in flight: the attributed culprit of a hang."""
        flights = self.flights
        return flights[max(flights)] if flights else None

    def terminate(self, grace_s: float) -> None:
        """SIGTERM, then SIGKILL after `grace_s` (a looping process ignores SIGTERM)."""
        if self.proc is None:
            return
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc.wait(timeout=10)
        self.state = "exited"

    def drain(self, pause_s: float) -> bool:
        """Stop the process without cutting off a request a client has sent.

        workerd's SIGTERM closes its listening socket, finishes in-flight requests with
        `Connection: close` and closes every *idle* connection at once, so a keep-alive client
        that sends its next request just then sees the connection closed unanswered. So first the
        process is told to hold each data-plane request it receives (`POST /_plugyard/process/drain`,
        src/pool.js) for `pause_s` + HOLD_MARGIN_S; after `pause_s` (long enough for every busy
        keep-alive connection to have sent its next request) SIGTERM finds those connections with
        a request in flight and closes them cleanly. If the notice fails, SIGTERM is sent anyway.
        The supervisor steers new connections away from this process first (supervisor.py).

        Returns:
            Whether the process took the notice (False: it got a plain SIGTERM).
        """
        self.state = "draining"
        body = json.dumps({"hold_ms": round((pause_s + HOLD_MARGIN_S) * 1000)}).encode()
        headers = signing.sign(self.secret, method="POST", path=DRAIN_PATH, body=body)
        try:
            response = self._client.post(
                f"http://127.0.0.1:{self.probe_port}{DRAIN_PATH}", content=body, headers=headers, timeout=2.0
            )
            held = response.status_code == 200
        except httpx.HTTPError:
            held = False
        if held:
            time.sleep(pause_s)
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
        return held

    def kill(self) -> None:
        """SIGKILL now."""
        if self.proc is not None and self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def rss_bytes(self) -> int | None:
        """Resident memory of the process (Linux /proc), or None."""
        if self.pid is None:
            return None
        try:
            fields = Path(f"/proc/{self.pid}/statm").read_text().split()
        except OSError:
            return None
        return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")

    def close(self) -> None:
        """Release the probe client."""
        self._client.close()

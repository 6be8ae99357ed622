"""The gateway pool: K workerd processes serving one listening socket, supervised.

docs/operations.md, "Gateway pool", explains it for operators. In short:

- One *state* process holds the Durable Objects (pushed state, previews, metrics outbox) in
  `storage_dir`; it serves no plugin traffic. SQLite files cannot be shared between processes
  (workerd aborts on SQLITE_BUSY), so the others reach these objects over its loopback debug port.
- K *serve* processes (default: the number of cores). Each serves its own *slot*: a listening
  socket bound with SO_REUSEPORT to the pool's address, created here and passed down
  (`workerd serve --socket-fd`). The slots live as long as the pool (a replacement inherits its
  predecessor's slot, so connections waiting in its queue are never reset), and a classic BPF
  program on the group (`Steering`) spreads new connections at random over the slots whose
  process is ready. (One socket shared by all processes let one process accept most
  connections: measured, bench section 7.) Each also has a loopback admin socket the
  supervisor probes every `probe_interval_s`.
- A process that exits is restarted. One that does not answer its probe within
  `probe_deadline_s` is hung (an endless loop in a plugin: self-hosted workerd does not enforce
  `cpuMs`): a replacement starts, the hung one is killed (SIGTERM, SIGKILL after 1 s), and the
  last plugin dispatch it announced before the hang is quarantined (member.py, `last_flight`).
- A serving process past `isolate_budget` loaded isolates is recycled: a fresh process starts
  on the spare slot and new connections are steered to it; once the old slot's accept queue is
  empty, the old process is told to hold its requests (`Member.drain`) and gets SIGTERM while
  they are held, so workerd finishes every one with `Connection: close` and exits: no client
  sees a connection closed under a request it sent.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import socket
import struct
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import IO, Any

import msgspec
import structlog

from plugyard.gateway import config
from plugyard.gateway.member import Member
from plugyard.gateway.reports import QuarantineReporter, parse_plugin_id

log = structlog.get_logger(__name__)


class PoolSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Knobs of the pool (PLUGYARD_GATEWAY_* variables; docs/operations.md)."""

    processes: int = msgspec.field(default_factory=lambda: os.cpu_count() or 1)
    listen: str = "127.0.0.1:8787"
    probe_interval_s: float = 1.0
    probe_deadline_s: float = 2.0
    isolate_budget: int = 2000
    drain_timeout_s: float = 30.0
    drain_hold_s: float = 0.3
    term_grace_s: float = 1.0
    start_timeout_s: float = 20.0

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> PoolSettings:
        """Settings from the environment.

        Reads PLUGYARD_GATEWAY_PROCESSES, _LISTEN, _PROBE_INTERVAL_S, _PROBE_DEADLINE_S,
        _ISOLATE_BUDGET, _DRAIN_TIMEOUT_S and _DRAIN_HOLD_S (defaults as above).
        """
        env = os.environ if environ is None else environ
        default = cls()
        processes = int(env.get("PLUGYARD_GATEWAY_PROCESSES", "0")) or default.processes
        if processes < 1:
            raise ValueError("PLUGYARD_GATEWAY_PROCESSES must be at least 1")
        return cls(
            processes=processes,
            listen=env.get("PLUGYARD_GATEWAY_LISTEN", default.listen),
            probe_interval_s=float(env.get("PLUGYARD_GATEWAY_PROBE_INTERVAL_S", default.probe_interval_s)),
            probe_deadline_s=float(env.get("PLUGYARD_GATEWAY_PROBE_DEADLINE_S", default.probe_deadline_s)),
            isolate_budget=int(env.get("PLUGYARD_GATEWAY_ISOLATE_BUDGET", default.isolate_budget)),
            drain_timeout_s=float(env.get("PLUGYARD_GATEWAY_DRAIN_TIMEOUT_S", default.drain_timeout_s)),
            drain_hold_s=float(env.get("PLUGYARD_GATEWAY_DRAIN_HOLD_S", default.drain_hold_s)),
        )


# Classic BPF for SO_ATTACH_REUSEPORT_CBPF (linux/filter.h): the program returns the index of the
# socket in the reuseport group (the order of listen()) that gets a new connection.
_SO_ATTACH_REUSEPORT_CBPF = 51
_BPF_LD_W_ABS = 0x20
_BPF_ALU_MOD_K = 0x94
_BPF_JEQ_K = 0x15
_BPF_RET_K = 0x06
_SKF_AD_RANDOM = -0x1000 + 56
_TCP_INFO_LEN = 104


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k & 0xFFFFFFFF)


class Steering:
    """K+1 listening slots on one address (SO_REUSEPORT) and which of them get new connections.

    The slots are never closed while the pool runs, so their order in the kernel's reuseport
    group (the order of `listen`) is stable and the BPF program can name them by index. A
    connection already in a slot's accept queue stays there until a process on that slot accepts
    it, whatever the program says later.
    """

    def __init__(self, host: str, port: int, count: int) -> None:
        """Bind and listen `count` sockets on host:port (port 0: a free one, the same for all)."""
        self.slots: list[socket.socket] = []
        for _ in range(count):
            sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            port = sock.getsockname()[1]
            sock.listen(1024)
            sock.set_inheritable(True)
            self.slots.append(sock)
        self.active: tuple[int, ...] = ()
        self.unsteered = False  # True where the kernel refused the steering program

    def steer(self, active: list[int]) -> None:
        """New connections go to a random one of the `active` slots (ignored when empty)."""
        chosen = tuple(sorted(set(active)))
        if not chosen or chosen == self.active:
            return
        program = [_insn(_BPF_LD_W_ABS, 0, 0, _SKF_AD_RANDOM), _insn(_BPF_ALU_MOD_K, 0, 0, len(chosen))]
        for position, slot in enumerate(chosen[:-1]):
            program += [_insn(_BPF_JEQ_K, 0, 1, position), _insn(_BPF_RET_K, 0, 0, slot)]
        program.append(_insn(_BPF_RET_K, 0, 0, chosen[-1]))
        code = ctypes.create_string_buffer(b"".join(program))
        fprog = struct.pack("HxxxxxxP", len(program), ctypes.addressof(code))
        try:
            self.slots[0].setsockopt(socket.SOL_SOCKET, _SO_ATTACH_REUSEPORT_CBPF, fprog)
        except OSError as exc:
            # Not Linux (or a kernel without reuseport BPF): the kernel's own reuseport choice
            # applies; the pool still serves and recycles, only the spreading is not ours.
            if not self.unsteered:
                log.warning("gateway_steering_unavailable", error=str(exc))
            self.unsteered = True
        self.active = chosen

    def queued(self, slot: int) -> int:
        """Connections waiting in the slot's accept queue (TCP_INFO tcpi_unacked of a listener).

        0 where the platform has no Linux TCP_INFO: a recycle then does not wait for the queue.
        """
        tcp_info = getattr(socket, "TCP_INFO", None)
        if tcp_info is None or self.unsteered:
            return 0
        info = self.slots[slot].getsockopt(socket.IPPROTO_TCP, tcp_info, _TCP_INFO_LEN)
        queued: int = struct.unpack_from("8B5I", info)[12]
        return queued

    def close(self) -> None:
        """Close every slot."""
        for sock in self.slots:
            sock.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Supervisor:
    """Runs and watches the pool; thread-based, so it works from sync code and tests."""

    def __init__(
        self,
        settings: PoolSettings,
        *,
        storage_dir: Path,
        secret: str,
        env: dict[str, str] | None = None,
        log_file: IO[bytes] | None = None,
        control_plane_url: str | None = None,
        name: str = "gateway",
    ) -> None:
        """Describe the pool; `start` launches it.

        Args:
            settings: the knobs.
            storage_dir: the Durable Objects' directory (the state process's only).
            secret: PLUGYARD_GATEWAY_SECRET (signs probes and quarantine reports).
            env: extra environment for every workerd (e.g. PLUGYARD_INGEST_URL).
            log_file: where workerd's output goes (prefixed with the member's name).
            control_plane_url: where quarantines are reported (`/v1/gateway/quarantines`).
            name: this gateway's name in reports.
        """
        self.settings = settings
        self.storage_dir = storage_dir
        self.secret = secret
        self.log_file = log_file
        self.name = name
        self.events: deque[dict[str, Any]] = deque(maxlen=200)
        self._env = {**os.environ, **(env or {}), "PLUGYARD_GATEWAY_SECRET": secret}
        self._workdir = Path(tempfile.mkdtemp(prefix="plugyard-pool-"))
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._serial = 0
        self._steering: Steering | None = None
        self._slot_of: dict[str, int] = {}  # serving member name → slot
        self._spare = settings.processes  # the slot a recycle starts its fresh process on
        self._debug_port = _free_port()
        self.state: Member | None = None
        self.members: list[Member] = []  # serving members, ready or starting
        self._draining: list[tuple[Member, float]] = []
        self._hung: list[Member] = []  # being killed; `stop` makes sure they are gone
        self._recycling = False
        self.reporter = QuarantineReporter(secret, control_plane_url, name, self._admin_targets)

    @property
    def url(self) -> str:
        """Base URL of the pool's address."""
        assert self._steering is not None
        host, port = self._steering.slots[0].getsockname()[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> None:
        """Bind the slots, start the state process and K serving processes, then watch them.

        Raises:
            RuntimeError: a process did not come up.
        """
        host, _, port = self.settings.listen.rpartition(":")
        k = self.settings.processes
        self._steering = Steering(host.strip("[]"), int(port), k + 1)
        self._steering.steer(list(range(k)))  # before anyone connects: the spare gets nothing
        self.state = self._spawn("state")
        for slot in range(k):
            self.members.append(self._spawn("serve", slot))
        for target in (self._monitor, self.reporter.run):
            threading.Thread(target=target, name=target.__name__, daemon=True).start()
        for member in self.members:
            threading.Thread(target=self._probe_loop, args=(member,), daemon=True).start()

    def _steer(self) -> None:
        """Steer new connections to the slots of the ready serving processes."""
        with self._lock:
            ready = [self._slot_of[m.name] for m in self.members if m.state == "ready"]
            if self._steering is not None:
                self._steering.steer(ready)

    def _spawn(self, role: str, slot: int = 0) -> Member:
        self._serial += 1
        name = f"{role}-{self._serial}"
        env = {**self._env, "PLUGYARD_GATEWAY_ROLE": role}
        if role == "state":
            port = _free_port()
            cfg = config.GatewayConfig(http=config.Listen(address=f"127.0.0.1:{port}"))
            member = Member(
                name=name, role=role, workdir=self._workdir, cfg=cfg, probe_port=port,
                storage_dir=self.storage_dir, env=env, secret=self.secret, log=self.log_file,
                extra_args=("--debug-port", f"127.0.0.1:{self._debug_port}"),
            )  # fmt: skip
        else:
            assert self._steering is not None
            fd = self._steering.slots[slot].fileno()
            port = _free_port()
            cfg = config.GatewayConfig(
                http=config.Listen(fd=fd), admin=config.Listen(address=f"127.0.0.1:{port}")
            )
            env["PLUGYARD_GATEWAY_STATE_ADDRESS"] = f"127.0.0.1:{self._debug_port}"
            member = Member(
                name=name, role=role, workdir=self._workdir, cfg=cfg, probe_port=port,
                # Never used (objects live in the state process), but the config names a disk.
                storage_dir=self._workdir / f"{name}-storage", env=env, secret=self.secret,
                log=self.log_file, pass_fds=(fd,),
            )  # fmt: skip
        if role == "serve":
            self._slot_of[name] = slot
        member.start()
        if not member.wait_ready(self.settings.start_timeout_s):
            member.kill()
            raise RuntimeError(f"gateway process {name} did not start (see the gateway log)")
        self._event("started", member, **({"slot": slot} if role == "serve" else {}))
        return member

    def _event(self, kind: str, member: Member, **fields: Any) -> None:
        entry = {"event": kind, "member": member.name, "pid": member.pid, "at": time.time(), **fields}
        self.events.append(entry)
        log.info("gateway_process_" + kind, member=member.name, pid=member.pid, **fields)

    def _admin_targets(self) -> list[str]:
        # The state process first (it stores quarantines), then every serving process.
        state = [] if self.state is None else [f"http://127.0.0.1:{self.state.probe_port}"]
        return state + [f"http://127.0.0.1:{m.probe_port}" for m in list(self.members) if m.state == "ready"]

    def _probe_loop(self, member: Member) -> None:
        interval, deadline = self.settings.probe_interval_s, self.settings.probe_deadline_s
        while not self._stopping.is_set() and member.state == "ready":
            started = time.monotonic()
            answer = member.probe(deadline)
            if member.state != "ready" or self._stopping.is_set():
                return
            if answer is None and member.alive():
                self._replace_hung(member)
                return
            if answer is not None and member.isolates >= self.settings.isolate_budget:
                self._recycle(member)
            time.sleep(max(0.0, interval - (time.monotonic() - started)))

    def _replace_hung(self, member: Member) -> None:
        culprit = member.last_flight()
        member.state = "killed"
        self._event("hung", member, culprit=None if culprit is None else culprit.plugin_id)
        with self._lock:
            if member in self.members:
                self.members.remove(member)
            self._hung.append(member)
        self._steer()  # new connections avoid its slot until the replacement answers
        threading.Thread(target=member.terminate, args=(self.settings.term_grace_s,), daemon=True).start()
        if culprit is not None and (parsed := parse_plugin_id(culprit.plugin_id)) is not None:
            at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            reason = (
                f"it hung gateway process {member.name} at {at}: no answer within "
                f"{self.settings.probe_deadline_s:g} s after this version's request was dispatched"
            )
            self.reporter.submit(*parsed, reason=reason)
        self._add_serving(self._slot_of[member.name])

    def _add_serving(self, slot: int) -> Member | None:
        """Start a serving process on `slot` (it inherits the connections queued there)."""
        if self._stopping.is_set():
            return None
        try:
            fresh = self._spawn("serve", slot)
        except RuntimeError as exc:
            log.error("gateway_process_start_failed", error=str(exc))
            return None
        if not self._adopt(fresh):
            return None
        self._steer()
        threading.Thread(target=self._probe_loop, args=(fresh,), daemon=True).start()
        return fresh

    def _adopt(self, fresh: Member) -> bool:
        """Record a process started meanwhile, unless `stop` began while it started.

        `stop` sets the flag, then collects the processes to stop under the lock: a process
        recorded here under the lock before that is stopped by `stop`; one that started after it
        is stopped here. Without this, a replacement that came up during `stop` outlived the pool.
        """
        with self._lock:
            if not self._stopping.is_set():
                if fresh.role == "state":
                    self.state = fresh
                else:
                    self.members.append(fresh)
                return True
        fresh.state = "exited"
        fresh.terminate(self.settings.term_grace_s)
        fresh.close()
        return False

    def _recycle(self, member: Member) -> None:
        with self._lock:
            if self._recycling or member.state != "ready":
                return
            self._recycling = True
        try:
            # The fresh process answers (on the spare slot) before the old one stops accepting.
            old_slot, spare = self._slot_of[member.name], self._spare
            if self._add_serving(spare) is None:
                return
            deadline = time.monotonic() + self.settings.drain_timeout_s
            with self._lock:  # from members to draining at once: `stop` always sees it
                if member in self.members:
                    self.members.remove(member)
                self._spare = old_slot
                self._draining.append((member, deadline))
            self._steer()  # no new connection reaches the old slot from now on
            assert self._steering is not None
            # The old process still accepts what was queued on its slot; then nothing more comes.
            while self._steering.queued(old_slot) and time.monotonic() < deadline and member.alive():
                time.sleep(0.02)
            queued = self._steering.queued(old_slot)
            held = member.drain(self.settings.drain_hold_s)
            self._event("recycled", member, isolates=member.isolates, held=held, queued=queued)
        finally:
            self._recycling = False

    def _monitor(self) -> None:
        while not self._stopping.wait(0.2):
            for member, deadline in list(self._draining):
                if not member.alive():
                    self._draining.remove((member, deadline))
                    member.state = "exited"
                    self._event("drained", member)
                elif time.monotonic() > deadline:
                    member.kill()
            for member in list(self.members):
                if member.state == "ready" and not member.alive():
                    member.state = "exited"
                    assert member.proc is not None
                    self._event("exited", member, code=member.proc.returncode)
                    with self._lock:
                        self.members.remove(member)
                    self._steer()
                    self._add_serving(self._slot_of[member.name])
            state = self.state
            if state is not None and state.state == "ready" and not state.alive():
                self._event("exited", state, code=state.proc.returncode if state.proc else None)
                try:
                    fresh = self._spawn("state")
                except RuntimeError as exc:
                    log.error("gateway_process_start_failed", error=str(exc))
                else:
                    self._adopt(fresh)

    def status(self) -> dict[str, Any]:
        """What runs: each serving member's pid, isolates, RSS and in-flight count."""
        return {
            "url": self.url,
            "state": None if self.state is None else {"pid": self.state.pid, "alive": self.state.alive()},
            "serving": [
                {
                    "name": m.name,
                    "pid": m.pid,
                    "state": m.state,
                    "isolates": m.isolates,
                    "rss_bytes": m.rss_bytes(),
                    "in_flight": len(m.flights),
                    "slot": self._slot_of.get(m.name),
                }
                for m in list(self.members)
            ],
            "draining": [m.name for m, _ in list(self._draining)],
        }

    def alive(self) -> bool:
        """Whether the pool serves (a state process and at least one serving process run)."""
        return self.state is not None and self.state.alive() and any(m.alive() for m in list(self.members))

    def stop(self) -> None:
        """Stop watching, then stop every process (SIGTERM, SIGKILL after the grace period)."""
        self._stopping.set()
        self.reporter.stop()
        with self._lock:  # see `_adopt`: nothing is recorded after this
            hung = list(self._hung)
            everyone = [*self.members, *(m for m, _ in self._draining)]
            if self.state is not None:
                everyone.append(self.state)
        for member in hung:  # a looping process ignores SIGTERM: no grace period
            member.kill()
            member.close()
        for member in everyone:
            member.state = "exited"
            member.terminate(self.settings.term_grace_s)
            member.close()
        if self._steering is not None:
            self._steering.close()
        shutil.rmtree(self._workdir, ignore_errors=True)

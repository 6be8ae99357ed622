"""Generate the gateway's workerd configuration (the only source of it: never hand-edit one).

The gateway Worker (loader_worker/src/*.js) runs under workerd from a Cap'n Proto config that
this module writes. Tests, `plugyard dev`, the benchmarks, the node tests
(loader_worker/test/workerd.js), the systemd units and the container image all obtain it from
here, so there is one source of truth. docs/deploy.md shows the self-hosted use.

API (stable; other modules and tools call it):

    from plugyard.gateway.config import GatewayConfig, Listen, write, command

    cfg = GatewayConfig(
        http=Listen(address="127.0.0.1:8787"),   # or Listen(fd=3): an inherited listening socket
        admin=Listen(address="127.0.0.1:9001"),  # optional extra socket (per-process health)
        storage_dir=Path("/var/lib/plugyard/gateway"),  # None: pass --directory-path instead
    )
    path = write(cfg, Path("/run/plugyard/gateway.capnp"))
    argv = command(cfg, path)                   # workerd serve ... --experimental [--socket-fd ...]
    subprocess.Popen(argv, pass_fds=(3,), env={..., "PLUGYARD_GATEWAY_SECRET": secret})

- `Listen(address="host:port")` binds an address (port 0 picks a free one; add
  `control_fd=N` to `command` to have workerd report it as a JSON line on fd N).
  `Listen(fd=N)` makes `command` pass `--socket-fd <name>=N`: workerd serves a listening socket
  the caller created and passed down (e.g. one socket shared by several workerd processes).
- Sockets are named `http` (`HTTP_SOCKET`) and `admin` (`ADMIN_SOCKET`); both serve the same
  gateway Worker, so `/_plugyard/health` on the admin socket answers for that one process.
- `storage_dir` is the Durable Objects' SQLite directory (the disk service `storage`); it must
  exist. With None the config names no path and the command line must give
  `--directory-path storage=DIR` (`command` does when `storage_dir` is set on the call).
- Every `.js` file in `source_dir` becomes a module (`index.js` is the main module), embedded by
  a path relative to the written file, so the config may be written anywhere on the same
  filesystem but must be regenerated if the checkout moves.
- Runtime values come from the process environment (`ENV_BINDINGS`: PLUGYARD_GATEWAY_SECRET,
  PLUGYARD_INGEST_URL, ...), never from the file: the file holds no secret. A new binding is
  one row in `ENV_BINDINGS` (or `GatewayConfig.extra_env_bindings` for a caller's own).
- `from_env()` reads PLUGYARD_GATEWAY_LISTEN, PLUGYARD_GATEWAY_SOCKET_FD,
  PLUGYARD_GATEWAY_ADMIN_LISTEN and PLUGYARD_GATEWAY_STORAGE_DIR (what `plugyard gateway config`
  uses; its flags override them).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import msgspec

from plugyard.settings import PROJECT_ROOT

LOADER_WORKER_DIR = PROJECT_ROOT / "loader_worker"
SOURCE_DIR = LOADER_WORKER_DIR / "src"
WORKERD_BIN = LOADER_WORKER_DIR / "node_modules" / ".bin" / "workerd"
COMPATIBILITY_DATE = "2026-11-01"
HTTP_SOCKET = "http"
ADMIN_SOCKET = "admin"
STORAGE_DIRECTORY = "storage"
DEFAULT_ADDRESS = "127.0.0.1:8787"

# (binding, environment variable): values the gateway reads at runtime (docs/operations.md).
ENV_BINDINGS: tuple[tuple[str, str], ...] = (
    ("SIGNING_SECRET", "PLUGYARD_GATEWAY_SECRET"),
    ("NONCE_WINDOW_S", "PLUGYARD_NONCE_WINDOW_S"),
    ("PREVIEW_DOMAIN", "PLUGYARD_PREVIEW_DOMAIN"),
    ("INGEST_URL", "PLUGYARD_INGEST_URL"),
    ("METRICS_FLUSH_MS", "PLUGYARD_METRICS_FLUSH_MS"),
    ("METRICS_MAX_PENDING", "PLUGYARD_METRICS_MAX_PENDING"),
    # Egress and the gateway pool (docs/operations.md, "Egress" and "Gateway pool").
    ("EGRESS_PRIVATE_NETWORKS", "PLUGYARD_EGRESS_PRIVATE"),
    ("GATEWAY_ROLE", "PLUGYARD_GATEWAY_ROLE"),
    ("STATE_ADDRESS", "PLUGYARD_GATEWAY_STATE_ADDRESS"),
)

# (binding, class, unique key): SQLite-backed Durable Objects. deploy/cloudflare/wrangler.jsonc
# lists the same classes (tests/integration/test_gateway_config.py checks both agree).
DURABLE_OBJECTS: tuple[tuple[str, str, str], ...] = (
    ("REGISTRY", "Registry", "plugyard-registry"),
    ("PREVIEWS", "Previews", "plugyard-previews"),
    ("METRICS_OUTBOX", "MetricsOutbox", "plugyard-metrics-outbox"),
)


class Listen(msgspec.Struct, frozen=True, kw_only=True):
    """How a socket is provided: an address to bind, or an inherited listening fd."""

    address: str | None = None
    fd: int | None = None

    def __post_init__(self) -> None:
        """Exactly one of `address` and `fd`."""
        if (self.address is None) == (self.fd is None):
            raise ValueError("a socket needs exactly one of address and fd")
        if self.fd is not None and self.fd < 0:
            raise ValueError("a socket fd must be >= 0")
        if self.address is not None and ":" not in self.address:
            raise ValueError(f"socket address {self.address!r} must be host:port")


class GatewayConfig(msgspec.Struct, frozen=True, kw_only=True):
    """What a generated workerd config contains (see the module docstring)."""

    http: Listen = msgspec.field(default_factory=lambda: Listen(address=DEFAULT_ADDRESS))
    admin: Listen | None = None
    storage_dir: Path | None = None
    source_dir: Path = SOURCE_DIR
    compatibility_date: str = COMPATIBILITY_DATE
    # Additional (binding, environment variable) pairs for a caller's own runtime values.
    extra_env_bindings: tuple[tuple[str, str], ...] = ()


def _string(value: str) -> str:
    # A JSON string literal is a valid Cap'n Proto text literal for the characters we emit.
    return json.dumps(value)


def _modules(source_dir: Path, relative_to: Path) -> list[str]:
    files = sorted(p.name for p in source_dir.glob("*.js"))
    if "index.js" not in files:
        raise FileNotFoundError(f"{source_dir} has no index.js")
    files.remove("index.js")
    lines = []
    for name in ["index.js", *files]:
        rel = os.path.relpath(source_dir / name, relative_to)
        lines.append(f"    (name = {_string(name)}, esModule = embed {_string(rel)}),")
    return lines


def _socket(name: str, listen: Listen) -> str:
    # With an fd the address is a placeholder: `--socket-fd` overrides it (see `command`).
    address = listen.address if listen.address is not None else "127.0.0.1:0"
    return f'    (name = {_string(name)}, address = {_string(address)}, http = (), service = "gateway"),'


def render(cfg: GatewayConfig, *, path: Path) -> str:
    """The config text for a file that will live at `path` (embeds are relative to it).

    Args:
        cfg: what to generate.
        path: where the text will be written.

    Returns:
        Cap'n Proto text for `workerd serve`.
    """
    source_dir = cfg.source_dir.resolve()
    here = path.resolve().parent
    storage_dir = cfg.storage_dir.resolve() if cfg.storage_dir is not None else None
    disk = f"(path = {_string(str(storage_dir))}, writable = true)" if storage_dir else "(writable = true)"
    sockets = [_socket(HTTP_SOCKET, cfg.http)]
    if cfg.admin is not None:
        sockets.append(_socket(ADMIN_SOCKET, cfg.admin))
    bindings = ['    (name = "LOADER", workerLoader = ()),', '    (name = "INGEST", service = "ingest"),']
    # Plugins' allowed egress (src/outbound.js), and the pool's link to the state process.
    bindings += [
        '    (name = "EGRESS", service = "egress"),',
        '    (name = "EGRESS_PRIVATE", service = "egress-private"),',
        '    (name = "STATE_PORT", workerdDebugPort = void),',
    ]
    bindings += [
        f"    (name = {_string(b)}, durableObjectNamespace = {_string(c)})," for b, c, _ in DURABLE_OBJECTS
    ]
    bindings += [
        f"    (name = {_string(b)}, fromEnvironment = {_string(v)}),"
        for b, v in (*ENV_BINDINGS, *cfg.extra_env_bindings)
    ]
    namespaces = [
        f"    (className = {_string(c)}, uniqueKey = {_string(k)}, enableSql = true),"
        for _, c, k in DURABLE_OBJECTS
    ]
    return "\n".join(
        [
            "# GENERATED by `plugyard gateway config` (platform/plugyard/gateway/config.py).",
            "# Do not edit: regenerate. Run with `workerd serve <this file> --experimental` (the",
            "# Worker Loader binding is experimental); runtime values come from the environment.",
            "",
            'using Workerd = import "/workerd/workerd.capnp";',
            "",
            "const config :Workerd.Config = (",
            "  services = [",
            '    (name = "gateway", worker = .gateway),',
            f"    (name = {_string(STORAGE_DIRECTORY)}, disk = {disk}),",
            "    # Where metrics batches go (PLUGYARD_INGEST_URL, usually loopback or a private network).",
            '    (name = "ingest", network = (allow = ["public", "private", "local"])),',
            "    # Plugins' allowlisted egress: public addresses only, unless PLUGYARD_EGRESS_PRIVATE=1.",
            '    (name = "egress", network = (allow = ["public"])),',
            '    (name = "egress-private", network = (allow = ["public", "private", "local"])),',
            "  ],",
            "  sockets = [",
            *sockets,
            "  ],",
            ");",
            "",
            "const gateway :Workerd.Worker = (",
            "  modules = [",
            *_modules(source_dir, here),
            "  ],",
            f"  compatibilityDate = {_string(cfg.compatibility_date)},",
            "  # ctx.exports (loader globalOutbound / tails entrypoints) is on by default from 2025-11-17.",
            "  compatibilityFlags = [],",
            "  bindings = [",
            *bindings,
            "  ],",
            "  durableObjectNamespaces = [",
            *namespaces,
            "  ],",
            f"  durableObjectStorage = (localDisk = {_string(STORAGE_DIRECTORY)}),",
            ");",
            "",
        ]
    )


def write(cfg: GatewayConfig, path: Path) -> Path:
    """Write the config to `path` atomically (a concurrent reader never sees half a file).

    Returns:
        `path`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render(cfg, path=path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".gateway-", suffix=".capnp")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(tmp, path)
    return path


def command(
    cfg: GatewayConfig,
    config_path: Path,
    *,
    workerd: Path | None = None,
    control_fd: int | None = None,
    storage_dir: Path | None = None,
) -> list[str]:
    """The `workerd serve` command line for a config written by `write`.

    Args:
        cfg: the config that was written (its fds become `--socket-fd` flags).
        config_path: where it was written.
        workerd: the binary (default: PLUGYARD_WORKERD_BIN or loader_worker's node_modules).
        control_fd: have workerd report each socket's port as JSON lines on this fd.
        storage_dir: override the storage directory (`--directory-path storage=DIR`).

    Returns:
        argv; the caller passes the listed fds down (`pass_fds`) and the environment.
    """
    binary = workerd or Path(os.environ.get("PLUGYARD_WORKERD_BIN", str(WORKERD_BIN)))
    argv = [str(binary), "serve", str(config_path), "--experimental"]
    for name, listen in ((HTTP_SOCKET, cfg.http), (ADMIN_SOCKET, cfg.admin)):
        if listen is not None and listen.fd is not None:
            argv += ["--socket-fd", f"{name}={listen.fd}"]
    if storage_dir is not None:
        argv += ["--directory-path", f"{STORAGE_DIRECTORY}={storage_dir.resolve()}"]
    if control_fd is not None:
        argv += ["--control-fd", str(control_fd)]
    return argv


def from_env(environ: Mapping[str, str] | None = None) -> GatewayConfig:
    """Build a config from PLUGYARD_GATEWAY_* variables (defaults: 127.0.0.1:8787, no admin).

    Raises:
        ValueError: a malformed value.
    """
    env = os.environ if environ is None else environ
    fd = env.get("PLUGYARD_GATEWAY_SOCKET_FD")
    http = Listen(fd=int(fd)) if fd else Listen(address=env.get("PLUGYARD_GATEWAY_LISTEN", DEFAULT_ADDRESS))
    admin = env.get("PLUGYARD_GATEWAY_ADMIN_LISTEN")
    storage = env.get("PLUGYARD_GATEWAY_STORAGE_DIR")
    return GatewayConfig(
        http=http,
        admin=Listen(address=admin) if admin else None,
        storage_dir=Path(storage) if storage else None,
    )

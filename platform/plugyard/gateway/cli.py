"""`plugyard gateway ...`: generate the gateway's workerd config, or run workerd with it (docs/deploy.md)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from msgspec.structs import replace

from plugyard.gateway import config


def _settings(args: argparse.Namespace) -> config.GatewayConfig:
    cfg = config.from_env()
    if args.listen:
        cfg = replace(cfg, http=config.Listen(address=args.listen))
    if args.socket_fd is not None:
        cfg = replace(cfg, http=config.Listen(fd=args.socket_fd))
    if args.admin_listen:
        cfg = replace(cfg, admin=config.Listen(address=args.admin_listen))
    if args.storage_dir:
        cfg = replace(cfg, storage_dir=Path(args.storage_dir))
    return cfg


def cmd_config(args: argparse.Namespace) -> int:
    """Print or write the generated workerd config; `--print-command` adds the command line."""
    cfg = _settings(args)
    if args.output is None:
        # Embedded paths are relative to where the text will live: the working directory.
        sys.stdout.write(config.render(cfg, path=Path.cwd() / "gateway.capnp"))
        return 0
    path = config.write(cfg, Path(args.output))
    if args.print_command:
        print(" ".join(config.command(cfg, path)))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Generate the config and replace this process with workerd (systemd units, containers).

    The config goes to `--output`, else $RUNTIME_DIRECTORY (systemd's RuntimeDirectory=), else a
    new temporary folder. workerd inherits the environment (PLUGYARD_GATEWAY_SECRET, ...) and
    this process id, so signals from a supervisor reach it directly.
    """
    cfg = _settings(args)
    if cfg.storage_dir is None:
        raise ValueError("set PLUGYARD_GATEWAY_STORAGE_DIR (or --storage-dir): the gateway's durable state")
    if not os.environ.get("PLUGYARD_GATEWAY_SECRET"):
        raise ValueError("PLUGYARD_GATEWAY_SECRET is not set: the gateway would refuse every push")
    cfg.storage_dir.mkdir(parents=True, exist_ok=True)
    runtime = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    folder = Path(runtime) if runtime else Path(tempfile.mkdtemp(prefix="plugyard-gateway-"))
    path = config.write(cfg, Path(args.output) if args.output else folder / "gateway.capnp")
    argv = config.command(cfg, path)
    if not Path(argv[0]).exists():
        raise FileNotFoundError(
            f"{argv[0]} is missing: run `npm ci` in loader_worker/ (or set PLUGYARD_WORKERD_BIN)"
        )
    sys.stdout.flush()
    os.execv(argv[0], argv)  # noqa: S606 - our own generated command line


def _socket_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--listen", help="HTTP socket address host:port (default 127.0.0.1:8787)")
    p.add_argument("--socket-fd", type=int, help="serve an inherited listening socket (workerd --socket-fd)")
    p.add_argument("--admin-listen", help="an extra per-process socket host:port (health checks)")
    p.add_argument("--storage-dir", help="the Durable Objects' SQLite directory")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `plugyard gateway` and its subcommands."""
    p = sub.add_parser("gateway", help="the gateway (workerd) configuration")
    gateway = p.add_subparsers(dest="gateway_command", required=True)
    p = gateway.add_parser(
        "config",
        help="generate the workerd config (settings: PLUGYARD_GATEWAY_LISTEN, _SOCKET_FD, _ADMIN_LISTEN, "
        "_STORAGE_DIR; flags override)",
    )
    p.add_argument("-o", "--output", help="write here (atomically) instead of printing; embeds are relative")
    _socket_flags(p)
    p.add_argument("--print-command", action="store_true", help="with --output: print the workerd command")
    p.set_defaults(func=cmd_config)
    p = gateway.add_parser(
        "run",
        help="generate the config and exec workerd (same settings as `config`; needs "
        "PLUGYARD_GATEWAY_STORAGE_DIR and PLUGYARD_GATEWAY_SECRET)",
    )
    p.add_argument(
        "-o", "--output", help="where to write the config (default $RUNTIME_DIRECTORY or a temp dir)"
    )
    _socket_flags(p)
    p.set_defaults(func=cmd_run)
    from plugyard.gateway import pool_cli

    pool_cli.add_parser(gateway)

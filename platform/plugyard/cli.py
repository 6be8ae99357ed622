"""The `plugyard` command: migrate, serve, dev, plugins push."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import structlog

from plugyard import db, log, settings


async def _migrate(url: str, migrations_dir: Path) -> list[str]:
    conn = await db.connect(url)
    try:
        return await db.migrate(conn, migrations_dir)
    finally:
        await conn.close()


async def _bootstrap_admin(url: str) -> str | None:
    from plugyard.tenants.service import bootstrap_admin

    conn = await db.connect(url)
    try:
        return await bootstrap_admin(conn)
    finally:
        await conn.close()


async def _secrets_without_key(url: str) -> bool:
    from plugyard.vault.repository import VaultRepository

    conn = await db.connect(url)
    try:
        return await VaultRepository(conn).any_current()
    finally:
        await conn.close()


def cmd_migrate(_: argparse.Namespace) -> int:
    """Apply pending migrations."""
    cfg = settings.from_env()
    log.configure(log_format="auto", level=cfg.log_level)
    applied = asyncio.run(_migrate(cfg.database.url, cfg.migrations_dir))
    print(
        f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else " (up to date)")
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the control plane under granian (migrating first unless told not to)."""
    from granian import Granian
    from granian.constants import Interfaces, Loops

    cfg = settings.from_env()
    log.configure(log_format=cfg.log_format, level=cfg.log_level)
    if not args.no_migrate:
        asyncio.run(_migrate(cfg.database.url, cfg.migrations_dir))
    from plugyard.vault.sealing import Sealer

    # A malformed key fails here, not on the first push. Stored secrets without a key only
    # warn: tenants without secrets keep being served; pushes that need a secret fail visibly.
    if Sealer.from_setting(cfg.secrets_key) is None and asyncio.run(_secrets_without_key(cfg.database.url)):
        structlog.get_logger(__name__).warning(
            "secrets_key_missing",
            detail="secrets are stored but PLUGYARD_SECRETS_KEY is not set; their pushes will fail",
        )
    if cfg.admin_token is None:
        token = asyncio.run(_bootstrap_admin(cfg.database.url))
        if token is not None:
            # Shown once on the terminal, never logged: only its digest is stored.
            print(f"\nPlugyard admin token (shown once, store it now): {token}\n", flush=True)
    Granian(
        "plugyard.asgi:app",
        address=cfg.host,
        port=cfg.port,
        interface=Interfaces.ASGI,
        workers=cfg.workers,
        # uvloop when installed (a dependency off Windows).
        loop=Loops.auto,
        # On SIGTERM in-flight requests finish, then the lifespan closes the reconciler and the
        # pool; a worker still busy after this long is killed (its transactions roll back).
        workers_kill_timeout=cfg.shutdown_timeout_s,
        respawn_failed_workers=True,
        log_access=False,
    ).serve()
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    """Print (and follow) a plugin's logs (PLUGYARD_API_URL, PLUGYARD_TOKEN)."""
    from plugyard.metrics.follow import run

    return run(
        args.target,
        api=args.api or os.environ.get("PLUGYARD_API_URL", "http://127.0.0.1:8000"),
        token=args.token or os.environ.get("PLUGYARD_TOKEN"),
        follow=args.follow,
        limit=args.limit,
        interval_s=args.interval,
    )


def cmd_dev(args: argparse.Namespace) -> int:
    """Run the whole platform locally."""
    from plugyard.dev import run

    return run(
        api_port=args.api_port,
        gateway_port=args.gateway_port,
        home=args.home,
        gateway_processes=args.gateway_processes,
    )


def _target(args: argparse.Namespace) -> tuple[str, str, str]:
    parts = args.target.split("/") if args.target else []
    if args.target and len(parts) != 3:
        raise ValueError("the target must be TENANT/NAMESPACE/PLUGIN")
    tenant, namespace, plugin = parts or (args.tenant, args.namespace, args.plugin)
    if not (tenant and namespace and plugin):
        raise ValueError("name the plugin: TENANT/NAMESPACE/PLUGIN or --tenant, --namespace and --plugin")
    return tenant, namespace, plugin


def cmd_plugins_push(args: argparse.Namespace) -> int:
    """Upload a folder as a new version (PLUGYARD_API_URL, PLUGYARD_TOKEN)."""
    from plugyard.plugins.client import PushError, push_folder, summary

    token = os.environ.get("PLUGYARD_TOKEN")
    if not token:
        raise ValueError("PLUGYARD_TOKEN is not set (a tenant API token)")
    tenant, namespace, plugin = _target(args)
    root = Path(args.dir)
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder")
    try:
        answer = push_folder(
            api=os.environ.get("PLUGYARD_API_URL", "http://127.0.0.1:8000"),
            token=token,
            tenant=tenant,
            namespace=namespace,
            plugin=plugin,
            root=root,
            main=args.main,
            activate=args.activate,
        )
    except PushError as exc:
        print(f"plugyard: {exc}", file=sys.stderr)
        return 1
    print("\n".join(summary(answer)))
    return 0


def cmd_doctor(_: argparse.Namespace) -> int:
    """Check the database, migrations, gateways, signing secret and workerd; print fixes."""
    from plugyard import doctor

    findings = asyncio.run(doctor.run_checks())
    print(doctor.report(findings))
    return 1 if any(f.level == "fail" for f in findings) else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `plugyard` console script."""
    parser = argparse.ArgumentParser(prog="plugyard", description="Plugyard control plane")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("migrate", help="apply pending database migrations (DATABASE_URL)")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser(
        "doctor", help="check the database, migrations, gateways and signing secret; print what to fix"
    )
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("serve", help="run the control-plane API (settings from PLUGYARD_* and DATABASE_URL)")
    p.add_argument("--no-migrate", action="store_true", help="do not apply migrations first")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "dev", help="run PostgreSQL (embedded unless DATABASE_URL), workerd and the API locally"
    )
    p.add_argument("--api-port", type=int, default=8000)
    p.add_argument("--gateway-port", type=int, default=8787)
    p.add_argument(
        "--gateway-processes", type=int, help="workerd processes serving the gateway port (default: cores)"
    )
    p.add_argument("--home", default=".plugyard", help="folder for local state (database, gateway storage)")
    p.set_defaults(func=cmd_dev)

    p = sub.add_parser(
        "logs", help="print a plugin's latest logs and exceptions (PLUGYARD_API_URL, PLUGYARD_TOKEN)"
    )
    p.add_argument("target", help="TENANT/NAMESPACE/PLUGIN")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new entries until Ctrl-C")
    p.add_argument("-n", "--limit", type=int, default=100, help="how many of the latest entries first")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between polls when following")
    p.add_argument("--api", help="control plane URL (default PLUGYARD_API_URL or http://127.0.0.1:8000)")
    p.add_argument("--token", help="API token (default PLUGYARD_TOKEN)")
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("plugins", help="work with plugins through the API (PLUGYARD_API_URL, PLUGYARD_TOKEN)")
    plugins = p.add_subparsers(dest="plugins_command", required=True)
    p = plugins.add_parser("push", help="upload a folder as a new version of a plugin")
    p.add_argument("dir", help="the folder: .js/.mjs, .cjs, .json, .txt/.html, .wasm, anything else as data")
    p.add_argument("target", nargs="?", help="TENANT/NAMESPACE/PLUGIN (or use the options)")
    p.add_argument("--tenant")
    p.add_argument("--namespace")
    p.add_argument("--plugin")
    p.add_argument("--main", help="the main module (default: plugyard.json's main_module, else the first)")
    p.add_argument("--activate", action="store_true", help="serve the version at once")
    p.set_defaults(func=cmd_plugins_push)

    from plugyard.experiments import cli as experiments_cli

    experiments_cli.add_parser(sub)

    from plugyard.accounts import cli as accounts_cli

    accounts_cli.add_parser(sub)

    from plugyard.gateway import cli as gateway_cli

    gateway_cli.add_parser(sub)

    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"plugyard: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result

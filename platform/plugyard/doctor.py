"""`plugyard doctor`: check a deployment and say in plain words what is wrong and how to fix it.

Checks, in order: the settings can be read; the database answers; every migration is applied
(and none was edited); each gateway answers (unsigned liveness), accepts our signature (a
signed health ping: a wrong PLUGYARD_GATEWAY_SECRET shows here) and holds the latest revision
of every namespace; a control plane is reconciling the gateways; the local workerd matches the
version pinned in loader_worker/package.json. Exit status 1 when any check failed.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import asyncpg
import httpx
import msgspec

from plugyard import db, settings
from plugyard.deployments.reconciler import RECONCILE_LOCK_CLASS, drift, lock_key
from plugyard.deployments.repository import DeploymentRepository
from plugyard.gateway.client import GatewayHealth
from plugyard.gateway.config import LOADER_WORKER_DIR, WORKERD_BIN
from plugyard.signing import sign

Level = Literal["ok", "warn", "fail"]
_CONNECT_ERRORS: tuple[type[Exception], ...] = (*db.UNAVAILABLE_ERRORS, ValueError)

_APPLIED = "SELECT version, checksum FROM schema_migrations"
_HAS_MIGRATIONS_TABLE = "SELECT to_regclass('schema_migrations') IS NOT NULL"
_LEADER = """
SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::bigint::oid AND l.objid = $2::bigint::oid
"""


class Finding(msgspec.Struct, frozen=True):
    """One check's outcome; `fix` says what to do when it is not ok."""

    level: Level
    check: str
    message: str
    fix: str | None = None


def _where(url: str) -> str:
    """host:port/database of a URL, never its password."""
    parts = urlsplit(url)
    host = parts.hostname or "(unix socket)"
    return f"{host}:{parts.port or 5432}{parts.path or ''}"


async def _database(cfg: settings.Settings) -> tuple[list[Finding], asyncpg.Connection | None]:
    where = _where(cfg.database.url)
    try:
        conn = await asyncio.wait_for(db.connect(cfg.database.url), timeout=5)
    except _CONNECT_ERRORS as exc:
        return [
            Finding(
                "fail",
                "database",
                f"cannot connect to PostgreSQL at {where}: {type(exc).__name__}: {exc}",
                "check DATABASE_URL and that the server runs and accepts this user (pg_isready -d ...)",
            )
        ], None
    findings = [Finding("ok", "database", f"PostgreSQL at {where} answers")]
    files = db.discover(cfg.migrations_dir)
    applied: dict[int, str] = {}
    if await conn.fetchval(_HAS_MIGRATIONS_TABLE):
        applied = {row["version"]: row["checksum"] for row in await conn.fetch(_APPLIED)}
    pending = [m.name for m in files if m.version not in applied]
    edited = [m.name for m in files if m.version in applied and applied[m.version] != m.checksum]
    if pending:
        findings.append(
            Finding(
                "fail",
                "migrations",
                f"{len(pending)} migration(s) not applied: {', '.join(pending)}",
                "run `plugyard migrate` (plugyard serve also migrates unless --no-migrate)",
            )
        )
    elif edited:
        findings.append(
            Finding(
                "fail",
                "migrations",
                f"applied migration(s) changed on disk since: {', '.join(edited)}",
                "restore the original files; put new changes in a new migration",
            )
        )
    else:
        findings.append(Finding("ok", "migrations", f"all {len(files)} migrations applied"))
        return findings, conn
    # Without the schema the gateway checks below cannot compare revisions.
    await conn.close()
    return findings, None


async def _gateway(
    http: httpx.AsyncClient, url: str, secret: str, conn: asyncpg.Connection | None
) -> list[Finding]:
    name = f"gateway {url}"
    try:
        live = await http.get(url + "/_plugyard/health")
    except httpx.HTTPError as exc:
        return [
            Finding(
                "fail",
                name,
                f"{url} is unreachable ({type(exc).__name__}: {exc or 'no answer'})",
                "start the gateway (systemctl start plugyard-gateway, or plugyard dev) or correct "
                "PLUGYARD_GATEWAY_URLS",
            )
        ]
    if live.status_code != 200:
        return [Finding("fail", name, f"answers HTTP {live.status_code} to /_plugyard/health", _SEE_LOG)]
    path = "/_plugyard/health"
    signed = await http.get(url + path, headers=sign(secret, method="GET", path=path))
    slug = _problem_slug(signed)
    if signed.status_code == 401 and slug == "bad-signature":
        return [
            Finding(
                "fail",
                name,
                "rejected our signed ping: the signing secret differs between the control plane "
                "and this gateway",
                "give both the same secret: PLUGYARD_GATEWAY_SECRET for the control plane and the "
                "self-hosted gateway (on Cloudflare: wrangler secret put SIGNING_SECRET), then restart",
            )
        ]
    if signed.status_code == 401 and slug == "stale-request":
        return [
            Finding(
                "fail",
                name,
                "rejected our signed ping as too old: the clocks differ by more than the replay window",
                "synchronise the clocks (NTP) of the control plane and gateway hosts",
            )
        ]
    if signed.status_code == 503 and slug == "gateway-misconfigured":
        return [
            Finding(
                "fail",
                name,
                "has no signing secret",
                "set PLUGYARD_GATEWAY_SECRET in the gateway's environment and restart it",
            )
        ]
    if signed.status_code != 200:
        return [Finding("fail", name, f"answers HTTP {signed.status_code} to a signed ping", _SEE_LOG)]
    health = msgspec.json.decode(signed.content, type=GatewayHealth)
    findings = [Finding("ok", name, f"signed ping accepted; holds {len(health.namespaces)} namespace(s)")]
    if conn is not None:
        found = drift(await DeploymentRepository(conn).latest_per_namespace(), health)
        if found.to_push or found.ahead:
            findings.append(
                Finding(
                    "warn",
                    name,
                    f"differs from the database: {len(found.missing)} namespace(s) missing, "
                    f"{len(found.behind) + len(found.other_epoch)} behind, {len(found.ahead)} ahead",
                    "a running control plane reconciles this within seconds; if it persists, check "
                    "that one runs and its log for push_failed",
                )
            )
    return findings


_SEE_LOG = "read the gateway's log (journalctl -u plugyard-gateway)"


def _problem_slug(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    kind = body.get("type", "") if isinstance(body, dict) else ""
    return str(kind).rsplit("/", 1)[-1]


async def _reconciler(conn: asyncpg.Connection, gateways: tuple[str, ...]) -> Finding:
    holder = await conn.fetchval(_LEADER, RECONCILE_LOCK_CLASS, lock_key(gateways) & 0xFFFFFFFF)
    if holder is None:
        return Finding(
            "warn",
            "reconciler",
            "no control plane is reconciling these gateways",
            "start `plugyard serve` with the same PLUGYARD_GATEWAY_URLS (unless PLUGYARD_RETRY_PUSHES=0)",
        )
    return Finding("ok", "reconciler", f"led by {holder}")


def _workerd(binary: Path) -> Finding:
    package = json.loads((LOADER_WORKER_DIR / "package.json").read_text())
    pinned = {**package.get("devDependencies", {}), **package.get("dependencies", {})}["workerd"]
    # npm version 1.YYYYMMDD.N; `workerd --version` prints the date as YYYY-MM-DD.
    date = pinned.split(".")[1]
    expected = f"{date[:4]}-{date[4:6]}-{date[6:]}"
    if not binary.exists():
        return Finding(
            "warn",
            "workerd",
            f"not installed on this host ({binary}); needed only where the gateway runs",
            "run `npm ci` in loader_worker/ (or set PLUGYARD_WORKERD_BIN)",
        )
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=10, check=False)  # noqa: S603
    version = out.stdout.strip().removeprefix("workerd ").strip()
    if version != expected:
        return Finding(
            "fail",
            "workerd",
            f"{binary} is {version or 'unknown'}, but loader_worker pins {pinned} ({expected})",
            "run `npm ci` in loader_worker/ (or point PLUGYARD_WORKERD_BIN at the pinned build)",
        )
    return Finding("ok", "workerd", f"{version} (pinned {pinned})")


async def run_checks(
    environ: Mapping[str, str] | None = None, *, workerd: Path | None = None
) -> list[Finding]:
    """Every check, in order; never raises for what it checks."""
    try:
        cfg = settings.from_env(environ)
    except ValueError as exc:
        return [Finding("fail", "settings", str(exc), "set the variable (docs/operations.md lists them)")]
    findings, conn = await _database(cfg)
    try:
        if not cfg.gateway.urls:
            findings.append(Finding("warn", "gateways", "no gateway configured", "set PLUGYARD_GATEWAY_URLS"))
        elif not cfg.gateway.secret:
            findings.append(
                Finding("fail", "gateways", "PLUGYARD_GATEWAY_SECRET is not set", "set the gateways' secret")
            )
        else:
            async with httpx.AsyncClient(timeout=5) as http:
                for url in cfg.gateway.urls:
                    findings += await _gateway(http, url, cfg.gateway.secret, conn)
            if conn is not None and cfg.retry_pushes:
                findings.append(await _reconciler(conn, cfg.gateway.urls))
    finally:
        if conn is not None:
            await conn.close()
    env = os.environ if environ is None else environ
    findings.append(_workerd(workerd or Path(env.get("PLUGYARD_WORKERD_BIN", str(WORKERD_BIN)))))
    return findings


def report(findings: list[Finding]) -> str:
    """Plain text: one line per check, the fix indented under what is wrong."""
    marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
    lines = []
    for f in findings:
        lines.append(f"{marks[f.level]}  {f.check}: {f.message}")
        if f.level != "ok" and f.fix:
            lines.append(f"      fix: {f.fix}")
    failed = sum(f.level == "fail" for f in findings)
    lines.append(f"{failed} problem(s) found" if failed else "no problems found")
    return "\n".join(lines)

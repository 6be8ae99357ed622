"""Settings: one frozen tree read from the environment once and passed into the app."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

import msgspec

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class DatabaseSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Where PostgreSQL is and how many connections to hold."""

    url: str
    pool_min: int = 1
    pool_max: int = 10
    command_timeout_s: float = 10.0


class GatewaySettings(msgspec.Struct, frozen=True, kw_only=True):
    """Which gateways receive pushes and how they are signed."""

    urls: tuple[str, ...] = ()
    secret: str = ""
    push_timeout_s: float = 5.0
    retry_interval_s: float = 2.0


class MetricsSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Retention of metrics and plugin logs (docs/metrics.md)."""

    # Minute rows older than this roll up into hour rows; hour rows older than hour_retention_s go.
    minute_retention_s: int = 2 * 86400
    hour_retention_s: int = 90 * 86400
    rollup_interval_s: float = 60.0
    # Batch ids are kept this long; a batch sealed longer ago is refused (409 batch-expired).
    batch_retention_s: int = 7 * 86400
    log_lines_per_plugin: int = 200
    # The ingest appends; compaction folds the appended rows in (docs/metrics.md, "Storage"):
    # after appends, at most every compact_min_interval_s, and every compact_interval_s anyway.
    compact_interval_s: float = 1.0
    compact_min_interval_s: float = 0.1
    # Back-pressure: past this many rows (deltas + log entries) appended by a process and not
    # yet compacted, its ingest compacts before appending more.
    max_pending_rows: int = 100_000
    # The rollup/prune task; tests that want full control turn it off.
    rollup: bool = True


class PortalSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The tenant portal (docs/portal.md): links, cookies, sessions and sign-in throttling."""

    # The portal's public base URL, used in invite links.
    url: str = "http://127.0.0.1:8000"
    # Mark cookies Secure (serve the portal over HTTPS); off for plain-HTTP local use.
    secure_cookies: bool = False
    session_ttl_s: int = 12 * 3600
    invite_ttl_s: int = 7 * 86400
    # Failed sign-ins within the window before sign-in is refused (429) for that email / client.
    login_max_failures: int = 5
    login_max_failures_per_client: int = 20
    login_window_s: float = 900.0


class RateLimitSettings(msgspec.Struct, frozen=True, kw_only=True):
    """API rate limits per token and per client address (plugyard/ratelimit.py, docs/api.md)."""

    # Requests per second per bearer token (sustained) and at once; per_s 0 turns it off.
    per_s: float = 50.0
    burst: int = 200
    # The same per client address, for /v1 requests without a token known to be valid.
    client_per_s: float = 50.0
    client_burst: int = 200
    # Tokens and addresses tracked per process at most (least recently used dropped first).
    max_keys: int = 100_000


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the control plane needs to run."""

    database: DatabaseSettings
    gateway: GatewaySettings = msgspec.field(default_factory=GatewaySettings)
    metrics: MetricsSettings = msgspec.field(default_factory=MetricsSettings)
    portal: PortalSettings = msgspec.field(default_factory=PortalSettings)
    rate_limit: RateLimitSettings = msgspec.field(default_factory=RateLimitSettings)
    admin_token: str | None = None
    log_format: str = "json"
    log_level: str = "info"
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    # Seconds granian waits for in-flight requests (and the lifespan's shutdown) on SIGTERM
    # before it kills a worker (docs/deploy.md, "Graceful shutdown").
    shutdown_timeout_s: int = 30
    migrations_dir: Path = PROJECT_ROOT / "migrations"
    # Background retry of failed pushes; tests that want full control turn it off.
    retry_pushes: bool = True
    # Experiment guardrail checks (docs/experiments.md); 0 turns the checker off.
    guardrail_interval_s: float = 2.0
    # Uploads (docs/plugins.md, "Limits"): total bundle bytes, never above MAX_BUNDLE_BYTES_CAP.
    max_bundle_bytes: int = 1024 * 1024
    # Base64 of 32 random bytes (AES-256-GCM key for secrets at rest); None disables secrets.
    secrets_key: str | None = None
    # Preview URLs: `{id}.{preview_domain}`, shown as preview_url with `{host}` filled in.
    preview_domain: str = "preview.plugyard.localhost"
    preview_url: str = "http://{host}/"
    preview_ttl_s: int = 86400
    # Fairness: distinct live versions (active + experiment variants) per tenant; 0 = no cap.
    max_live_versions: int = 100


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip().rstrip("/") for part in value.split(",") if part.strip())


MAX_BUNDLE_BYTES_CAP = 10 * 1024 * 1024


def _bundle_limit(value: str) -> int:
    limit = int(value)
    if not 1 <= limit <= MAX_BUNDLE_BYTES_CAP:
        raise ValueError(f"PLUGYARD_MAX_BUNDLE_BYTES must be between 1 and {MAX_BUNDLE_BYTES_CAP}")
    return limit


def _preview_url(value: str) -> str:
    if "{host}" not in value:
        raise ValueError("PLUGYARD_PREVIEW_URL must contain {host}")
    return value


def _rate_limit(env: Mapping[str, str]) -> RateLimitSettings:
    per_s = float(env.get("PLUGYARD_RATE_LIMIT_PER_S", "50"))
    burst = int(env.get("PLUGYARD_RATE_LIMIT_BURST", "200"))
    client_per_s = float(env.get("PLUGYARD_RATE_LIMIT_CLIENT_PER_S", str(per_s)))
    client_burst = int(env.get("PLUGYARD_RATE_LIMIT_CLIENT_BURST", str(burst)))
    max_keys = int(env.get("PLUGYARD_RATE_LIMIT_MAX_KEYS", "100000"))
    if min(per_s, client_per_s) < 0 or not math.isfinite(per_s + client_per_s):
        raise ValueError("PLUGYARD_RATE_LIMIT_PER_S and _CLIENT_PER_S must be 0 (off) or positive")
    if min(burst, client_burst, max_keys) < 1:
        raise ValueError("PLUGYARD_RATE_LIMIT_BURST, _CLIENT_BURST and _MAX_KEYS must be at least 1")
    return RateLimitSettings(
        per_s=per_s, burst=burst, client_per_s=client_per_s, client_burst=client_burst, max_keys=max_keys
    )


def from_env(environ: Mapping[str, str] | None = None, *, database_url: str | None = None) -> Settings:
    """Read settings from `PLUGYARD_*` variables and `DATABASE_URL`.

    Args:
        environ: the environment to read (defaults to `os.environ`).
        database_url: overrides `DATABASE_URL` (used when an embedded server was started).

    Returns:
        The settings tree.

    Raises:
        ValueError: when a required variable is missing or a value is malformed.
    """
    env = os.environ if environ is None else environ
    url = database_url or env.get("DATABASE_URL")
    if not url:
        raise ValueError("DATABASE_URL is not set (plugyard dev starts an embedded PostgreSQL instead)")
    try:
        return Settings(
            database=DatabaseSettings(
                url=url,
                pool_min=int(env.get("PLUGYARD_DB_POOL_MIN", "1")),
                pool_max=int(env.get("PLUGYARD_DB_POOL_MAX", "10")),
            ),
            gateway=GatewaySettings(
                urls=_csv(env.get("PLUGYARD_GATEWAY_URLS", "")),
                secret=env.get("PLUGYARD_GATEWAY_SECRET", ""),
                push_timeout_s=float(env.get("PLUGYARD_PUSH_TIMEOUT_S", "5")),
                retry_interval_s=float(env.get("PLUGYARD_RETRY_INTERVAL_S", "2")),
            ),
            metrics=MetricsSettings(
                minute_retention_s=int(env.get("PLUGYARD_METRICS_MINUTE_RETENTION_S", str(2 * 86400))),
                hour_retention_s=int(env.get("PLUGYARD_METRICS_HOUR_RETENTION_S", str(90 * 86400))),
                rollup_interval_s=float(env.get("PLUGYARD_METRICS_ROLLUP_INTERVAL_S", "60")),
                batch_retention_s=int(env.get("PLUGYARD_METRICS_BATCH_RETENTION_S", str(7 * 86400))),
                log_lines_per_plugin=int(env.get("PLUGYARD_LOG_LINES_PER_PLUGIN", "200")),
            ),
            portal=PortalSettings(
                url=env.get("PLUGYARD_PORTAL_URL", "http://127.0.0.1:" + env.get("PLUGYARD_PORT", "8000")),
                secure_cookies=env.get("PLUGYARD_PORTAL_SECURE_COOKIES", "0") in {"1", "true", "yes"},
                session_ttl_s=int(env.get("PLUGYARD_PORTAL_SESSION_TTL_S", str(12 * 3600))),
                invite_ttl_s=int(env.get("PLUGYARD_PORTAL_INVITE_TTL_S", str(7 * 86400))),
                login_max_failures=int(env.get("PLUGYARD_LOGIN_MAX_FAILURES", "5")),
                login_max_failures_per_client=int(env.get("PLUGYARD_LOGIN_MAX_FAILURES_PER_CLIENT", "20")),
                login_window_s=float(env.get("PLUGYARD_LOGIN_WINDOW_S", "900")),
            ),
            rate_limit=_rate_limit(env),
            admin_token=env.get("PLUGYARD_ADMIN_TOKEN") or None,
            log_format=env.get("PLUGYARD_LOG_FORMAT", "json"),
            log_level=env.get("PLUGYARD_LOG_LEVEL", "info"),
            host=env.get("PLUGYARD_HOST", "127.0.0.1"),
            port=int(env.get("PLUGYARD_PORT", "8000")),
            workers=int(env.get("PLUGYARD_WORKERS", "1")),
            shutdown_timeout_s=int(env.get("PLUGYARD_SHUTDOWN_TIMEOUT_S", "30")),
            migrations_dir=Path(env.get("PLUGYARD_MIGRATIONS_DIR", str(PROJECT_ROOT / "migrations"))),
            retry_pushes=env.get("PLUGYARD_RETRY_PUSHES", "1") not in {"0", "false", "no"},
            guardrail_interval_s=float(env.get("PLUGYARD_GUARDRAIL_INTERVAL_S", "2")),
            max_bundle_bytes=_bundle_limit(env.get("PLUGYARD_MAX_BUNDLE_BYTES", str(1024 * 1024))),
            secrets_key=env.get("PLUGYARD_SECRETS_KEY") or None,
            preview_domain=env.get("PLUGYARD_PREVIEW_DOMAIN", "preview.plugyard.localhost").lower(),
            preview_url=_preview_url(env.get("PLUGYARD_PREVIEW_URL", "http://{host}/")),
            preview_ttl_s=int(env.get("PLUGYARD_PREVIEW_TTL_S", "86400")),
            max_live_versions=int(env.get("PLUGYARD_MAX_LIVE_VERSIONS", "100")),
        )
    except ValueError as exc:
        raise ValueError(f"invalid setting: {exc}") from exc

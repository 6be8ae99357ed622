"""PostgreSQL access: the asyncpg pool, JSON codecs and the migration runner."""

from __future__ import annotations

import hashlib
from pathlib import Path

import asyncpg
import msgspec
import structlog

from plugyard.settings import DatabaseSettings

log = structlog.get_logger(__name__)

Connection = asyncpg.Connection
Pool = asyncpg.Pool
# What a lost or refused database connection raises.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)

# Any constant works as long as every process agrees on it.
MIGRATION_LOCK_KEY = 0x706C7567_0001
_JSON = msgspec.json.Encoder()
_JSON_DECODE = msgspec.json.Decoder()

_CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""
_APPLIED = "SELECT version, name, checksum FROM schema_migrations ORDER BY version"
_RECORD = "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)"


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda value: _JSON.encode(value).decode(),
        decoder=_JSON_DECODE.decode,
        schema="pg_catalog",
    )


class PooledConnection(asyncpg.Connection):  # type: ignore[misc]  # asyncpg ships no type hints
    """A pooled connection that skips the session reset after serving an HTTP request.

    On release asyncpg rolls back any open transaction and then runs a session reset query
    (`pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`): one more round trip per
    request. Request handlers keep all their state inside transactions (no SET, LISTEN,
    cursors outside a transaction or session advisory locks: they use `pg_advisory_xact_lock`),
    so after a request that query changes nothing. `deps.provide_conn` marks its connection;
    the mark lasts until the release. Connections taken straight from the pool (background
    loops holding session advisory locks, health checks) keep the full reset.
    """

    _request_scoped = False

    def mark_request_scoped(self) -> None:
        """Skip the session reset at the next release (the open-transaction rollback stays)."""
        self._request_scoped = True

    def get_reset_query(self) -> str:
        """The reset query asyncpg runs on release: none after a request, else the default."""
        if self._request_scoped:
            self._request_scoped = False
            return ""
        return str(super().get_reset_query())


async def create_pool(settings: DatabaseSettings) -> asyncpg.Pool:
    """Open a connection pool whose connections encode and decode jsonb with msgspec.

    Args:
        settings: database URL and pool sizes.

    Returns:
        An open pool of `PooledConnection`s; the caller closes it.
    """
    pool = await asyncpg.create_pool(
        settings.url,
        min_size=settings.pool_min,
        max_size=settings.pool_max,
        command_timeout=settings.command_timeout_s,
        init=_init_connection,
        connection_class=PooledConnection,
    )
    assert pool is not None
    return pool


async def connect(url: str) -> asyncpg.Connection:
    """Open one connection with the same codecs as the pool's (CLI commands, tests)."""
    conn = await asyncpg.connect(url)
    await _init_connection(conn)
    return conn


class Migration(msgspec.Struct, frozen=True):
    """One `NNNN_name.sql` file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the file, to detect a migration edited after it was applied."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path) -> list[Migration]:
    """List the migrations in a folder, ordered by their numeric prefix.

    Raises:
        ValueError: when a file name has no numeric prefix or two files share a number.
    """
    migrations: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        prefix, _, rest = path.stem.partition("_")
        if not prefix.isdigit() or not rest:
            raise ValueError(f"migration file {path.name} must be named NNNN_description.sql")
        version = int(prefix)
        if version in migrations:
            raise ValueError(f"two migrations share number {version}: {path.name}")
        migrations[version] = Migration(version=version, name=path.stem, sql=path.read_text())
    return [migrations[v] for v in sorted(migrations)]


async def migrate(conn: asyncpg.Connection, directory: Path) -> list[str]:
    """Apply pending migrations in order, each in its own transaction, under an advisory lock.

    Re-running is a no-op. Several processes may call it at once: the lock serialises them.

    Args:
        conn: an open connection (not in a transaction).
        directory: the folder of `.sql` files.

    Returns:
        The names of the migrations applied by this call.

    Raises:
        RuntimeError: when an applied migration's file has changed since it was applied.
    """
    pending = discover(directory)
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(_CREATE_MIGRATIONS_TABLE)
        applied = {row["version"]: row for row in await conn.fetch(_APPLIED)}
        for migration in pending:
            done = applied.get(migration.version)
            if done is not None:
                if done["checksum"] != migration.checksum:
                    raise RuntimeError(
                        f"migration {migration.name} changed after it was applied; "
                        "add a new migration instead of editing an applied one"
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(_RECORD, migration.version, migration.name, migration.checksum)
            log.info("migration_applied", migration=migration.name)
            applied_now.append(migration.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    return applied_now

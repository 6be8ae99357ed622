"""The pool skips asyncpg's session reset after a request, and only then (plugyard.db.PooledConnection)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from plugyard import db
from plugyard.settings import DatabaseSettings

LOCK_KEY = 0x706C7567_7E57


@pytest.fixture
async def one_connection(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool of exactly one connection, so every acquire hands out the same one."""
    pool = await db.create_pool(DatabaseSettings(url=database_url, pool_min=1, pool_max=1))
    yield pool
    await pool.close()


async def _lock_is_free(database_url: str) -> bool:
    other = await db.connect(database_url)
    try:
        free = bool(await other.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY))
        if free:
            await other.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
        return free
    finally:
        await other.close()


async def test_background_use_still_gets_the_full_session_reset(
    one_connection: asyncpg.Pool, database_url: str
) -> None:
    # A background loop takes a session advisory lock and (say, cancelled) never unlocks it.
    async with one_connection.acquire() as conn:
        assert await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY)
        assert not await _lock_is_free(database_url)
    assert await _lock_is_free(database_url)


async def test_a_request_connection_skips_the_reset_once_but_never_keeps_a_transaction(
    one_connection: asyncpg.Pool, database_url: str
) -> None:
    async with one_connection.acquire() as conn:
        conn.mark_request_scoped()
        assert await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY)
        # A transaction left open by mistake is still rolled back on release.
        await conn.transaction().start()
        await conn.execute("CREATE TEMP TABLE left_open (x int)")
    async with one_connection.acquire() as conn:
        assert not conn.is_in_transaction()
        assert await conn.fetchval("SELECT to_regclass('pg_temp.left_open')") is None
        # The reset was skipped: the session lock (which request code must never take) survived.
        assert not await _lock_is_free(database_url)
    # The mark lasted one release: this time the full reset ran and freed the lock.
    assert await _lock_is_free(database_url)

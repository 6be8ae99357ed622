"""`plugyard migrate` against a real PostgreSQL: ordered, recorded, idempotent, tamper-evident."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from plugyard import db
from plugyard.settings import PROJECT_ROOT


@pytest.fixture
async def scratch(server_url: str, unique: str) -> AsyncIterator[str]:
    admin = await asyncpg.connect(server_url)
    name = f"plugyard_mig_{unique}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    yield urlunsplit(urlsplit(server_url)._replace(path="/" + name))
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


async def test_migrate_is_idempotent_and_detects_edits(scratch: str, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(PROJECT_ROOT / "migrations", folder)
    conn = await db.connect(scratch)
    try:
        first = await db.migrate(conn, folder)
        assert first[0].startswith("0001_")
        assert await db.migrate(conn, folder) == []
        recorded = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
        assert [r["name"] for r in recorded] == first

        (folder / "9999_extra.sql").write_text("CREATE TABLE extra (id int);")
        assert await db.migrate(conn, folder) == ["9999_extra"]

        (folder / "9999_extra.sql").write_text("CREATE TABLE extra (id bigint);")
        with pytest.raises(RuntimeError, match="changed after it was applied"):
            await db.migrate(conn, folder)

        (folder / "9999_extra.sql").unlink()
        (folder / "9998_broken.sql").write_text("CREATE TABLE broken (id int); SELECT nonsense_function();")
        with pytest.raises(asyncpg.PostgresError):
            await db.migrate(conn, folder)
        # The failed migration rolled back whole: no table, no record.
        assert await conn.fetchval("SELECT to_regclass('broken')") is None
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations WHERE version = 9998") == 0
    finally:
        await conn.close()

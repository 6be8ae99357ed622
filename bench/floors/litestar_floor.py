"""Floor for the control plane: a bare Litestar + msgspec app with an asyncpg `SELECT 1` route.

Served exactly like `plugyard serve` (granian, ASGI, one worker, no access log), on the same
database and with the same pool settings, so the difference is Plugyard's own work.
Run: `python -m bench.floors.litestar_floor` with DATABASE_URL and BENCH_PORT set.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

import msgspec
from litestar import Litestar, get
from litestar.datastructures import State

from plugyard import db
from plugyard.settings import DatabaseSettings


class Answer(msgspec.Struct, frozen=True):
    """A tiny JSON body."""

    status: str
    value: int


@get("/plain")
async def plain() -> Answer:
    """No database: the framework and server alone."""
    return Answer(status="ok", value=0)


@get("/select1")
async def select1(state: State) -> Answer:
    """One pooled connection, one `SELECT 1`."""
    async with state.pool.acquire() as conn:
        value = await conn.fetchval("SELECT 1")
    return Answer(status="ok", value=value)


@contextlib.asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    """Open the pool with Plugyard's settings and codecs."""
    app.state.pool = await db.create_pool(DatabaseSettings(url=os.environ["DATABASE_URL"]))
    try:
        yield
    finally:
        await app.state.pool.close()


app = Litestar(route_handlers=[plain, select1], lifespan=[lifespan], debug=False)


if __name__ == "__main__":
    from granian import Granian
    from granian.constants import Interfaces

    Granian(
        "bench.floors.litestar_floor:app",
        address="127.0.0.1",
        port=int(os.environ["BENCH_PORT"]),
        interface=Interfaces.ASGI,
        workers=1,
        log_access=False,
    ).serve()

"""The experiments feature's part of the app lifespan: the guardrail checker loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import structlog
from litestar import Litestar

from plugyard.experiments.guardrail import check_guardrails
from plugyard.settings import Settings

log = structlog.get_logger(__name__)


async def _guardrail_loop(app: Litestar, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            async with app.state.pool.acquire() as conn:
                await check_guardrails(conn, app.state.publisher)
        except Exception:  # the loop must survive a database or gateway outage
            log.exception("guardrail_check_failed")


def experiments_lifespan(settings: Settings) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """Runs after the main lifespan (pool and publisher exist): preview secret and guardrail loop."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        app.state.experiment_gateway_secret = settings.gateway.secret
        task = None
        if settings.guardrail_interval_s > 0:
            task = asyncio.create_task(_guardrail_loop(app, settings.guardrail_interval_s))
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    return lifespan

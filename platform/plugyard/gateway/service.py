"""Gateway health for operators: ask every configured gateway what it holds, compare with the database."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from datetime import UTC, datetime

import asyncpg
import httpx
import msgspec

from plugyard.deployments.reconciler import Reconciler, drift
from plugyard.deployments.repository import DeploymentRepository
from plugyard.deployments.service import Publisher
from plugyard.errors import Forbidden
from plugyard.gateway.client import GatewayHealth
from plugyard.gateway.schemas import GatewaysReport, GatewayStatus, ReconcilerStatus
from plugyard.tenants.schemas import Principal

# A gateway that has not answered its health check by then counts as unreachable: an operator's
# poll should not hang on a black-holed address.
HEALTH_TIMEOUT_S = 2.0


class GatewayStatusService:
    """Builds the admin's gateway report."""

    def __init__(
        self, conn: asyncpg.Connection, publisher: Publisher, last_seen: MutableMapping[str, datetime]
    ) -> None:
        """Bind to a connection, the publisher, and when each gateway last answered this process."""
        self._conn = conn
        self._publisher = publisher
        self._last_seen = last_seen

    async def report(self, principal: Principal, reconciler: Reconciler | None) -> GatewaysReport:
        """Every configured gateway's reachability and drift, and the reconciler's last pass.

        Raises:
            Forbidden: the caller is not a platform admin (gateways serve every tenant).
        """
        if not principal.is_admin:
            raise Forbidden("only a platform admin may do this", slug="admin-only")
        gateways = self._publisher.gateways
        # Gateways first, then the database (as the reconciler does): a deployment committed in
        # between shows as behind for a moment rather than a gateway wrongly ahead.
        answers = await asyncio.gather(*(self._health(gw) for gw in gateways))
        desired = await DeploymentRepository(self._conn).latest_per_namespace()
        statuses = []
        for gateway, answer in zip(gateways, answers, strict=True):
            if isinstance(answer, str):
                statuses.append(
                    GatewayStatus(
                        url=gateway, reachable=False, error=answer, last_seen=self._last_seen.get(gateway)
                    )
                )
                continue
            self._last_seen[gateway] = seen = datetime.now(UTC)
            statuses.append(
                GatewayStatus(
                    url=gateway,
                    reachable=True,
                    last_seen=seen,
                    namespaces_held=len(answer.namespaces),
                    namespaces_behind=len(drift(desired, answer).to_push),
                )
            )
        return GatewaysReport(
            gateways=statuses,
            namespaces=len(desired),
            reconciler=ReconcilerStatus(
                leader=reconciler is not None and reconciler.leader,
                last_pass=None if reconciler is None else reconciler.last_pass,
            ),
        )

    async def _health(self, gateway: str) -> GatewayHealth | str:
        """The gateway's signed health, or why it could not be had."""
        try:
            response = await self._publisher.client.call(
                gateway, "GET", "/_plugyard/health", timeout_s=HEALTH_TIMEOUT_S
            )
            response.raise_for_status()
            return msgspec.json.decode(response.content, type=GatewayHealth)
        except httpx.HTTPStatusError as exc:
            return f"HTTP {exc.response.status_code} on the signed health check"
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}".strip(": ")
        except msgspec.DecodeError:
            return "the health answer is not a gateway's"

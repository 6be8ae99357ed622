"""Experiments: drafts, the state machine, phases, exclusion ranges, holdouts and assignment.

Every state change commits with an audit-log entry and a deployment, then pushes it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
import structlog

from plugyard.audit.repository import AuditRepository
from plugyard.deployments.schemas import Deployment
from plugyard.deployments.service import DeploymentService, Publisher
from plugyard.errors import Conflict, InvalidInput, NotFound
from plugyard.experiments import bucketing
from plugyard.experiments.repository import ExperimentRepository
from plugyard.experiments.schemas import (
    DEFAULT_COOKIE,
    RESERVED_VARIANTS,
    ExperimentCreate,
    ExperimentRow,
    ExperimentUpdate,
    VariantRow,
)
from plugyard.namespaces.schemas import NamespaceRow
from plugyard.plugins.repository import PluginRepository
from plugyard.tenants.schemas import TenantRow

log = structlog.get_logger(__name__)

# action → (states it is allowed from, state it leads to)
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "start": (frozenset({"draft"}), "running"),
    "pause": (frozenset({"running"}), "paused"),
    "resume": (frozenset({"paused"}), "running"),
    "stop": (frozenset({"running", "paused"}), "stopped"),
    "kill": (frozenset({"running", "paused"}), "stopped"),
}


def subject(namespace: NamespaceRow, key: str) -> str:
    """The audit-log subject of an experiment."""
    return f"experiment:{namespace.name}/{key}"


class ExperimentService:
    """Experiments of a namespace."""

    def __init__(self, conn: asyncpg.Connection, publisher: Publisher) -> None:
        """Bind to a connection and a publisher."""
        self._conn = conn
        self._repo = ExperimentRepository(conn)
        self._plugins = PluginRepository(conn)
        self._audit = AuditRepository(conn)
        self._deployments = DeploymentService(conn, publisher)

    async def get(self, tenant: TenantRow, namespace: NamespaceRow, key: str) -> ExperimentRow:
        """An experiment of the namespace.

        Raises:
            NotFound: no such experiment.
        """
        row = await self._repo.get(tenant.id, namespace.id, key)
        if row is None:
            raise NotFound(f"experiment {key!r} not found", slug="experiment-not-found")
        return row

    async def page(
        self, tenant: TenantRow, namespace: NamespaceRow, *, after: str, limit: int
    ) -> list[ExperimentRow]:
        """A page of the namespace's experiments."""
        return await self._repo.page(tenant.id, namespace.id, after=after, limit=limit)

    async def variants(self, tenant: TenantRow, row: ExperimentRow) -> list[VariantRow]:
        """An experiment's variants in order."""
        return await self._repo.variants(tenant.id, row.id)

    async def create(
        self, tenant: TenantRow, namespace: NamespaceRow, data: ExperimentCreate, *, actor: str
    ) -> ExperimentRow:
        """Store a draft; nothing is deployed until it starts."""
        plugin = await self._plugins.get(tenant.id, namespace.id, data.plugin)
        if plugin is None:
            raise InvalidInput(f"plugin {data.plugin!r} not found", field="plugin")
        names = [v.name for v in data.variants]
        if len(set(names)) != len(names):
            raise InvalidInput("variant names must be unique", field="variants")
        if reserved := RESERVED_VARIANTS.intersection(names):
            raise InvalidInput(f"variant name {sorted(reserved)[0]!r} is reserved", field="variants")
        versions = []
        for i, v in enumerate(data.variants):
            version = await self._plugins.version_by_number(tenant.id, plugin.id, v.version)
            if version is None:
                raise InvalidInput(
                    f"version {v.version} of plugin {plugin.name!r} not found", field=f"variants[{i}].version"
                )
            versions.append(version.id)
        sticky = data.sticky
        if sticky is not None and (sticky.cookie is None) == (sticky.header is None):
            raise InvalidInput("give exactly one of cookie or header", field="sticky")
        ex = data.exclusion
        if ex is not None and not ex.start < ex.end:
            raise InvalidInput("exclusion.start must be below exclusion.end", field="exclusion")
        weights = bucketing.normalise([v.weight for v in data.variants])
        async with self._conn.transaction():
            if ex is not None:
                await self._check_exclusion(tenant, namespace, None, ex.group, ex.start, ex.end)
            experiment_id = await self._repo.insert(
                tenant.id,
                namespace.id,
                plugin.id,
                key=data.key,
                coverage=data.coverage,
                sticky_source="header" if sticky is not None and sticky.header else "cookie",
                sticky_name=(sticky.header or sticky.cookie) if sticky is not None else DEFAULT_COOKIE,
                exclusion_group=None if ex is None else ex.group,
                exclusion_start=None if ex is None else ex.start,
                exclusion_end=None if ex is None else ex.end,
                guardrail=None if data.guardrail is None else msgspec.to_builtins(data.guardrail),
            )
            await self._repo.insert_variants(
                tenant.id, experiment_id, list(zip(names, versions, weights, strict=True))
            )
            await self._audit.record(
                tenant.id,
                actor=actor,
                action="experiment.created",
                subject=subject(namespace, data.key),
                details={
                    "plugin": plugin.name,
                    "variants": names,
                    "weights": weights,
                    "coverage": data.coverage,
                },
            )
        log.info("experiment_created", tenant=tenant.slug, namespace=namespace.name, experiment=data.key)
        return await self.get(tenant, namespace, data.key)

    async def _check_exclusion(
        self,
        tenant: TenantRow,
        namespace: NamespaceRow,
        own: ExperimentRow | None,
        group: str,
        start: float,
        end: float,
    ) -> None:
        taken = await self._repo.overlapping(
            tenant.id, namespace.id, None if own is None else own.id, group, start, end
        )
        if taken:
            raise Conflict(
                f"range [{start}, {end}) of exclusion group {group!r} overlaps "
                f"experiment(s) {', '.join(taken)}",
                slug="exclusion-range-taken",
                experiments=taken,
            )

    async def transition(
        self,
        tenant: TenantRow,
        namespace: NamespaceRow,
        row: ExperimentRow,
        action: str,
        *,
        actor: str,
        winner: str | None = None,
        reason: str | None = None,
        trip: dict[str, Any] | None = None,
    ) -> tuple[ExperimentRow, Deployment]:
        """Move an experiment through its states; records audit + deployment, then pushes.

        Raises:
            Conflict: the action is not allowed from the current state, or another experiment is
                live on the plugin.
            InvalidInput: the winner is not a variant, or the plugin has no active version.
        """
        allowed, target = TRANSITIONS[action]
        async with self._conn.transaction():
            row = await self._repo.lock(tenant.id, row.id)
            if row.state not in allowed:
                raise Conflict(
                    f"cannot {action} an experiment that is {row.state}",
                    slug="invalid-transition",
                    state=row.state,
                    allowed_from=sorted(allowed),
                )
            variants = await self._repo.variants(tenant.id, row.id)
            changes: dict[str, Any] = {"state": target, "status_reason": reason}
            details: dict[str, Any] = {"from": row.state, "to": target, "phase": row.phase}
            if action == "start":
                plugin = await self._plugins.get(tenant.id, namespace.id, row.plugin)
                if plugin is None or plugin.active_version_id is None:
                    raise InvalidInput(
                        "the plugin needs an active version (it serves everyone outside the experiment)",
                        field="plugin",
                    )
                changes["phase_started_at"] = datetime.now(UTC)
                changes["guardrail_trip"] = None
            if action == "stop":
                chosen = next((v for v in variants if v.name == winner), None)
                if chosen is None:
                    raise InvalidInput(
                        f"winner {winner!r} is not a variant of this experiment", field="winner"
                    )
                changes["winner"] = chosen.name
                await self._plugins.set_active(tenant.id, row.plugin_id, chosen.version_id)
                details.update(winner=chosen.name, version=chosen.version)
            if action == "kill":
                changes["status_reason"] = reason or "killed"
            if trip is not None:
                changes["guardrail_trip"] = trip
                details["guardrail"] = trip
            if reason:
                details["reason"] = reason
            updated = msgspec.structs.replace(row, **changes)
            await self._repo.update(updated)
            await self._audit.record(
                tenant.id,
                actor=actor,
                action=f"experiment.{action}",
                subject=subject(namespace, row.key),
                details=details,
            )
            deployment = await self._deployments.record(
                tenant, namespace, reason=f"experiment {row.key}: {action}", actor=actor
            )
        log.info(
            "experiment_" + target,
            tenant=tenant.slug,
            namespace=namespace.name,
            experiment=row.key,
            action=action,
        )
        pushed = await self._deployments.push(deployment)
        return await self.get(tenant, namespace, row.key), pushed

    async def update(
        self,
        tenant: TenantRow,
        namespace: NamespaceRow,
        row: ExperimentRow,
        data: ExperimentUpdate,
        *,
        actor: str,
    ) -> tuple[ExperimentRow, Deployment | None]:
        """Change weights, coverage or the guardrail; a live experiment needs `new_phase` for the first two.

        Raises:
            Conflict: the experiment is stopped, or live and the change would reassign visitors
                without `new_phase` (slug `new-phase-required`).
        """
        async with self._conn.transaction():
            row = await self._repo.lock(tenant.id, row.id)
            if row.state == "stopped":
                raise Conflict("a stopped experiment cannot change", slug="experiment-stopped")
            variants = await self._repo.variants(tenant.id, row.id)
            weights = [v.weight for v in variants]
            if data.weights is not None:
                unknown = set(data.weights) - {v.name for v in variants}
                if unknown:
                    raise InvalidInput(f"unknown variant {sorted(unknown)[0]!r}", field="weights")
                relative = [data.weights.get(v.name, v.weight) for v in variants]
                if len(data.weights) != len(variants):
                    raise InvalidInput("give a weight for every variant", field="weights")
                weights = bucketing.normalise(relative)
            coverage = row.coverage if data.coverage is None else data.coverage
            reassigns = weights != [v.weight for v in variants] or coverage != row.coverage
            live = row.state in {"running", "paused"}
            if reassigns and live and not data.new_phase:
                raise Conflict(
                    "changing weights or coverage of a running experiment would move visitors between "
                    "variants and bias the results. To do it anyway, send the same request with "
                    '"new_phase": true: the experiment starts phase '
                    f"{row.phase + 1} with a new hash seed, every visitor is bucketed afresh and results "
                    "count from the new phase only.",
                    slug="new-phase-required",
                    phase=row.phase,
                    hint={"new_phase": True},
                )
            changes: dict[str, Any] = {"coverage": coverage}
            if data.guardrail is not None:
                changes["guardrail"] = msgspec.to_builtins(data.guardrail)
            new_phase = live and data.new_phase
            if new_phase:
                phase = row.phase + 1
                changes.update(phase=phase, seed=f"{row.key}:{phase}", phase_started_at=datetime.now(UTC))
            updated = msgspec.structs.replace(row, **changes)
            await self._repo.update(updated)
            await self._repo.set_weights(
                tenant.id, row.id, {v.name: w for v, w in zip(variants, weights, strict=True)}
            )
            await self._audit.record(
                tenant.id,
                actor=actor,
                action="experiment.new_phase" if new_phase else "experiment.updated",
                subject=subject(namespace, row.key),
                details={
                    "weights": weights,
                    "coverage": coverage,
                    "phase": updated.phase,
                    "seed": updated.seed,
                },
            )
            deployment = None
            if live:
                deployment = await self._deployments.record(
                    tenant,
                    namespace,
                    reason=f"experiment {row.key}: updated (phase {updated.phase})",
                    actor=actor,
                )
        pushed = None if deployment is None else await self._deployments.push(deployment)
        return await self.get(tenant, namespace, row.key), pushed

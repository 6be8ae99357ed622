"""Assignment lookups and the namespace holdout of experiments."""

from __future__ import annotations

import asyncpg

from plugyard.audit.repository import AuditRepository
from plugyard.deployments.schemas import Deployment
from plugyard.deployments.service import DeploymentService, Publisher
from plugyard.experiments import bucketing
from plugyard.experiments.repository import ExperimentRepository
from plugyard.experiments.schemas import AssignmentOut, ExperimentRow, VariantRow
from plugyard.namespaces.schemas import NamespaceRow
from plugyard.tenants.schemas import TenantRow


def bucket_config(row: ExperimentRow, variants: list[VariantRow], holdout: float) -> bucketing.BucketConfig:
    """What assignment depends on, exactly as the gateway receives it."""
    exclusion = None
    if row.exclusion_group is not None:
        assert row.exclusion_start is not None
        assert row.exclusion_end is not None
        exclusion = bucketing.Exclusion(
            group=row.exclusion_group, start=row.exclusion_start, end=row.exclusion_end
        )
    return bucketing.BucketConfig(
        seed=row.seed,
        coverage=row.coverage,
        weights=[v.weight for v in variants],
        exclusion=exclusion,
        holdout=holdout,
    )


class AssignmentService:
    """Which variant a visitor gets; who is held out."""

    def __init__(self, conn: asyncpg.Connection, publisher: Publisher) -> None:
        """Bind to a connection and a publisher."""
        self._conn = conn
        self._repo = ExperimentRepository(conn)
        self._audit = AuditRepository(conn)
        self._deployments = DeploymentService(conn, publisher)

    async def assignment(
        self, tenant: TenantRow, namespace: NamespaceRow, row: ExperimentRow, visitor: str
    ) -> AssignmentOut:
        """Which variant a visitor key gets (the gateway computes the same; docs/experiments.md)."""
        variants = await self._repo.variants(tenant.id, row.id)
        holdout = await self._repo.holdout(tenant.id, namespace.id)
        result = bucketing.assign(bucket_config(row, variants, holdout), visitor)
        chosen = None if result.variant is None else variants[result.variant]
        return AssignmentOut(
            visitor=visitor,
            variant=None if chosen is None else chosen.name,
            version=None if chosen is None else chosen.version,
            reason=result.reason,
            bucket=bucketing.hash_value(row.seed, visitor, 2),
            serves="variant" if chosen is not None and row.state == "running" else "active-version",
        )

    async def holdout(self, tenant: TenantRow, namespace: NamespaceRow) -> float:
        """The namespace's holdout share."""
        return await self._repo.holdout(tenant.id, namespace.id)

    async def set_holdout(
        self, tenant: TenantRow, namespace: NamespaceRow, share: float, *, actor: str
    ) -> Deployment:
        """Set the namespace's holdout; deploys (it changes who is in every live experiment)."""
        async with self._conn.transaction():
            await self._repo.set_holdout(tenant.id, namespace.id, share)
            await self._audit.record(
                tenant.id,
                actor=actor,
                action="experiment.holdout_set",
                subject=f"namespace:{namespace.name}",
                details={"share": share},
            )
            deployment = await self._deployments.record(
                tenant, namespace, reason=f"experiment holdout {share}", actor=actor
            )
        return await self._deployments.push(deployment)

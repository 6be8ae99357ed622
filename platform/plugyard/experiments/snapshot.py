"""Live experiments of a namespace in the form a deployment snapshot carries them."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

import asyncpg

from plugyard.experiments.bucketing import Exclusion
from plugyard.experiments.repository import ExperimentRepository
from plugyard.experiments.state import ExperimentState, StickyState, VariantState

EnvHash = Callable[[str, dict[str, int] | None], str]


async def live_states(
    conn: asyncpg.Connection, tenant_id: UUID, namespace_id: UUID, env_hash_of: EnvHash
) -> dict[str, ExperimentState]:
    """Running and paused experiments by plugin name.

    Args:
        conn: the connection of the deployment's transaction.
        tenant_id: the tenant.
        namespace_id: the namespace being deployed.
        env_hash_of: (plugin name, version limits) → the env hash of that plugin's isolate when it
            runs a version with those limits (vars and secrets are the plugin's).
    """
    repo = ExperimentRepository(conn)
    holdout = await repo.holdout(tenant_id, namespace_id)
    out: dict[str, ExperimentState] = {}
    for row in await repo.live(tenant_id, namespace_id):
        exclusion = None
        if row.exclusion_group is not None:
            assert row.exclusion_start is not None
            assert row.exclusion_end is not None
            exclusion = Exclusion(group=row.exclusion_group, start=row.exclusion_start, end=row.exclusion_end)
        out[row.plugin] = ExperimentState(
            key=row.key,
            seed=row.seed,
            phase=row.phase,
            state=row.state,
            coverage=row.coverage,
            variants=[
                VariantState(
                    name=v.name,
                    version_id=v.version_id,
                    version=v.version_hash,
                    env_hash=env_hash_of(row.plugin, v.limits),
                    limits=v.limits,
                    weight=v.weight,
                )
                for v in await repo.variants(tenant_id, row.id)
            ],
            sticky=StickyState(source=row.sticky_source, name=row.sticky_name),
            exclusion=exclusion,
            holdout=holdout,
        )
    return out

"""What a deployment snapshot holds of a live experiment, and its push-body form.

Kept free of imports from `plugyard.deployments` (whose schemas embed these structs) so the two
packages do not import each other in a cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

import msgspec

from plugyard.experiments.bucketing import Exclusion


class VariantState(msgspec.Struct, frozen=True, kw_only=True):
    """One variant as deployed: the version it serves and its share of the experiment."""

    name: str
    version_id: UUID
    version: str
    env_hash: str
    limits: dict[str, int] | None = None
    weight: float


class StickyState(msgspec.Struct, frozen=True, kw_only=True):
    """Where the gateway reads the visitor key: its own cookie or a named request header."""

    source: str
    name: str


class ExperimentState(msgspec.Struct, frozen=True, kw_only=True):
    """A running or paused experiment on a plugin, as deployed."""

    key: str
    seed: str
    phase: int
    state: str
    coverage: float
    variants: list[VariantState]
    sticky: StickyState
    exclusion: Exclusion | None = None
    holdout: float = 0.0


def push_entry(
    experiment: ExperimentState, gateway_limits: Callable[[dict[str, int] | None], dict[str, int] | None]
) -> dict[str, Any]:
    """The plugin entry's `experiment` member of a push body (docs/gateway-protocol.md)."""
    return {
        "key": experiment.key,
        "seed": experiment.seed,
        "phase": experiment.phase,
        "state": experiment.state,
        "coverage": experiment.coverage,
        "variants": [
            {
                "name": v.name,
                "version": v.version,
                "env_hash": v.env_hash,
                "limits": gateway_limits(v.limits),
                "weight": v.weight,
            }
            for v in experiment.variants
        ],
        "sticky": {"source": experiment.sticky.source, "name": experiment.sticky.name},
        "exclusion": None if experiment.exclusion is None else msgspec.to_builtins(experiment.exclusion),
        "holdout": experiment.holdout,
    }

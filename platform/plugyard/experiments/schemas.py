"""Experiments: request bodies, read models and rows."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

from plugyard.deployments.schemas import Deployment
from plugyard.fields import Slug

VariantName = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[a-z0-9](?:[a-z0-9_-]{0,30}[a-z0-9])?$",
        description="lower-case letters, digits, '_' and '-'; 1-32 characters",
        examples=["control"],
    ),
]
HeaderName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9-]{1,64}$", examples=["x-user-id"])]
CookieName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$", examples=["plugyard_vid"])]
Share = Annotated[float, msgspec.Meta(ge=0, le=1)]
Weight = Annotated[float, msgspec.Meta(gt=0, le=1_000_000)]
Coverage = Annotated[float, msgspec.Meta(gt=0, le=1)]
State = Literal["draft", "running", "paused", "stopped"]
DEFAULT_COOKIE = "plugyard_vid"
# The metrics pipeline tags traffic outside any experiment with this variant name.
RESERVED_VARIANTS = frozenset({"default"})


class VariantIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A variant: a name, a stored version of the experiment's plugin and a relative weight."""

    name: VariantName
    version: Annotated[int, msgspec.Meta(ge=1)]
    weight: Weight = 1.0


class StickyIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The visitor key: the gateway's own cookie (default) or a named request header; one of them."""

    cookie: CookieName | None = None
    header: HeaderName | None = None


class ExclusionIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A claimed [start, end) range of an exclusion group (a GrowthBook-style namespace)."""

    group: Slug
    start: Share
    end: Share


class GuardrailIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Pause the experiment when a variant is worse than the control by more than `margin`.

    `error_rate`: margin in absolute rate (0.02 = two points), one-sided two-proportion z-test at
    `alpha`. `p95_latency_ms`: margin in ms on the p95; significant when the share of requests
    slower than control p95 + margin is higher in the variant (same test).
    """

    metric: Literal["error_rate", "p95_latency_ms"]
    margin: Annotated[float, msgspec.Meta(ge=0, le=100_000)]
    min_requests: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] = 100
    alpha: Annotated[float, msgspec.Meta(gt=0, le=0.2)] = 0.01


class ExperimentCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of `POST .../experiments`: a draft experiment on one plugin."""

    key: Slug
    plugin: Slug
    variants: Annotated[list[VariantIn], msgspec.Meta(min_length=2, max_length=20)]
    coverage: Coverage = 1.0
    sticky: StickyIn | None = None
    exclusion: ExclusionIn | None = None
    guardrail: GuardrailIn | None = None


class ExperimentUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of `PATCH .../experiments/{key}`.

    Changing weights or coverage of a running or paused experiment reassigns visitors, so it is
    refused (409) unless `new_phase` is true: then the phase number goes up and the hash seed
    changes (every visitor is bucketed afresh).
    """

    weights: dict[VariantName, Weight] | None = None
    coverage: Coverage | None = None
    guardrail: GuardrailIn | None = None
    new_phase: bool = False


class StopIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of `POST .../stop`: the winning variant becomes the plugin's active version."""

    winner: VariantName


class HoldoutSet(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of `PUT .../experiment-holdout`."""

    share: Annotated[float, msgspec.Meta(ge=0, le=0.5)]


class PreviewTokenCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of `POST .../preview-tokens`: force a variant for QA, not counted in results."""

    variant: VariantName
    ttl_s: Annotated[int, msgspec.Meta(ge=60, le=7 * 86400)] = 3600


class Variant(msgspec.Struct, frozen=True, kw_only=True):
    """A variant as the API shows it."""

    name: str
    version: int
    version_hash: str
    weight: float


class Sticky(msgspec.Struct, frozen=True, kw_only=True):
    """Where the visitor key comes from."""

    source: Literal["cookie", "header"]
    name: str


class Exclusion(msgspec.Struct, frozen=True, kw_only=True):
    """A claimed exclusion-group range."""

    group: str
    start: float
    end: float


class Experiment(msgspec.Struct, frozen=True, kw_only=True):
    """An experiment as the API shows it."""

    key: str
    plugin: str
    namespace: str
    state: State
    phase: int
    seed: str
    coverage: float
    variants: list[Variant]
    sticky: Sticky
    exclusion: Exclusion | None
    guardrail: dict[str, Any] | None
    winner: str | None
    status_reason: str | None
    guardrail_trip: dict[str, Any] | None
    phase_started_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ExperimentChanged(msgspec.Struct, frozen=True, kw_only=True):
    """An experiment after a state change, with the deployment that pushed it."""

    experiment: Experiment
    deployment: Deployment | None


class AssignmentOut(msgspec.Struct, frozen=True, kw_only=True):
    """Which variant a visitor key gets in the experiment's current phase."""

    visitor: str
    variant: str | None
    version: int | None
    reason: str
    bucket: float
    serves: Literal["variant", "active-version"]


class PreviewToken(msgspec.Struct, frozen=True, kw_only=True):
    """A signed override to send as the `x-plugyard-preview-variant` header."""

    token: str
    header: str
    variant: str
    expires_at: int


class Holdout(msgspec.Struct, frozen=True, kw_only=True):
    """A namespace's experiment holdout."""

    namespace: str
    share: float


class VariantRow(msgspec.Struct, frozen=True, kw_only=True):
    """An `experiment_variants` row joined with its version."""

    position: int
    name: str
    version_id: UUID
    version: int
    version_hash: str
    limits: dict[str, int] | None
    weight: float


class ExperimentRow(msgspec.Struct, frozen=True, kw_only=True):
    """An `experiments` row with its plugin's name."""

    id: UUID
    tenant_id: UUID
    namespace_id: UUID
    plugin_id: UUID
    plugin: str
    key: str
    state: State
    phase: int
    seed: str
    coverage: float
    sticky_source: Literal["cookie", "header"]
    sticky_name: str
    exclusion_group: str | None
    exclusion_start: float | None
    exclusion_end: float | None
    guardrail: dict[str, Any] | None
    winner: str | None
    status_reason: str | None
    guardrail_trip: dict[str, Any] | None
    phase_started_at: datetime | None
    created_at: datetime
    updated_at: datetime

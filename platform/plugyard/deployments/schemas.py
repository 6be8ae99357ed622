"""Deployments (numbered namespace snapshots) and their pushes to gateways."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from plugyard.experiments.state import ExperimentState


class PluginState(msgspec.Struct, frozen=True, kw_only=True):
    """What one plugin serves in a deployment.

    `vars` are the effective plain variables (namespace's merged with the plugin's);
    `secret_refs` maps each secret name to the id of the encrypted row it was recorded with,
    never to a value; `limits` are the active version's (`cpu_ms`, `subrequests`).
    """

    version_id: UUID | None
    version: str | None
    env_hash: str | None
    vars: dict[str, str]
    secret_refs: dict[str, str] = {}
    limits: dict[str, int] | None = None
    # A running or paused experiment splitting this plugin's traffic (docs/experiments.md).
    experiment: ExperimentState | None = None
    # Open quarantines of this plugin's versions: content hash → reason (docs/operations.md).
    quarantine: dict[str, str] = {}


class RouteState(msgspec.Struct, frozen=True, kw_only=True):
    """One route in a deployment."""

    pattern: str
    plugin: str


class NamespaceState(msgspec.Struct, frozen=True, kw_only=True):
    """The snapshot stored with a deployment (module code is referenced, not copied)."""

    routes: list[RouteState]
    plugins: dict[str, PluginState]
    # The namespace's egress policy ({"allow": [...], "methods": [...] | None}); None (snapshots
    # recorded before policies existed) pushes as deny-all.
    egress: dict[str, Any] | None = None


class Push(msgspec.Struct, frozen=True, kw_only=True):
    """The delivery of one deployment to one gateway."""

    gateway: str
    status: str
    attempts: int
    last_error: str | None
    updated_at: datetime


class Deployment(msgspec.Struct, frozen=True, kw_only=True):
    """A deployment as the API shows it."""

    revision: int
    reason: str
    actor: str
    created_at: datetime
    state: NamespaceState
    pushes: list[Push]


class DeploymentRow(msgspec.Struct, frozen=True, kw_only=True):
    """A `deployments` row."""

    id: UUID
    tenant_id: UUID
    namespace_id: UUID
    revision: int
    reason: str
    actor: str
    state: dict[str, Any]
    created_at: datetime


class BundleRow(msgspec.Struct, frozen=True, kw_only=True):
    """The code of one version, as pushed."""

    id: UUID
    hash: str
    main_module: str
    modules: list[dict[str, str]]
    compatibility_date: str
    compatibility_flags: list[str]

"""Plugins and their immutable, content-addressed versions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

from plugyard.deployments.schemas import Deployment
from plugyard.fields import Slug, VarName, VarValue

ModuleType = Literal["js", "cjs", "json", "text", "data", "wasm"]
ModuleName = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-/]*$",
        description="a relative module path: letters, digits, '_', '-', '.', '/'; no leading '/'",
    ),
]
CompatibilityDate = Annotated[str, msgspec.Meta(pattern=r"^\d{4}-\d{2}-\d{2}$", examples=["2025-11-01"])]
CompatibilityFlag = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9_]{1,64}$")]
DEFAULT_COMPATIBILITY_DATE = "2025-11-01"


class PluginCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of `POST .../namespaces/{namespace}/plugins`."""

    name: Slug
    vars: dict[VarName, VarValue] = {}


class PluginUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of `PATCH .../plugins/{plugin}`: replaces the plain variables."""

    vars: dict[VarName, VarValue]


class Plugin(msgspec.Struct, frozen=True, kw_only=True):
    """A plugin as the API shows it."""

    id: UUID
    name: str
    namespace: str
    vars: dict[str, str]
    active_version: int | None
    active_version_hash: str | None
    created_at: datetime
    updated_at: datetime


class PluginRow(msgspec.Struct, frozen=True, kw_only=True):
    """A `plugins` row joined with its active version's number and hash."""

    id: UUID
    tenant_id: UUID
    namespace_id: UUID
    name: str
    vars: dict[str, str]
    active_version_id: UUID | None
    active_version: int | None
    active_version_hash: str | None
    created_at: datetime
    updated_at: datetime


class Limits(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Per-version isolate limits, passed to the Worker Loader as `limits`.

    Cloudflare enforces both; self-hosted workerd does not enforce `cpu_ms` (docs/plugins.md).
    """

    cpu_ms: Annotated[int, msgspec.Meta(ge=1, le=300_000, description="CPU time per request (ms)")] | None = (
        None
    )
    subrequests: (
        Annotated[int, msgspec.Meta(ge=0, le=10_000, description="subrequests per request")] | None
    ) = None


class ModuleIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One module of an uploaded bundle. `data` and `wasm` content is base64."""

    name: ModuleName
    content: Annotated[str, msgspec.Meta(min_length=1, description="module source; base64 for data and wasm")]
    type: ModuleType = "js"


class VersionCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of `POST .../plugins/{plugin}/versions`."""

    # The module count limit is checked by bundles.check (a 413, like the size limit).
    modules: Annotated[list[ModuleIn], msgspec.Meta(min_length=1)]
    main_module: ModuleName | None = None
    compatibility_date: CompatibilityDate = DEFAULT_COMPATIBILITY_DATE
    compatibility_flags: Annotated[list[CompatibilityFlag], msgspec.Meta(max_length=32)] = []
    limits: Limits | None = None
    activate: bool = False


class Provenance(msgspec.Struct, frozen=True, kw_only=True):
    """Where a version rendered from a plugin template came from."""

    template: str
    template_hash: Annotated[str, msgspec.Meta(description="SHA-256 of the template folder's files")]
    parameters: dict[str, Any]


class Version(msgspec.Struct, frozen=True, kw_only=True):
    """A version as the API shows it (without module code)."""

    number: int
    hash: str
    main_module: str
    modules: list[str]
    compatibility_date: str
    compatibility_flags: list[str]
    size_bytes: int
    created_at: datetime
    provenance: Provenance | None = None
    limits: dict[str, int] | None = None


class VersionRow(msgspec.Struct, frozen=True, kw_only=True):
    """A `plugin_versions` row without the module code."""

    id: UUID
    plugin_id: UUID
    number: int
    hash: str
    main_module: str
    module_names: list[str]
    compatibility_date: str
    compatibility_flags: list[str]
    size_bytes: int
    created_at: datetime
    provenance: dict[str, Any] | None = None
    limits: dict[str, int] | None = None


class VersionCode(msgspec.Struct, frozen=True, kw_only=True):
    """A version's modules and settings, as stored."""

    id: UUID
    hash: str
    main_module: str
    modules: list[dict[str, str]]
    compatibility_date: str
    compatibility_flags: list[str]
    limits: dict[str, int] | None


class ActiveVersionSet(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of `PUT .../plugins/{plugin}/active-version`."""

    version: Annotated[int, msgspec.Meta(ge=1)]


class PluginChanged(msgspec.Struct, frozen=True, kw_only=True):
    """A plugin after a change that deployed, with the deployment."""

    plugin: Plugin
    deployment: Deployment


class VersionPublished(msgspec.Struct, frozen=True, kw_only=True):
    """Answer to an upload: the version, whether it is new, and the deployment if it was activated."""

    version: Version
    created: bool
    deployment: Deployment | None


class ModuleDiff(msgspec.Struct, frozen=True, kw_only=True):
    """How one module differs between two versions.

    `diff` is a unified diff for js, cjs, json and text modules; binary (data, wasm) modules
    only report their sizes and SHA-256 digests.
    """

    name: str
    status: Literal["added", "removed", "changed", "unchanged"]
    type_from: str | None
    type_to: str | None
    diff: str | None = None
    size_from: int | None = None
    size_to: int | None = None
    sha256_from: str | None = None
    sha256_to: str | None = None


class SettingChange(msgspec.Struct, frozen=True, kw_only=True):
    """A version setting that differs (main module, compatibility date/flags, limits)."""

    setting: str
    from_: Any = msgspec.field(name="from")
    to: Any


class VersionDiff(msgspec.Struct, frozen=True, kw_only=True):
    """Two versions compared module by module."""

    from_version: int
    to_version: int
    settings: list[SettingChange]
    modules: list[ModuleDiff]


class Preview(msgspec.Struct, frozen=True, kw_only=True):
    """A preview URL of one stored version, live or not (it never serves the routes' traffic)."""

    version: int
    hash: str
    host: str
    url: str
    expires_at: datetime
    gateways: int


class UploadMeta(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The `metadata` part of a multipart upload, and the `plugyard.json` manifest of a folder.

    Every other part is a module named by its form field name; its type comes from `types`
    or from its extension (docs/plugins.md, "Bundle format").
    """

    main_module: ModuleName | None = None
    compatibility_date: CompatibilityDate = DEFAULT_COMPATIBILITY_DATE
    compatibility_flags: Annotated[list[CompatibilityFlag], msgspec.Meta(max_length=32)] = []
    limits: Limits | None = None
    types: dict[ModuleName, ModuleType] = {}
    activate: bool = False

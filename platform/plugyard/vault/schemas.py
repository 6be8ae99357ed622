"""Secrets of a namespace or a plugin: write-only values the plugin reads from `env`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from plugyard.deployments.schemas import Deployment

SecretValue = Annotated[str, msgspec.Meta(max_length=32768, description="the value (never shown again)")]


class SecretSet(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of `PUT .../secrets/{name}`."""

    value: SecretValue


class Secret(msgspec.Struct, frozen=True, kw_only=True):
    """A secret as the API shows it: its name and when it was set, never its value."""

    name: str
    scope: Literal["namespace", "plugin"]
    updated_at: datetime


class SecretChanged(msgspec.Struct, frozen=True, kw_only=True):
    """A secret after it was set (None after a delete), with the deployment that carried it."""

    secret: Secret | None
    deployment: Deployment


class SecretRow(msgspec.Struct, frozen=True, kw_only=True):
    """The current `secrets` row of a name, without its ciphertext."""

    id: UUID
    namespace_id: UUID
    plugin_id: UUID | None
    name: str
    created_at: datetime


class SealedRow(msgspec.Struct, frozen=True, kw_only=True):
    """A `secrets` row with its ciphertext, as the deployment push opens it."""

    id: UUID
    tenant_id: UUID
    namespace_id: UUID
    plugin_id: UUID | None
    name: str
    key_id: str
    ciphertext: bytes

"""Dispatch namespaces: a tenant's containers of plugins."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

from plugyard.deployments.schemas import Deployment
from plugyard.fields import Slug, VarName, VarValue

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST_PATTERN = rf"^(\*\.)?{_LABEL}(?:\.{_LABEL})*(?::[0-9]{{1,5}})?$"
# `host`, `*.suffix` (any subdomain, not the suffix itself), either with an optional `:port`.
EgressHost = Annotated[
    str,
    msgspec.Meta(
        pattern=_HOST_PATTERN,
        max_length=260,
        description="a lower-case exact host (`api.example.com`) or `*.example.com` (any subdomain), "
        "optionally with `:port`",
        examples=["api.example.com", "*.example.org", "127.0.0.1:8080"],
    ),
]
EgressMethod = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


class EgressPolicy(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Where a namespace's plugins may send requests (docs/operations.md, "Egress").

    An empty `allow` denies every outbound request (the default). `methods` null allows any
    method to the listed hosts; raw TCP (`connect()`) is always denied.
    """

    allow: Annotated[list[EgressHost], msgspec.Meta(max_length=100)] = []
    methods: Annotated[list[EgressMethod], msgspec.Meta(min_length=1, max_length=7)] | None = None


DENY_ALL: dict[str, Any] = {"allow": [], "methods": None}


class NamespaceCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of `POST /v1/tenants/{tenant}/namespaces`."""

    name: Slug
    vars: dict[VarName, VarValue] = {}
    egress: EgressPolicy | None = None


class NamespaceUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of `PATCH .../namespaces/{namespace}`: replaces the variables every plugin sees."""

    vars: dict[VarName, VarValue]


class Namespace(msgspec.Struct, frozen=True, kw_only=True):
    """A namespace as the API shows it."""

    id: UUID
    name: str
    vars: dict[str, str]
    egress: EgressPolicy
    created_at: datetime


class NamespaceChanged(msgspec.Struct, frozen=True, kw_only=True):
    """A namespace after a change that deployed, with the deployment."""

    namespace: Namespace
    deployment: Deployment


class NamespaceRow(msgspec.Struct, frozen=True, kw_only=True):
    """A `namespaces` row."""

    id: UUID
    tenant_id: UUID
    name: str
    created_at: datetime
    vars: dict[str, str] = {}
    egress: dict[str, Any] = msgspec.field(default_factory=lambda: dict(DENY_ALL))

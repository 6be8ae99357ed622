"""Routes: patterns that send matching requests to a plugin."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

from plugyard.deployments.schemas import Deployment
from plugyard.fields import Slug


class RouteCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of `POST .../namespaces/{namespace}/routes`."""

    pattern: Annotated[
        str,
        msgspec.Meta(
            min_length=3,
            max_length=300,
            description="host/path; '*.' may start the host, '*' may end the path",
            examples=["shop.example.com/api/*"],
        ),
    ]
    plugin: Slug


class Route(msgspec.Struct, frozen=True, kw_only=True):
    """A route as the API shows it."""

    id: UUID
    pattern: str
    plugin: str
    created_at: datetime


class RouteRow(msgspec.Struct, frozen=True, kw_only=True):
    """A `routes` row joined with its plugin's name."""

    id: UUID
    tenant_id: UUID
    namespace_id: UUID
    plugin_id: UUID
    plugin: str
    pattern: str
    host: str
    host_suffix: str
    wildcard: bool
    created_at: datetime


class RouteCreated(msgspec.Struct, frozen=True, kw_only=True):
    """A new route with the deployment that made it live."""

    route: Route
    deployment: Deployment

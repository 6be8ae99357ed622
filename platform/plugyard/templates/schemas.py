"""Request and response shapes of the templates API."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from plugyard.templates.manifest import Parameter


class TemplateInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A template as the API shows it: its parameter schema and an example parameter set."""

    name: str
    title: str
    description: str
    hash: Annotated[str, msgspec.Meta(description="SHA-256 of the template folder's files")]
    parameters: dict[str, Parameter]
    example: dict[str, Any]


class TemplateInstantiate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of `POST .../plugins/{plugin}/versions/from-template`."""

    template: Annotated[str, msgspec.Meta(min_length=1, max_length=63, examples=["redirects"])]
    parameters: Annotated[
        dict[str, Any],
        msgspec.Meta(description="values by parameter name; omitted ones take their defaults"),
    ] = {}
    activate: bool = False

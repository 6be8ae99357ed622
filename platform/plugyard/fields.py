"""Constrained field types shared by the request schemas of every feature."""

from __future__ import annotations

from typing import Annotated

import msgspec

SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"

Slug = Annotated[
    str,
    msgspec.Meta(
        pattern=SLUG_PATTERN,
        description="lower-case letters, digits and dashes; 1-63 characters; no leading or trailing dash",
        examples=["acme"],
    ),
]
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
VarName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
VarValue = Annotated[str, msgspec.Meta(max_length=5120)]

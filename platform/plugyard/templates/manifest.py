"""Plugin template manifests: the typed parameter declarations and their loading rules (no I/O here).

A manifest (`manifest.toml` in the template's folder) declares a title, a description, one table
per parameter (type, description, default or `required`, constraints) and one `example`
parameter set that the tests run and the docs show.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import msgspec

ParameterType = Literal["string", "integer", "number", "boolean", "enum", "list", "map"]
StringFormat = Literal["cidr", "url", "header-name", "header-value"]
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
PARAMETER_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class ManifestError(ValueError):
    """A template folder whose manifest or source breaks the template rules (a bug in the repo)."""


class StringRules(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Constraints on a string: a `string` parameter, or the items, keys and values of collections.

    `pattern` must match the whole value. `format` adds a structural check: `cidr` (an IPv4 or
    IPv6 network such as `10.0.0.0/8`), `url` (absolute http(s) URL without credentials),
    `header-name` (an HTTP token) or `header-value` (printable, no CR/LF); the empty string
    passes every format (use `min_length = 1` to require a value).
    """

    min_length: int = 0
    max_length: int = 1024
    pattern: str | None = None
    format: StringFormat | None = None
    choices: list[str | int] | None = None


class Parameter(StringRules, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """One declared parameter with its type, default and constraints.

    A parameter is either `required` or has a `default`. `minimum`/`maximum` bound numbers;
    `choices` lists the allowed values of an `enum`, a `string` or an `integer`; lists and maps
    take `min_items`/`max_items`, and `items` (lists), `keys` and `values` (maps) as string rules.
    """

    type: ParameterType
    description: str
    required: bool = False
    default: Any = msgspec.UNSET
    minimum: float | None = None
    maximum: float | None = None
    min_items: int = 0
    max_items: int = 50
    unique_items: bool = False
    items: StringRules | None = None
    keys: StringRules | None = None
    values: StringRules | None = None


class Manifest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The contents of a `manifest.toml`."""

    title: str
    description: str
    parameters: dict[str, Parameter]
    example: dict[str, Any]


def parse(name: str, document: dict[str, Any]) -> Manifest:
    """Turn a decoded `manifest.toml` into a checked Manifest.

    Checks the folder name, the parameter names, that each parameter is required or has a
    default, that every pattern compiles, and that the rules fit the type.

    Raises:
        ManifestError: naming the template and what is wrong.
    """
    if not NAME_PATTERN.match(name):
        raise ManifestError(f"template folder {name!r} must be a lower-case slug")
    try:
        manifest = msgspec.convert(document, Manifest)
    except msgspec.ValidationError as exc:
        raise ManifestError(f"template {name}: manifest.toml: {exc}") from None
    for pname, spec in manifest.parameters.items():
        where = f"template {name}: parameter {pname}"
        if not PARAMETER_NAME.match(pname):
            raise ManifestError(f"{where}: names are lower_snake_case")
        if spec.required == (spec.default is not msgspec.UNSET):
            raise ManifestError(f"{where}: declare either `required = true` or a `default`")
        if spec.type == "enum" and not spec.choices:
            raise ManifestError(f"{where}: an enum needs `choices`")
        wanted = int if spec.type == "integer" else str
        for rules in (spec, spec.items, spec.keys, spec.values):
            if rules is not None and rules.choices and not all(type(c) is wanted for c in rules.choices):
                raise ManifestError(f"{where}: every choice must be a {wanted.__name__}")
        if spec.type == "list" and spec.items is None:
            raise ManifestError(f"{where}: a list needs `items` rules")
        if spec.type == "map" and (spec.keys is None or spec.values is None):
            raise ManifestError(f"{where}: a map needs `keys` and `values` rules")
        for rules in (spec, spec.items, spec.keys, spec.values):
            if rules is not None and rules.pattern is not None:
                try:
                    re.compile(rules.pattern)
                except re.error as exc:
                    raise ManifestError(f"{where}: bad pattern: {exc}") from None
    return manifest

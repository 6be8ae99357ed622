"""Checking parameter values against a manifest: pure functions, no I/O.

Every refusal is an `InvalidInput` naming the parameter as `parameters.<name>` (with `[i]` for a
list item and `.<key>` for a map entry), which the API answers as a 422 problem.
"""

from __future__ import annotations

import copy
import ipaddress
import math
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from plugyard.errors import InvalidInput
from plugyard.templates.manifest import Parameter, StringRules

_CIDR_SHAPE = re.compile(r"^[0-9A-Fa-f:.]+/\d{1,3}$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_HEADER_VALUE = re.compile(r"^[\t\x20-\x7e]*$")


def resolve(parameters: dict[str, Parameter], given: dict[str, Any]) -> dict[str, Any]:
    """Check the given values and fill in the defaults.

    Args:
        parameters: the manifest's parameter declarations.
        given: the caller's values (decoded JSON).

    Returns:
        Every declared parameter with its checked value, in manifest order.

    Raises:
        InvalidInput: an unknown or missing parameter, or a value that breaks its rules.
    """
    for name in given:
        if name not in parameters:
            raise InvalidInput(f"unknown parameter {name!r}", field=f"parameters.{name}")
    values: dict[str, Any] = {}
    for name, spec in parameters.items():
        field = f"parameters.{name}"
        if name in given:
            values[name] = check(spec, given[name], field)
        elif spec.required:
            raise InvalidInput(f"parameter {name!r} is required", field=field)
        else:
            values[name] = copy.deepcopy(spec.default)
    return values


def check(spec: Parameter, value: Any, field: str) -> Any:
    """Check one value against its declaration and return it.

    Raises:
        InvalidInput: naming `field`.
    """
    kind = spec.type
    if kind in {"string", "enum"}:
        return check_string(spec, value, field)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise InvalidInput("expected a boolean", field=field)
        return value
    if kind in {"integer", "number"}:
        return _check_number(spec, value, field)
    if kind == "list":
        return _check_list(spec, value, field)
    return _check_map(spec, value, field)


def _check_number(spec: Parameter, value: Any, field: str) -> int | float:
    integer = spec.type == "integer"
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (integer and isinstance(value, float))
    ):
        raise InvalidInput(f"expected {'an integer' if integer else 'a number'}", field=field)
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput("expected a finite number", field=field)
    if spec.minimum is not None and value < spec.minimum:
        raise InvalidInput(f"must be at least {_show(spec.minimum)}", field=field)
    if spec.maximum is not None and value > spec.maximum:
        raise InvalidInput(f"must be at most {_show(spec.maximum)}", field=field)
    if spec.choices is not None and value not in spec.choices:
        raise InvalidInput(f"must be one of {spec.choices}", field=field)
    return value


def _check_list(spec: Parameter, value: Any, field: str) -> list[str]:
    if not isinstance(value, list):
        raise InvalidInput("expected a list", field=field)
    _check_count(spec, len(value), field)
    assert spec.items is not None  # guaranteed by manifest.parse
    items = [check_string(spec.items, item, f"{field}[{i}]") for i, item in enumerate(value)]
    if spec.unique_items and len(set(items)) != len(items):
        raise InvalidInput("items must be unique", field=field)
    return items


def _check_map(spec: Parameter, value: Any, field: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise InvalidInput("expected an object of strings", field=field)
    _check_count(spec, len(value), field)
    # Both guaranteed by manifest.parse.
    assert spec.keys is not None
    assert spec.values is not None
    checked: dict[str, str] = {}
    for key, item in value.items():
        name = check_string(spec.keys, key, f"{field}.{key}")
        checked[name] = check_string(spec.values, item, f"{field}.{key}")
    return checked


def _check_count(spec: Parameter, count: int, field: str) -> None:
    if count < spec.min_items:
        raise InvalidInput(f"needs at least {spec.min_items} item(s)", field=field)
    if count > spec.max_items:
        raise InvalidInput(f"takes at most {spec.max_items} items", field=field)


def check_string(rules: StringRules, value: Any, field: str) -> str:
    """Check a string against length, pattern, choices and format rules.

    Raises:
        InvalidInput: naming `field`.
    """
    if not isinstance(value, str):
        raise InvalidInput("expected a string", field=field)
    if len(value) < rules.min_length:
        raise InvalidInput(f"must be at least {rules.min_length} characters long", field=field)
    if len(value) > rules.max_length:
        raise InvalidInput(f"must be at most {rules.max_length} characters long", field=field)
    if rules.choices is not None and value not in rules.choices:
        raise InvalidInput(f"must be one of {rules.choices}", field=field)
    if rules.pattern is not None and re.fullmatch(rules.pattern, value) is None:
        raise InvalidInput(f"must match the pattern {rules.pattern}", field=field)
    if rules.format is not None and value and not _FORMATS[rules.format](value):
        raise InvalidInput(f"is not a valid {rules.format}", field=field)
    return value


def _is_cidr(value: str) -> bool:
    # The shape check keeps to the forms the template's own parser reads (no netmasks, no zones).
    if _CIDR_SHAPE.match(value) is None:
        return False
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


def _is_url(value: str) -> bool:
    if any(c.isspace() or not c.isprintable() for c in value):
        return False
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        return False
    return parts.scheme in {"http", "https"} and bool(parts.hostname) and "@" not in parts.netloc and port_ok


def _is_header_name(value: str) -> bool:
    return _HEADER_NAME.match(value) is not None


def _is_header_value(value: str) -> bool:
    return _HEADER_VALUE.match(value) is not None


_FORMATS: dict[str, Callable[[str], bool]] = {
    "cidr": _is_cidr,
    "url": _is_url,
    "header-name": _is_header_name,
    "header-value": _is_header_value,
}


def _show(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)

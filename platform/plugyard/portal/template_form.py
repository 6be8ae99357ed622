"""Forms generated from a template's parameter manifest, and their values read back (no I/O).

Each parameter type has one widget: text (or a text area for long strings), a number, a checkbox,
a select for choices, and a text area for lists (one item per line) and maps (`key = value` per
line). The service checks the values against the manifest; this module only turns text into the
JSON types, naming the parameter when it cannot.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from plugyard.errors import InvalidInput
from plugyard.templates.manifest import Parameter


class Field(msgspec.Struct, frozen=True, kw_only=True):
    """One generated form field."""

    name: str
    widget: str  # text, textarea, number, checkbox, select, list, map
    label: str
    description: str
    required: bool
    value: str
    checked: bool = False
    choices: list[str] = []
    minimum: float | None = None
    maximum: float | None = None
    step: str = "1"
    max_length: int | None = None


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _text(spec: Parameter, value: Any) -> str:
    if value is msgspec.UNSET or value is None:
        return ""
    if spec.type == "list":
        return "\n".join(str(v) for v in value)
    if spec.type == "map":
        return "\n".join(f"{k} = {v}" for k, v in value.items())
    if spec.type == "boolean":
        return "true" if value else ""
    return str(value)


def fields(parameters: Mapping[str, Parameter], given: Mapping[str, str] | None = None) -> list[Field]:
    """The form fields of a manifest, filled with `given` texts (after a refusal) or the defaults."""
    out = []
    for name, spec in parameters.items():
        text = given[name] if given is not None and name in given else _text(spec, spec.default)
        if given is not None and spec.type == "boolean":
            text = "true" if given.get(name) else ""
        base: dict[str, Any] = {
            "name": name,
            "label": _label(name),
            "description": spec.description,
            "required": spec.required,
            "value": text,
        }
        if spec.choices:
            out.append(Field(widget="select", choices=[str(c) for c in spec.choices], **base))
        elif spec.type == "boolean":
            out.append(Field(widget="checkbox", checked=bool(text), **base))
        elif spec.type in {"integer", "number"}:
            step = "1" if spec.type == "integer" else "any"
            out.append(Field(widget="number", minimum=spec.minimum, maximum=spec.maximum, step=step, **base))
        elif spec.type in {"list", "map"}:
            out.append(Field(widget=spec.type, **base))
        else:
            long = spec.max_length > 200
            out.append(Field(widget="textarea" if long else "text", max_length=spec.max_length, **base))
    return out


def values(parameters: Mapping[str, Parameter], form: Mapping[str, str]) -> dict[str, Any]:
    """The parameter values of a submitted form, typed for the manifest.

    Blank optional numbers, lists and maps are left out (their defaults apply).

    Raises:
        InvalidInput: a value that is not of its parameter's type (field `parameters.<name>`).
    """
    out: dict[str, Any] = {}
    for name, spec in parameters.items():
        field = f"parameters.{name}"
        raw = form.get(name, "")
        if spec.type == "boolean":
            out[name] = bool(raw)
            continue
        if spec.type in {"integer", "number"} or (spec.choices and spec.type == "integer"):
            if raw.strip() == "":
                if spec.required:
                    raise InvalidInput("enter a number", field=field)
                continue
            try:
                out[name] = int(raw) if spec.type == "integer" else float(raw)
            except ValueError:
                whole = "a whole number" if spec.type == "integer" else "a number"
                raise InvalidInput(f"enter {whole}", field=field) from None
            continue
        if spec.type == "list":
            items = [line.strip() for line in raw.splitlines() if line.strip()]
            if items or spec.required:
                out[name] = items
            continue
        if spec.type == "map":
            entries: dict[str, str] = {}
            for number, line in enumerate(raw.splitlines(), start=1):
                if not line.strip():
                    continue
                key, eq, value = line.partition("=")
                if not eq:
                    raise InvalidInput(f"line {number}: write key = value", field=field)
                entries[key.strip()] = value.strip()
            if entries or spec.required:
                out[name] = entries
            continue
        if raw == "" and not spec.required and spec.min_length > 0:
            continue  # left blank: the default applies
        out[name] = raw
    return out

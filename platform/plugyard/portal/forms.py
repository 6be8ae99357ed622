"""Reading portal forms into the services' input structs, with messages in plain words (no I/O)."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

from plugyard.errors import DomainError, InvalidInput
from plugyard.fields import SLUG_PATTERN

T = TypeVar("T")
_SLUG = re.compile(SLUG_PATTERN)
_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_AT = re.compile(r"^(?P<message>.*) - at `\$\.?(?P<path>.*)`$")


def slug(value: str, field: str, what: str) -> str:
    """A name made of lower-case letters, digits and dashes.

    Raises:
        InvalidInput: naming `field`.
    """
    value = value.strip()
    if not _SLUG.match(value):
        raise InvalidInput(
            f"a {what} name uses lower-case letters, digits and dashes (1-63 characters, "
            "no dash at either end), e.g. production",
            field=field,
        )
    return value


def convert(data: dict[str, Any], type_: type[T]) -> T:
    """A msgspec struct from form data; a refusal names the field.

    Raises:
        InvalidInput: the data does not fit the struct.
    """
    try:
        return msgspec.convert(data, type_)
    except msgspec.ValidationError as exc:
        text = str(exc)
        found = _AT.match(text)
        field, message = (found["path"], found["message"]) if found else ("form", text)
        if "matching regex" in message:
            message = "this value has characters or a shape that is not allowed here"
        raise InvalidInput(message, field=field or "form") from None


def pairs(text: str, field: str, *, values: bool = True) -> dict[str, str]:
    """`NAME=value` lines (blank lines and lines starting with # are skipped).

    Raises:
        InvalidInput: a line without `=`, or a name that is not a variable name.
    """
    out: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, eq, value = line.partition("=")
        name = name.strip()
        if not eq and values:
            raise InvalidInput(f"line {number}: write NAME=value", field=field)
        if not _VAR.match(name):
            raise InvalidInput(
                f"line {number}: {name!r} is not a variable name "
                "(letters, digits and _, not starting with a digit)",
                field=field,
            )
        out[name] = value.strip()
    return out


def errors_of(exc: DomainError) -> dict[str, str]:
    """Field → message of a refusal (the `errors` of an InvalidInput, or `form`)."""
    found = exc.extra.get("errors") if isinstance(exc.extra.get("errors"), list) else None
    if found:
        return {str(e["field"]): str(e["message"]) for e in found}
    return {"form": exc.detail}

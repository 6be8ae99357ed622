"""The namespace page's egress form read into the API's `EgressPolicy`, refusals in plain words (no I/O).

The rules are the API's own (`plugyard.namespaces.schemas.EgressPolicy`): the form only turns
lines and checkboxes into that struct and says, for a refused line, what is wrong with it.
"""

from __future__ import annotations

from typing import Any, get_args

import msgspec

from plugyard.errors import InvalidInput
from plugyard.namespaces.schemas import EgressMethod, EgressPolicy

METHODS: tuple[str, ...] = get_args(EgressMethod)
MAX_HOSTS = 100


def hosts_text(policy: dict[str, Any]) -> str:
    """A stored policy's hosts, one per line, as the text area shows them."""
    return "\n".join(str(h) for h in policy.get("allow") or [])


def _why(line: str) -> str:
    """What is wrong with a host line the schema refused, in plain words."""
    if "://" in line:
        return "leave out the scheme: write api.example.com, not https://api.example.com"
    if "/" in line:
        return "write only the host (and port), without a path"
    if line in {"*", "*.*"} or (line.startswith("*") and not line.startswith("*.")):
        return "a wildcard covers the subdomains of one domain: write *.example.com"
    if "*" in line[1:]:
        return "a * may only stand for the first part, as in *.example.com"
    if " " in line or "\t" in line:
        return "one host per line, without spaces"
    if line.count(":") > 1 or (":" in line and not line.rsplit(":", 1)[1].isdigit()):
        return "a port is 1 to 5 digits after a colon, as in api.example.com:8443"
    return (
        "a host is made of lower-case letters, digits, dashes and dots (api.example.com), "
        "or *.example.com for any subdomain, optionally with :port"
    )


def policy(allow_text: str, methods: list[str]) -> EgressPolicy:
    """The policy of a submitted form: one host per line; no method ticked means any method.

    Blank lines and lines starting with `#` are skipped; hosts are compared in lower case, and a
    repeated host counts once.

    Raises:
        InvalidInput: naming `allow` (with the line number and what is wrong) or `methods`.
    """
    lines: list[tuple[int, str]] = []
    seen: set[str] = set()
    for number, raw in enumerate(allow_text.splitlines(), start=1):
        line = raw.strip().lower()
        if line and not line.startswith("#") and line not in seen:
            seen.add(line)
            lines.append((number, line))
    if len(lines) > MAX_HOSTS:
        raise InvalidInput(f"at most {MAX_HOSTS} hosts; this list has {len(lines)}", field="allow")
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        choices = ", ".join(METHODS)
        raise InvalidInput(f"unknown method {unknown[0]!r}: choose among {choices}", field="methods")
    data = {"allow": [h for _, h in lines], "methods": [m for m in METHODS if m in methods] or None}
    try:
        return msgspec.convert(data, EgressPolicy)
    except msgspec.ValidationError as exc:
        text = str(exc)
        if "`$.allow[" in text:
            index = int(text.rsplit("`$.allow[", 1)[1].split("]", 1)[0])
            number, line = lines[index]
            message = f"line {number}: {line!r} is not allowed: {_why(line)}"
            raise InvalidInput(message, field="allow") from None
        raise InvalidInput(text, field="allow") from None

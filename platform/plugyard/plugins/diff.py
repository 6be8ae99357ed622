"""Comparing two versions module by module: pure functions, no I/O."""

from __future__ import annotations

import base64
import difflib
import hashlib
from typing import Any, Literal

from plugyard.plugins.schemas import ModuleDiff, SettingChange

Status = Literal["added", "removed", "changed", "unchanged"]
_TEXT_TYPES = frozenset({"js", "cjs", "json", "text"})


def _binary(module: dict[str, str]) -> bytes:
    return base64.b64decode(module["content"])


def _module_diff(name: str, old: dict[str, str] | None, new: dict[str, str] | None) -> ModuleDiff:
    status: Status = "added" if old is None else "removed" if new is None else "changed"
    if old is not None and new is not None and old == new:
        status = "unchanged"
    type_from = None if old is None else old["type"]
    type_to = None if new is None else new["type"]
    if all(m is None or m["type"] in _TEXT_TYPES for m in (old, new)):
        diff = None
        if status != "unchanged":
            lines = difflib.unified_diff(
                [] if old is None else old["content"].splitlines(keepends=True),
                [] if new is None else new["content"].splitlines(keepends=True),
                fromfile="/dev/null" if old is None else f"a/{name}",
                tofile="/dev/null" if new is None else f"b/{name}",
            )
            diff = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
        return ModuleDiff(name=name, status=status, type_from=type_from, type_to=type_to, diff=diff)
    data = {key: None if m is None else _content_bytes(m) for key, m in (("from", old), ("to", new))}
    return ModuleDiff(
        name=name,
        status=status,
        type_from=type_from,
        type_to=type_to,
        size_from=None if data["from"] is None else len(data["from"]),
        size_to=None if data["to"] is None else len(data["to"]),
        sha256_from=None if data["from"] is None else hashlib.sha256(data["from"]).hexdigest(),
        sha256_to=None if data["to"] is None else hashlib.sha256(data["to"]).hexdigest(),
    )


def _content_bytes(module: dict[str, str]) -> bytes:
    return module["content"].encode() if module["type"] in _TEXT_TYPES else _binary(module)


def modules(old: list[dict[str, str]], new: list[dict[str, str]]) -> list[ModuleDiff]:
    """Every module of either version, sorted by name, with what changed."""
    before = {m["name"]: m for m in old}
    after = {m["name"]: m for m in new}
    return [
        _module_diff(name, before.get(name), after.get(name)) for name in sorted(before.keys() | after.keys())
    ]


def settings(old: dict[str, Any], new: dict[str, Any]) -> list[SettingChange]:
    """The version settings that differ, in a fixed order."""
    return [
        SettingChange(setting=key, from_=old[key], to=new[key]) for key in sorted(old) if old[key] != new[key]
    ]

"""A unified diff laid out side by side (no I/O)."""

from __future__ import annotations

import msgspec


class Row(msgspec.Struct, frozen=True, kw_only=True):
    """One line pair: `left`/`right` are None where that side has no line; `kind` styles the row."""

    kind: str  # "same", "changed", "hunk"
    left: str | None
    right: str | None


def side_by_side(unified: str | None) -> list[Row]:
    """Rows of a unified diff: removed lines paired with the added lines that replace them."""
    rows: list[Row] = []
    removed: list[str] = []
    added: list[str] = []

    def flush() -> None:
        for i in range(max(len(removed), len(added))):
            rows.append(
                Row(
                    kind="changed",
                    left=removed[i] if i < len(removed) else None,
                    right=added[i] if i < len(added) else None,
                )
            )
        removed.clear()
        added.clear()

    for line in (unified or "").splitlines():
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("@@"):
            flush()
            rows.append(Row(kind="hunk", left=line, right=line))
        elif line.startswith("-"):
            removed.append(line[1:])
        elif line.startswith("+"):
            added.append(line[1:])
        elif line.startswith("\\"):
            continue
        else:
            flush()
            rows.append(Row(kind="same", left=line[1:], right=line[1:]))
    flush()
    return rows

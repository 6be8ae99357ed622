"""`plugyard logs TENANT/NAMESPACE/PLUGIN [--follow]`: print (and follow) a plugin's logs via the API."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import httpx


def format_entry(entry: dict[str, Any]) -> str:
    """One entry as text: time, kind/level, message; an exception's stack on indented lines."""
    line = f"{entry['at']} {entry['version'][:12]} {entry['level']:<5} {entry['message']}"
    if entry.get("stack"):
        line += "\n" + "\n".join("    " + part.strip() for part in entry["stack"].splitlines())
    return line


def run(
    target: str,
    *,
    api: str,
    token: str | None,
    follow: bool,
    limit: int,
    interval_s: float,
    out: TextIO = sys.stdout,
    max_polls: int | None = None,
) -> int:
    """Print the latest `limit` entries, then (with `follow`) new ones as they arrive.

    Args:
        target: `TENANT/NAMESPACE/PLUGIN`.
        api: the control plane's base URL.
        token: an API token of the tenant (or an admin token).
        follow: keep polling for new entries until interrupted.
        limit: how many of the latest entries to print first.
        interval_s: seconds between polls when following.
        out: where to print.
        max_polls: stop after this many follow polls (None: until interrupted).

    Returns:
        The process exit status.

    Raises:
        ValueError: a malformed target or a missing token.
    """
    parts = target.split("/")
    if len(parts) != 3 or not all(parts):
        raise ValueError("the target must be TENANT/NAMESPACE/PLUGIN")
    if not token:
        raise ValueError("an API token is needed: --token or PLUGYARD_TOKEN")
    tenant, namespace, plugin = parts
    path = f"/v1/tenants/{tenant}/namespaces/{namespace}/plugins/{plugin}/logs"
    after: int | None = None
    polls = 0
    with httpx.Client(
        base_url=api.rstrip("/"), headers={"authorization": f"Bearer {token}"}, timeout=10
    ) as http:
        while True:
            params: dict[str, int] = {"limit": limit} if after is None else {"after": after, "limit": 1000}
            try:
                response = http.get(path, params=params)
            except httpx.HTTPError as exc:
                if not follow:
                    raise RuntimeError(f"cannot reach {api}: {exc}") from exc
                response = None
            if response is not None:
                if response.status_code != 200:
                    detail = response.json().get("detail") if response.content else response.reason_phrase
                    print(f"plugyard: HTTP {response.status_code}: {detail}", file=sys.stderr)
                    return 1
                entries = response.json()
                for entry in entries:
                    print(format_entry(entry), file=out, flush=True)
                if entries:
                    after = entries[-1]["id"]
                elif after is None:
                    after = 0
            if not follow:
                return 0
            polls += 1
            if max_polls is not None and polls > max_polls:
                return 0
            time.sleep(interval_s)

"""The client side of `plugyard plugins push`: upload a folder as one multipart request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import msgspec

from plugyard.plugins.folder import read_folder


class PushError(Exception):
    """The upload failed; the message is the problem's detail (or the transport error)."""


def push_folder(
    *,
    api: str,
    token: str,
    tenant: str,
    namespace: str,
    plugin: str,
    root: Path,
    main: str | None = None,
    activate: bool = False,
    timeout_s: float = 60.0,
) -> dict[str, Any]:
    """Upload every file below `root` as a version of the plugin.

    Module types come from the extensions (docs/plugins.md); `plugyard.json` in `root`, if
    present, gives the main module and settings; `main` and `activate` override it.

    Returns:
        The API's answer: `{"version": ..., "created": bool, "deployment": ... | None}`.

    Raises:
        PushError: the folder cannot be read, the server cannot be reached or refused the upload.
        ValueError: the folder or its manifest is not usable.
    """
    files, meta = read_folder(root)
    if main is not None:
        meta.main_module = main
    meta.activate = activate or meta.activate
    parts: list[tuple[str, tuple[str | None, bytes, str]]] = [
        ("metadata", (None, msgspec.json.encode(meta), "application/json"))
    ]
    parts += [
        (name, (Path(name).name, content, "application/octet-stream")) for name, content in files.items()
    ]
    url = f"{api.rstrip('/')}/v1/tenants/{tenant}/namespaces/{namespace}/plugins/{plugin}/versions/upload"
    try:
        response = httpx.post(
            url, files=parts, headers={"authorization": f"Bearer {token}"}, timeout=timeout_s
        )
    except httpx.HTTPError as exc:
        raise PushError(f"cannot reach {api}: {exc}") from None
    if response.status_code >= 400:
        raise PushError(_problem_text(response))
    body: dict[str, Any] = response.json()
    return body


def _problem_text(response: httpx.Response) -> str:
    try:
        problem = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:300]}"
    detail = problem.get("detail") or problem.get("title") or response.reason_phrase
    module = f" (module {problem['module']})" if problem.get("module") else ""
    return f"HTTP {response.status_code}: {detail}{module}"


def summary(answer: dict[str, Any]) -> list[str]:
    """Human-readable lines for a push answer."""
    version = answer["version"]
    state = "created" if answer["created"] else "already stored (same bundle and settings)"
    lines = [f"version {version['number']} {state}", f"  hash {version['hash']}"]
    deployment = answer.get("deployment")
    if deployment is None:
        lines.append("  not activated (use --activate, or PUT .../active-version)")
    else:
        pushes = deployment["pushes"]
        ok = sum(1 for p in pushes if p["status"] == "succeeded")
        lines.append(
            f"  deployment revision {deployment['revision']}: pushed to {ok} of {len(pushes)} gateway(s)"
        )
        lines += [f"    {p['gateway']}: {p['status']} {p['last_error'] or ''}".rstrip() for p in pushes]
    return lines

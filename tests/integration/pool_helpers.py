"""Helpers for the gateway pool tests: a supervised pool, signed pushes, counted traffic."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from plugyard import signing
from plugyard.gateway.supervisor import PoolSettings, Supervisor
from tests.conftest import OUTPUT


@contextmanager
def running_pool(
    tmp_path: Path, secret: str, *, control_plane_url: str | None = None, **settings: Any
) -> Iterator[Supervisor]:
    """A supervised pool on a free loopback port (workerd output in test-output/)."""
    OUTPUT.mkdir(exist_ok=True)
    with (OUTPUT / f"pool-{tmp_path.name}.log").open("ab") as log:
        pool = Supervisor(
            PoolSettings(listen="127.0.0.1:0", **settings),
            storage_dir=tmp_path / "storage",
            secret=secret,
            log_file=log,
            control_plane_url=control_plane_url,
        )
        pool.storage_dir.mkdir(parents=True, exist_ok=True)
        pool.start()
        try:
            yield pool
        finally:
            pool.stop()


def bundle(code: str) -> tuple[str, dict[str, Any]]:
    """A one-module bundle and its content hash."""
    body = {
        "mainModule": "index.js",
        "modules": {"index.js": {"js": code}},
        "compatibilityDate": "2025-11-01",
        "compatibilityFlags": [],
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest(), body


def push(
    url: str, secret: str, tenant: str, revision: int, plugins: dict[str, tuple[str, str]]
) -> dict[str, str]:
    """Push namespace `{tenant}/prod` directly (no control plane): plugin → (host, code).

    Returns:
        plugin name → version hash.
    """
    body: dict[str, Any] = {
        "tenant": tenant,
        "namespace": "prod",
        "revision": revision,
        "routes": [],
        "plugins": {},
        "bundles": {},
    }
    versions = {}
    for name, (host, code) in plugins.items():
        digest, content = bundle(code)
        versions[name] = digest
        body["routes"].append({"pattern": f"{host}/*", "plugin": name})
        body["plugins"][name] = {"version": digest, "env_hash": "0" * 16, "vars": {}, "limits": None}
        body["bundles"][digest] = content
    data = json.dumps(body).encode()
    path = f"/_plugyard/namespaces/{tenant}/prod"
    headers = {**signing.sign(secret, method="PUT", path=path, body=data), "content-type": "application/json"}
    response = httpx.put(url + path, content=data, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return versions


def text_plugin(text: str) -> str:
    """A plugin answering a fixed text."""
    return f"export default {{ fetch() {{ return new Response({json.dumps(text)}) }} }}"


def wait_until(predicate: Any, timeout_s: float, what: str) -> None:
    """Poll `predicate` every 50 ms until true; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def wait_served(pool: Supervisor, host: str, text: str, timeout_s: float = 5.0) -> None:
    """Wait until every serving process answers `text` for `host` (a push is live at once on the
    process that took it, on the others within their 1 s snapshot refresh)."""

    def everywhere() -> bool:
        for member in list(pool.members):
            try:
                r = httpx.get(f"http://127.0.0.1:{member.probe_port}/", headers={"host": host}, timeout=5)
            except httpx.HTTPError:
                return False
            if r.text != text:
                return False
        return True

    wait_until(everywhere, timeout_s, f"{host} to answer {text!r} on every process")


class Traffic:
    """Background requests to one host, every response recorded (start time, status or error).

    A request is sent once: the client never retries (httpx's transport retries nothing by default),
    so a connection closed under a request counts as a failure.
    """

    def __init__(
        self,
        url: str,
        host: str,
        *,
        threads: int = 2,
        keepalive: bool = True,
        pause_s: float = 0.0,
    ):
        self.url = url
        self.host = host
        self.keepalive = keepalive
        self.pause_s = pause_s
        self.results: list[tuple[float, float, int | str, str]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Traffic:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    def _run(self) -> None:
        # keepalive False: one new connection per request (no pooled connection is ever reused).
        limits = httpx.Limits() if self.keepalive else httpx.Limits(max_keepalive_connections=0)
        client = httpx.Client(timeout=30, limits=limits)
        deadline = time.monotonic() + 300  # bounded, whatever the test does
        while not self._stop.is_set() and time.monotonic() < deadline:
            started = time.monotonic()
            try:
                r = client.get(self.url + "/", headers={"host": self.host})
                outcome: int | str = r.status_code
                body = r.text
            except httpx.HTTPError as exc:
                outcome, body = type(exc).__name__, str(exc)
            self.results.append((started, time.monotonic(), outcome, body))
            if self.pause_s:
                time.sleep(self.pause_s)
        client.close()

    def failures(self) -> list[tuple[float, float, int | str, str]]:
        """Every request that did not answer 200."""
        return [r for r in self.results if r[2] != 200]

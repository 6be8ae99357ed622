"""Quarantine reports from the pool supervisor: to the gateway itself, then to the control plane.

1. `POST /_plugyard/quarantine` (signed) to the state process, synchronously, before the hung
   process is replaced: stored in the Registry, so a replacement never serves the version; then
   to every live serving process, which applies it at once (others would within their 1 s
   snapshot refresh). Works while the control plane is unreachable.
2. `POST {control plane}/v1/gateway/quarantines` (signed): recorded in PostgreSQL, shown to the
   tenant, and deployed, so every gateway gets it in its pushes and later pushes keep it.
Both are retried (every 2 s, for up to 10 minutes) until they are acknowledged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import msgspec
import structlog

from plugyard import signing

log = structlog.get_logger(__name__)

GATEWAY_PATH = "/_plugyard/quarantine"
CONTROL_PLANE_PATH = "/v1/gateway/quarantines"
RETRY_EVERY_S = 2.0
GIVE_UP_AFTER_S = 600.0


def parse_plugin_id(plugin_id: str) -> tuple[str, str, str, str] | None:
    """Split `{tenant}/{namespace}/{plugin}@{version}` (as announced by src/pool.js)."""
    head, sep, version = plugin_id.rpartition("@")
    parts = head.split("/")
    if not sep or len(parts) != 3 or len(version) != 64:
        return None
    return parts[0], parts[1], parts[2], version


@dataclass
class _Report:
    body: dict[str, str]
    gateway_done: bool = False
    control_plane_done: bool = False
    since: float = field(default_factory=time.monotonic)


class QuarantineReporter:
    """Delivers quarantine reports; `run` is the delivery loop (a thread)."""

    def __init__(
        self,
        secret: str,
        control_plane_url: str | None,
        gateway_name: str,
        targets: Callable[[], list[str]],
    ) -> None:
        """Hold the delivery settings.

        Args:
            secret: the gateway signing secret.
            control_plane_url: the control plane's base URL (None: report to the gateway only).
            gateway_name: this gateway's name in reports.
            targets: lists the live serving processes' admin base URLs.
        """
        self._secret = secret
        self._control_plane = control_plane_url.rstrip("/") if control_plane_url else None
        self._name = gateway_name
        self._targets = targets
        self._pending: list[_Report] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self.delivered: list[dict[str, str]] = []

    def submit(self, tenant: str, namespace: str, plugin: str, version: str, *, reason: str) -> None:
        """Tell the gateway now (synchronously), then queue the control plane's report."""
        body = {"tenant": tenant, "namespace": namespace, "plugin": plugin, "version": version}
        log.warning("version_quarantine_reported", **body)
        report = _Report({**body, "reason": reason})
        with httpx.Client(timeout=2.0) as client:
            self._deliver_gateway(client, report)
        with self._lock:
            self._pending.append(report)
        self._wake.set()

    def stop(self) -> None:
        """End the loop."""
        self._stopped.set()
        self._wake.set()

    def run(self) -> None:
        """Deliver pending reports until stopped."""
        with httpx.Client(timeout=5.0) as client:
            while not self._stopped.is_set():
                self._wake.wait(RETRY_EVERY_S)
                self._wake.clear()
                with self._lock:
                    pending = list(self._pending)
                for report in pending:
                    self._deliver(client, report)
                    if (report.gateway_done and report.control_plane_done) or (
                        time.monotonic() - report.since > GIVE_UP_AFTER_S
                    ):
                        with self._lock:
                            self._pending.remove(report)

    def _post(self, client: httpx.Client, url: str, path: str, body: bytes) -> int | None:
        headers = signing.sign(self._secret, method="POST", path=path, body=body)
        headers["content-type"] = "application/json"
        try:
            return client.post(url + path, content=body, headers=headers).status_code
        except httpx.HTTPError:
            return None

    def _deliver_gateway(self, client: httpx.Client, report: _Report) -> None:
        body = msgspec.json.encode(report.body)
        for i, target in enumerate(self._targets()):
            status = self._post(client, target, GATEWAY_PATH, body)
            # The first target is the state process, which stores it. 404: the plugin is gone.
            if i == 0 and status in (200, 404):
                report.gateway_done = True

    def _deliver(self, client: httpx.Client, report: _Report) -> None:
        if not report.gateway_done:
            self._deliver_gateway(client, report)
        if not report.control_plane_done:
            if self._control_plane is None:
                report.control_plane_done = True
            else:
                body = msgspec.json.encode({**report.body, "gateway": self._name})
                status = self._post(client, self._control_plane, CONTROL_PLANE_PATH, body)
                report.control_plane_done = status == 200
        if report.gateway_done and report.control_plane_done:
            self.delivered.append(report.body)

"""The control plane's own metrics in the Prometheus text exposition format (version 0.0.4).

No metric carries a tenant, namespace or plugin label: their number is unbounded. Per-tenant
figures come from the query API. Counters here are per process (with several granian workers,
Prometheus sums the scrapes of each); the gateway and push gauges come from the database.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from plugyard.metrics.schemas import EgressTotalRow, GatewayRow

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def labels(values: dict[str, str]) -> str:
    """A label set in exposition syntax (`{a="x",b="y"}`), empty for no labels."""
    if not values:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(values.items())) + "}"


class Counter:
    """A monotonically increasing counter with a fixed label set."""

    def __init__(self, name: str, help_: str) -> None:
        self.name, self.help = name, help_
        self._values: dict[tuple[tuple[str, str], ...], float] = {}
        self._lock = threading.Lock()

    def inc(self, amount: float = 1, **labels: str) -> None:
        """Add to the series with these labels."""
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._values[key] = self._values.get(key, 0) + amount

    def lines(self) -> list[str]:
        """Exposition lines."""
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        with self._lock:
            items = sorted(self._values.items())
        out += [f"{self.name}{labels(dict(k))} {v:g}" for k, v in items]
        return out


class Histogram:
    """A cumulative histogram without labels."""

    def __init__(self, name: str, help_: str, buckets: Sequence[float]) -> None:
        self.name, self.help, self.buckets = name, help_, tuple(buckets)
        self._counts = [0] * (len(self.buckets) + 1)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        """Record one observation."""
        with self._lock:
            self._sum += value
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    self._counts[i] += 1
                    return
            self._counts[-1] += 1

    def lines(self) -> list[str]:
        """Exposition lines."""
        with self._lock:
            counts, total = list(self._counts), self._sum
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        running = 0
        for bound, count in zip(self.buckets, counts, strict=False):
            running += count
            out.append(f'{self.name}_bucket{{le="{bound:g}"}} {running}')
        running += counts[-1]
        out += [f'{self.name}_bucket{{le="+Inf"}} {running}', f"{self.name}_sum {total:g}"]
        out.append(f"{self.name}_count {running}")
        return out


HTTP_REQUESTS = Counter("plugyard_http_requests_total", "API requests answered, by method and status class.")
INGEST_BATCHES = Counter(
    "plugyard_ingest_batches_total",
    "Metrics batches received from gateways, by result (stored, duplicate, refused, invalid, expired).",
)
INGEST_EVENTS = Counter("plugyard_ingest_events_total", "Metric rows and log entries stored.")
GATEWAY_DROPPED = Counter(
    "plugyard_gateway_dropped_total",
    "Requests, logs and batches gateways reported as dropped (buffer overflow, refused batches).",
)
INGEST_LAG = Histogram(
    "plugyard_ingest_lag_seconds",
    "Time from a batch being sealed on a gateway to being stored.",
    (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600),
)
_STARTED = time.time()


def process_lines() -> list[str]:
    """The in-process counters and histogram."""
    lines = [
        "# HELP plugyard_up 1 while the control plane answers.",
        "# TYPE plugyard_up gauge",
        "plugyard_up 1",
    ]
    lines += [
        "# HELP plugyard_start_time_seconds Unix time the process started.",
        "# TYPE plugyard_start_time_seconds gauge",
        f"plugyard_start_time_seconds {_STARTED:.3f}",
    ]
    for metric in (HTTP_REQUESTS, INGEST_BATCHES, INGEST_EVENTS, GATEWAY_DROPPED, INGEST_LAG):
        lines += metric.lines()
    return lines


def database_gauges(gateways: Sequence[GatewayRow], open_pushes: dict[str, int]) -> list[str]:
    """Gauges read from the database: gateway freshness and open (failed/pending) pushes."""
    now = datetime.now(UTC)
    lines = [
        "# HELP plugyard_gateway_last_batch_age_seconds Seconds since each gateway's latest stored batch.",
        "# TYPE plugyard_gateway_last_batch_age_seconds gauge",
    ]
    lines += [
        f"plugyard_gateway_last_batch_age_seconds{labels({'gateway': g.gateway})} "
        f"{(now - g.last_received_at).total_seconds():.3f}"
        for g in gateways
    ]
    lines += [
        "# HELP plugyard_gateway_reported_dropped Dropped requests/logs/batches reported by each gateway "
        "(over the retained batch ids).",
        "# TYPE plugyard_gateway_reported_dropped gauge",
    ]
    for g in gateways:
        for kind in ("requests", "logs", "batches", "egress"):
            value = getattr(g, f"dropped_{kind}")
            lines.append(
                f"plugyard_gateway_reported_dropped{labels({'gateway': g.gateway, 'kind': kind})} {value}"
            )
    lines += [
        "# HELP plugyard_pushes_open Deployment pushes not delivered yet, by status (push failures).",
        "# TYPE plugyard_pushes_open gauge",
    ]
    lines += [
        f"plugyard_pushes_open{labels({'status': s})} {open_pushes.get(s, 0)}" for s in ("failed", "pending")
    ]
    return lines


def egress_lines(totals: Sequence[EgressTotalRow]) -> list[str]:
    """`plugyard_egress_requests_total{tenant,namespace,outcome}` from the running totals.

    The one metric with tenant labels: one pair of series per namespace that ever made an
    outbound request (bounded by the namespaces, never by plugins or hosts).
    """
    lines = [
        "# HELP plugyard_egress_requests_total Plugins' outbound requests by namespace and egress "
        "policy outcome (allowed, blocked), from stored gateway batches.",
        "# TYPE plugyard_egress_requests_total counter",
    ]
    for row in totals:
        for outcome in ("allowed", "blocked"):
            names = {"tenant": row.tenant, "namespace": row.namespace, "outcome": outcome}
            lines.append(f"plugyard_egress_requests_total{labels(names)} {getattr(row, outcome)}")
    return lines


def render(lines: Sequence[str]) -> str:
    """Join lines into an exposition body."""
    return "\n".join(lines) + "\n"

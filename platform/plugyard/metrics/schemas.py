"""Metrics: the gateway's ingest batch, and what the query, usage and log APIs answer."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

# Where gateways POST their batches (PLUGYARD_INGEST_URL = control plane base URL + this path).
INGEST_PATH = "/v1/ingest/metrics"
# Upper bounds (ms) of the latency buckets; the last bucket counts everything above 10 s.
LATENCY_BUCKETS_MS: tuple[int, ...] = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
N_BUCKETS = len(LATENCY_BUCKETS_MS) + 1
OUTCOMES: tuple[str, ...] = ("ok", "exception", "exceededCpu", "exceededMemory", "canceled", "other")

Count = Annotated[int, msgspec.Meta(ge=0, le=2**53)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
HEX_PATTERN = r"^[0-9a-f]{1,64}$"
Hex = Annotated[str, msgspec.Meta(pattern=HEX_PATTERN)]
# A row's version: HEX_PATTERN too, but checked by the ingest once per distinct value
# (`service.decode_batch`): a regex match per row was half the cost of decoding a batch.
RowVersion = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Step = Literal["minute", "hour"]
# An egress destination: `host[:port]` as in the request URL, or OTHER_HOST.
Host = Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
# The gateway counts hosts beyond its per-minute bound under this name (never a host name).
OTHER_HOST = "(other)"
# Hosts listed per namespace in the egress answer (the rest are summed into OTHER_HOST).
MAX_EGRESS_HOSTS = 50
Dimension = Literal["namespace", "plugin", "version", "variant"]


# Ingest (docs/gateway-protocol.md, "Metrics ingest").


class BatchRow(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One (tenant, namespace, plugin, version, variant, minute) aggregate from a gateway."""

    tenant: Name
    namespace: Name
    plugin: Name
    version: RowVersion
    variant: Name
    minute: Annotated[int, msgspec.Meta(ge=0, multiple_of=60)]
    requests: Count = 0
    s2xx: Count = 0
    s3xx: Count = 0
    s4xx: Count = 0
    s5xx: Count = 0
    failures: Count = 0
    latency: Annotated[list[Count], msgspec.Meta(min_length=N_BUCKETS, max_length=N_BUCKETS)] = msgspec.field(
        default_factory=lambda: [0] * N_BUCKETS
    )
    outcomes: dict[
        Literal["ok", "exception", "exceededCpu", "exceededMemory", "canceled", "other"], Count
    ] = {}


class BatchLog(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One console line or exception of a plugin (already masked by the gateway)."""

    tenant: Name
    namespace: Name
    plugin: Name
    version: Hex
    at: Annotated[int, msgspec.Meta(ge=0)]
    kind: Literal["log", "exception"]
    level: Annotated[str, msgspec.Meta(max_length=16)]
    message: Annotated[str, msgspec.Meta(max_length=8192)]
    stack: Annotated[str, msgspec.Meta(max_length=16384)] | None = None


class BatchEgress(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Outbound requests of a namespace's plugins to one host in one minute, by policy decision."""

    tenant: Name
    namespace: Name
    host: Host
    minute: Annotated[int, msgspec.Meta(ge=0, multiple_of=60)]
    allowed: Count = 0
    blocked: Count = 0


class Dropped(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What the gateway had to drop since its previous batch (buffer overflow, refused batches)."""

    requests: Count = 0
    logs: Count = 0
    batches: Count = 0
    egress: Count = 0


class Batch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of `POST /v1/ingest/metrics`."""

    batch_id: UUID
    gateway: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    sealed_at: Annotated[int, msgspec.Meta(ge=0)]
    rows: Annotated[list[BatchRow], msgspec.Meta(max_length=20000)]
    logs: Annotated[list[BatchLog], msgspec.Meta(max_length=5000)]
    # Optional (gateways before egress metrics send none; a gateway omits it when empty).
    egress: Annotated[list[BatchEgress], msgspec.Meta(max_length=20000)] = []
    dropped: Dropped = msgspec.field(default_factory=Dropped)


class IngestResult(msgspec.Struct, frozen=True, kw_only=True):
    """The ingest endpoint's answer: `stored`, or `duplicate` for a batch id already held."""

    status: Literal["stored", "duplicate"]
    batch_id: UUID


# Query API.


class Percentiles(msgspec.Struct, frozen=True, kw_only=True):
    """Latency percentiles (ms) estimated from the histogram; null without requests."""

    p50: float | None
    p95: float | None
    p99: float | None


class Counters(msgspec.Struct, frozen=True, kw_only=True):
    """Request counters over a point or a whole range."""

    requests: int
    errors: int
    s2xx: int
    s3xx: int
    s4xx: int
    s5xx: int
    failures: int
    outcomes: dict[str, int]
    latency_ms: Percentiles
    latency_histogram: list[int]


class Point(msgspec.Struct, frozen=True, kw_only=True):
    """One step of a series."""

    t: datetime
    counters: Counters


class Series(msgspec.Struct, frozen=True, kw_only=True):
    """A series for one group (the dimensions not grouped by are null)."""

    namespace: str | None
    plugin: str | None
    version: str | None
    variant: str | None
    totals: Counters
    points: list[Point]


class MetricsAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """`GET /v1/tenants/{tenant}/metrics`."""

    start: datetime
    end: datetime
    step: Step
    group_by: list[str]
    latency_buckets_ms: list[int]
    totals: Counters
    series: list[Series]


class EgressCounts(msgspec.Struct, frozen=True, kw_only=True):
    """Outbound requests the namespace's egress policy allowed and blocked."""

    allowed: int
    blocked: int


class EgressPoint(msgspec.Struct, frozen=True, kw_only=True):
    """One step of an egress series."""

    t: datetime
    allowed: int
    blocked: int


class EgressHost(msgspec.Struct, frozen=True, kw_only=True):
    """One destination's counts over the whole range."""

    host: str
    allowed: int
    blocked: int


class EgressSeries(msgspec.Struct, frozen=True, kw_only=True):
    """A namespace's egress: totals, points per step, and its busiest destinations."""

    namespace: str
    totals: EgressCounts
    points: list[EgressPoint]
    hosts: list[EgressHost]


class EgressAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """`GET /v1/tenants/{tenant}/metrics/egress`."""

    start: datetime
    end: datetime
    step: Step
    totals: EgressCounts
    series: list[EgressSeries]


class UsageDay(msgspec.Struct, frozen=True, kw_only=True):
    """A tenant's usage on one UTC day."""

    day: date
    requests: int
    errors: int
    versions: int


class LogEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One stored log line or exception."""

    id: int
    at: datetime
    version: str
    kind: str
    level: str
    message: str
    stack: str | None


# Rows.


class MetricRow(msgspec.Struct, frozen=True, kw_only=True):
    """A minute or hour row (`t` is its start)."""

    namespace: str
    plugin: str
    version: str
    variant: str
    t: datetime
    requests: int
    s2xx: int
    s3xx: int
    s4xx: int
    s5xx: int
    failures: int
    outcome_ok: int
    outcome_exception: int
    outcome_exceeded_cpu: int
    outcome_exceeded_memory: int
    outcome_canceled: int
    outcome_other: int
    latency: list[int]


class GatewayRow(msgspec.Struct, frozen=True, kw_only=True):
    """Per-gateway ingest facts for /metrics."""

    gateway: str
    last_received_at: datetime
    dropped_requests: int
    dropped_logs: int
    dropped_batches: int
    dropped_egress: int


class EgressPointRow(msgspec.Struct, frozen=True, kw_only=True):
    """A namespace's egress counts in one step."""

    namespace: str
    t: datetime
    allowed: int
    blocked: int


class EgressHostRow(msgspec.Struct, frozen=True, kw_only=True):
    """A namespace's egress counts to one host over a range."""

    namespace: str
    host: str
    allowed: int
    blocked: int


class EgressTotalRow(msgspec.Struct, frozen=True, kw_only=True):
    """A namespace's running egress totals (never pruned), for /metrics."""

    tenant: str
    namespace: str
    allowed: int
    blocked: int

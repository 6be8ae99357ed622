"""Per-token API rate limits, enforced before routing (docs/api.md, "Rate limits").

Every `/v1` request is charged to a bucket before any handler, dependency or query runs:

- a request with `Authorization: Bearer <token>` whose token this process has seen accepted is
  charged to that token's bucket, keyed by the token's SHA-256 digest (the raw token is never
  stored or logged);
- any other `/v1` request (no token, or a token not yet seen accepted) is charged to the bucket of
  its client address. When the answer shows the token is valid (anything but `401`), the token
  gets its own bucket from then on; a `401` sends the token back to the client's bucket. So
  made-up tokens cannot each get a fresh bucket: they all drain their sender's.

The gateway's signed endpoints (`/v1/ingest/...`, `/v1/gateway/...`) carry no bearer token and
are not limited here. Over the limit: a `429 too-many-requests` problem with `Retry-After`.

The buckets are GCRA (the "generic cell rate algorithm", a token bucket stored as one float per
key). State is per process: with N worker processes a token gets up to N times the rate. The
map is bounded (least recently used keys go first), and a key whose bucket has refilled is
dropped, since it means the same as an absent key.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable

import msgspec
import structlog
from litestar.enums import ScopeType
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Message,
    Receive,
    Scope,
    Send,
)

from plugyard.errors import PROBLEM_BASE
from plugyard.settings import RateLimitSettings

log = structlog.get_logger(__name__)

# Paths under /v1 signed by the gateways (HMAC, no bearer token): never limited here.
EXEMPT_PREFIXES = ("/v1/ingest/", "/v1/gateway/")
# Idle keys dropped from the front of the map per request: cleanup costs O(1) per request.
_SWEEP_PER_CALL = 2
# Float sums of 1/rate drift by a few ulps: this keeps rounding from costing a whole request.
_EPSILON_S = 1e-9


class Decision(msgspec.Struct, frozen=True):
    """The outcome of charging one request to a bucket.

    Attributes:
        allowed: whether the request may go on.
        limit: the bucket's size (the burst).
        remaining: requests that could be made right now after this one.
        retry_after_s: when refused, seconds until one request is allowed again (else 0).
        reset_s: seconds until the bucket is full again.
    """

    allowed: bool
    limit: int
    remaining: int
    retry_after_s: float
    reset_s: float


class KeySet:
    """A bounded set that forgets its least recently used members first."""

    def __init__(self, max_keys: int) -> None:
        """An empty set holding at most `max_keys` members."""
        self.max_keys = max_keys
        self._keys: OrderedDict[Hashable, None] = OrderedDict()

    def __contains__(self, key: Hashable) -> bool:
        """Whether `key` is a member (and mark it recently used)."""
        if key not in self._keys:
            return False
        self._keys.move_to_end(key)
        return True

    def __len__(self) -> int:
        """The number of members."""
        return len(self._keys)

    def add(self, key: Hashable) -> None:
        """Add `key`, dropping the least recently used member when full."""
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)

    def discard(self, key: Hashable) -> None:
        """Remove `key` if present."""
        self._keys.pop(key, None)


class RateLimiter:
    """GCRA buckets by key: `burst` requests at once, refilled at `rate` requests per second.

    Each key stores its theoretical arrival time (TAT): the moment its bucket would be full
    again. A request is allowed when TAT + one interval is at most `burst` intervals ahead of now.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """An empty map of buckets.

        Args:
            rate: requests per second, sustained (> 0).
            burst: requests allowed at once (>= 1).
            max_keys: keys tracked at most; beyond it the least recently used one is dropped.
            clock: seconds, monotonic (tests pass their own).

        Raises:
            ValueError: a rate, burst or key count out of range.
        """
        if rate <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("rate must be > 0, burst and max_keys >= 1")
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._interval = 1.0 / rate
        self._window = burst * self._interval
        self._clock = clock
        self._tat: OrderedDict[Hashable, float] = OrderedDict()

    def __len__(self) -> int:
        """The number of keys tracked."""
        return len(self._tat)

    def take(self, key: Hashable, *, force: bool = False) -> Decision:
        """Charge one request to `key`'s bucket.

        Args:
            key: whose bucket.
            force: charge even when over the limit (for work already done).

        Returns:
            Whether it is allowed, and the figures for the RateLimit headers.
        """
        now = self._clock()
        self._sweep(now)
        tat = max(self._tat.get(key, now), now)
        new_tat = tat + self._interval
        allow_at = new_tat - self._window
        if allow_at - now > _EPSILON_S and not force:
            return Decision(
                allowed=False, limit=self.burst, remaining=0, retry_after_s=allow_at - now, reset_s=tat - now
            )
        self._tat[key] = new_tat
        self._tat.move_to_end(key)
        while len(self._tat) > self.max_keys:
            self._tat.popitem(last=False)
        remaining = max(0, math.floor((now - allow_at) / self._interval + _EPSILON_S))
        return Decision(
            allowed=True, limit=self.burst, remaining=remaining, retry_after_s=0.0, reset_s=new_tat - now
        )

    def _sweep(self, now: float) -> None:
        for _ in range(_SWEEP_PER_CALL):
            if not self._tat:
                return
            key, tat = next(iter(self._tat.items()))
            if tat > now:
                return
            del self._tat[key]


def _problem(decision: Decision, rate: float, burst: int) -> bytes:
    per = f"{rate:g} per second" if rate >= 1 else f"1 per {1 / rate:g} seconds"
    return msgspec.json.encode(
        {
            "status": 429,
            "type": PROBLEM_BASE + "too-many-requests",
            "title": "Too many requests",
            "detail": (
                f"rate limit exceeded: {burst} requests at once, refilled at {per}; "
                f"retry after {retry_after(decision)} s"
            ),
            "limit": burst,
            "rate_per_s": rate,
        }
    )


def retry_after(decision: Decision) -> int:
    """The `Retry-After` value: whole seconds, at least 1."""
    return max(1, math.ceil(decision.retry_after_s))


def _headers(decision: Decision) -> list[tuple[bytes, bytes]]:
    return [
        (b"ratelimit-limit", str(decision.limit).encode()),
        (b"ratelimit-remaining", str(decision.remaining).encode()),
        (b"ratelimit-reset", str(max(0, math.ceil(decision.reset_s))).encode()),
    ]


def _bearer(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            token = token.strip()
            return token if scheme.lower() == b"bearer" and token else None
    return None


def rate_limit(app: ASGIApp, settings: RateLimitSettings) -> ASGIApp:
    """Wrap an ASGI app: `/v1` requests over their bucket's limit get a 429 problem.

    Args:
        app: the wrapped application.
        settings: rates, bursts and the key cap; a rate of 0 turns that limit off.

    Returns:
        The wrapping ASGI app (`app` itself when both limits are off).
    """
    tokens = (
        RateLimiter(settings.per_s, settings.burst, max_keys=settings.max_keys)
        if settings.per_s > 0
        else None
    )
    clients = (
        RateLimiter(settings.client_per_s, settings.client_burst, max_keys=settings.max_keys)
        if settings.client_per_s > 0
        else None
    )
    if tokens is None and clients is None:
        return app
    # Digests of tokens answered with anything but 401: charged to their own bucket.
    accepted = KeySet(settings.max_keys)

    async def refuse(send: Send, decision: Decision, limiter: RateLimiter, kind: str) -> None:
        log.warning("rate_limited", key_kind=kind, retry_after_s=retry_after(decision))
        problem = _problem(decision, limiter.rate, limiter.burst)
        start: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(problem)).encode()),
                (b"retry-after", str(retry_after(decision)).encode()),
                *_headers(decision),
            ],
        }
        await send(start)
        body: HTTPResponseBodyEvent = {"type": "http.response.body", "body": problem, "more_body": False}
        await send(body)

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        path: str = scope["path"]
        if not path.startswith("/v1/") or path.startswith(EXEMPT_PREFIXES):
            await app(scope, receive, send)
            return
        token = _bearer(scope["headers"])
        if token is not None and tokens is None:
            # Token limits are off: token traffic is not limited at all.
            await app(scope, receive, send)
            return
        token_key = None if token is None else hashlib.sha256(token).digest()
        known = token_key is not None and token_key in accepted
        decision: Decision | None = None
        if known and tokens is not None:
            decision = tokens.take(token_key)
            if not decision.allowed:
                await refuse(send, decision, tokens, "token")
                return
        elif clients is not None:
            client = scope.get("client")
            decision = clients.take(client[0] if client else "unknown")
            if not decision.allowed:
                await refuse(send, decision, clients, "client")
                return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                shown = decision
                if tokens is not None and token_key is not None:
                    if message["status"] == 401:
                        accepted.discard(token_key)
                    elif not known:
                        # Accepted: from now on this token is charged to its own bucket.
                        accepted.add(token_key)
                        shown = tokens.take(token_key, force=True)
                if shown is not None:
                    message["headers"] = [*message.get("headers", []), *_headers(shown)]
            await send(message)

        await app(scope, receive, send_wrapper)

    return middleware

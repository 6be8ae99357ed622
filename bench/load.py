"""Load generation: `wrk` for throughput, `hey` for latency percentiles, small Python clients.

wrk (C, one thread) saturates workerd on this 2-core box better than anything else here, but
its latency figures against workerd were found to be wrong, so latency percentiles come from
hey (Go) run at the same concurrency right after it. Both are Debian packages (`hey`, `wrk`).
"""

from __future__ import annotations

import asyncio
import http.client
import re
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec

TOOLS = ("wrk", "hey")
PIPELINE_SCRIPT = Path(__file__).with_name("wrk_pipeline.lua")


class LoadResult(msgspec.Struct, kw_only=True):
    """One load run against one target."""

    rps: float
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int = 0


def ensure_tools(*, install: bool, tools: Sequence[str] = TOOLS) -> None:
    """Check that the tools (wrk, hey; valgrind for section 1b) are on PATH; install when allowed.

    Each tool is the Debian package of the same name (`valgrind` brings `callgrind_control`).

    Raises:
        RuntimeError: a tool is missing and cannot be installed.
    """
    missing = [t for t in tools if shutil.which(t) is None]
    if not missing:
        return
    if not install or shutil.which("apt-get") is None:
        raise RuntimeError(f"missing load tools {missing}: run `apt-get install -y {' '.join(missing)}`")
    print(f"[bench] installing load tools with apt-get (Debian packages): {' '.join(missing)}", flush=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, timeout=300)


def tool_versions(tools: Sequence[str] = TOOLS) -> str:
    """Package versions of the load tools (dpkg), for the report."""
    out = []
    for tool in tools:
        res = subprocess.run(["dpkg-query", "-W", "-f=${Version}", tool], capture_output=True, text=True)
        out.append(f"{tool} {res.stdout.strip() or '?'}")
    return ", ".join(out)


def wrk(
    url: str, *, seconds: float, connections: int, host: str | None = None, pipeline: int | None = None
) -> LoadResult:
    """Throughput with wrk (1 thread); `pipeline`: requests each connection sends per round trip."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "5s"]
    if host:
        cmd += ["-H", f"Host: {host}"]
    args = [url]
    if pipeline:
        cmd += ["-s", str(PIPELINE_SCRIPT)]
        args += ["--", str(pipeline)]
    out = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=seconds + 30).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sock:
        errors += sum(int(n) for n in sock.groups())
    if rps is None:
        raise RuntimeError(f"wrk printed no rate:\n{out}")
    return LoadResult(rps=float(rps.group(1)), errors=errors)


def hey(
    url: str,
    *,
    seconds: float,
    connections: int,
    host: str | None = None,
    headers: Sequence[str] = (),
    method: str = "GET",
    body: str | None = None,
) -> LoadResult:
    """Throughput and latency percentiles with hey."""
    cmd = ["hey", "-z", f"{max(1, round(seconds))}s", "-c", str(connections), "-m", method]
    if host:
        cmd += ["-host", host]
    for header in headers:
        cmd += ["-H", header]
    if body is not None:
        cmd += ["-d", body, "-T", "application/json"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rps is None:
        raise RuntimeError(f"hey printed no rate:\n{out}")
    p50 = re.search(r"50% in ([\d.]+) secs", out)
    p99 = re.search(r"99% in ([\d.]+) secs", out)
    codes = re.findall(r"\[(\d+)\]\s+(\d+) responses", out)
    errors = sum(int(n) for code, n in codes if not code.startswith("2"))
    errors += sum(int(n) for n in re.findall(r"\[(\d+)\]\s+Get", out))
    return LoadResult(
        rps=float(rps.group(1)),
        p50_ms=float(p50.group(1)) * 1000 if p50 else None,
        p99_ms=float(p99.group(1)) * 1000 if p99 else None,
        errors=errors,
    )


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by the nearest-rank method."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    """Median, NaN for no values."""
    return statistics.median(values) if values else float("nan")


class Client:
    """A keep-alive HTTP/1.1 client for sequential, individually timed requests."""

    def __init__(self, base_url: str, *, timeout_s: float = 10.0) -> None:
        """Connect lazily to `http://host:port`."""
        hostport = base_url.removeprefix("http://").rstrip("/")
        host, _, port = hostport.partition(":")
        self._conn = http.client.HTTPConnection(host, int(port), timeout=timeout_s)

    def request(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, body: bytes | None = None
    ) -> tuple[int, bytes, float]:
        """Send one request; returns status, body and elapsed milliseconds."""
        start = time.perf_counter()
        try:
            self._conn.request(method, path, body=body, headers=headers or {})
            response = self._conn.getresponse()
            data = response.read()
        except (http.client.HTTPException, OSError):
            self._conn.close()  # reconnect once: keep-alive may have been dropped
            self._conn.request(method, path, body=body, headers=headers or {})
            response = self._conn.getresponse()
            data = response.read()
        return response.status, data, (time.perf_counter() - start) * 1000

    def get(self, path: str, host: str | None = None, **headers: str) -> tuple[int, bytes, float]:
        """GET with an optional Host header."""
        if host:
            headers["Host"] = host
        return self.request("GET", path, headers=headers)

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()


async def _worker(
    host: str,
    port: int,
    make: Callable[[int], bytes],
    counter: list[int],
    deadline: float,
    latencies: list[float],
    errors: list[int],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
            counter[0] += 1
            request = make(counter[0])
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = re.search(rb"(?i)content-length:\s*(\d+)", head)
            if length is None:
                raise RuntimeError("the async client needs Content-Length responses")
            await reader.readexactly(int(length.group(1)))
            latencies.append((time.perf_counter() - start) * 1000)
            if status >= 400:
                errors[0] += 1
    finally:
        writer.close()


def async_load(
    base_url: str, make: Callable[[int], bytes], *, seconds: float, connections: int
) -> LoadResult:
    """Closed-loop load with a distinct raw HTTP/1.1 request per call (e.g. new version bodies).

    Python, so it tops out at a few thousand req/s on this box: only for targets well below that
    and for their floors measured with the same client.
    """
    hostport = base_url.removeprefix("http://").rstrip("/")
    host, _, port = hostport.partition(":")
    latencies: list[float] = []
    errors = [0]
    counter = [0]

    async def run() -> float:
        start = time.perf_counter()
        deadline = start + seconds
        await asyncio.gather(
            *(
                _worker(host, int(port), make, counter, deadline, latencies, errors)
                for _ in range(connections)
            )
        )
        return time.perf_counter() - start

    elapsed = asyncio.run(run())
    return LoadResult(
        rps=len(latencies) / elapsed,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        errors=errors[0],
    )


def raw_request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    """Encode one HTTP/1.1 keep-alive request."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

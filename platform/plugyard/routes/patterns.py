"""Route patterns, Cloudflare style: `host/path` with `*` only at the start of the host or end of the path.

A host is exact (`shop.acme.test`) or `*.suffix` (any subdomain at any depth, not the suffix
itself). A path is exact (`/api`) or a prefix ending in `*` (`/api/*`). The gateway implements
the same rules in `loader_worker/src/routing.js`; docs/gateway-protocol.md states them.
"""

from __future__ import annotations

import re

import msgspec

MAX_PATTERN_LENGTH = 300
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"^(?:\*\.)?{_LABEL}(?:\.{_LABEL})+$")
_PATH = re.compile(r"^/[A-Za-z0-9._~!$&'()+,;=:@%/-]*\*?$")


class RoutePattern(msgspec.Struct, frozen=True):
    """A parsed pattern."""

    pattern: str
    host: str
    host_suffix: str
    wildcard: bool
    path: str


class PatternError(ValueError):
    """A pattern that is not acceptable, with a message a user can act on."""


def parse(pattern: str) -> RoutePattern:
    """Parse and normalise a route pattern (host lower-cased).

    Raises:
        PatternError: with the reason.
    """
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise PatternError(f"a pattern has at most {MAX_PATTERN_LENGTH} characters")
    if "://" in pattern:
        raise PatternError("leave out the scheme: write host/path, e.g. shop.example.com/api/*")
    host, slash, path = pattern.partition("/")
    if not slash:
        raise PatternError("a pattern is host/path, e.g. shop.example.com/* (the path part is missing)")
    host = host.lower()
    path = "/" + path
    if ":" in host:
        raise PatternError("a pattern cannot name a port")
    if host.startswith("*.") and "." not in host[2:]:
        raise PatternError("a wildcard host needs at least two labels after '*.', e.g. *.example.com")
    if not _HOST.match(host):
        raise PatternError(
            f"host {host!r} is not a hostname: use letters, digits, dashes and dots, "
            "optionally starting with '*.' (wildcards only at the start)"
        )
    wildcard = host.startswith("*.")
    suffix = host[2:] if wildcard else host
    if not _PATH.match(path):
        raise PatternError(
            f"path {path!r} is not allowed: '*' may only end the path, and no query string or fragment"
        )
    return RoutePattern(pattern=f"{host}{path}", host=host, host_suffix=suffix, wildcard=wildcard, path=path)


def hosts_overlap(a: RoutePattern, b: RoutePattern) -> bool:
    """Whether some hostname matches both patterns' hosts."""
    if not a.wildcard and not b.wildcard:
        return a.host == b.host
    if a.wildcard and b.wildcard:
        return _within(a.host_suffix, b.host_suffix) or _within(b.host_suffix, a.host_suffix)
    exact, wild = (a, b) if b.wildcard else (b, a)
    return exact.host.endswith("." + wild.host_suffix)


def _within(name: str, suffix: str) -> bool:
    return name == suffix or name.endswith("." + suffix)


def under_domain(pattern: RoutePattern, domain: str) -> bool:
    """Whether every hostname the pattern matches is a subdomain of `domain` (the domain itself is not).

    Used for the gateway's preview domain: hosts below it are always served as previews, so a
    route there could never be reached.
    """
    domain = domain.lower().rstrip(".")
    return _within(pattern.host_suffix, domain) and (pattern.wildcard or pattern.host_suffix != domain)

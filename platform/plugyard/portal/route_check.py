"""Which route would serve a URL: the gateway's specificity rules, for the portal's live checker (no I/O).

The gateway (loader_worker/src/routing.js, docs/gateway-protocol.md) tries the exact host first,
then wildcard hosts from the longest suffix to the shortest; within a host an exact path beats a
prefix and a longer prefix beats a shorter one. A host whose paths do not match falls through to
the next, less specific host.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

import msgspec

from plugyard.routes import patterns


class Match(msgspec.Struct, frozen=True, kw_only=True):
    """The route that serves a URL, if any, and the host and path that were matched."""

    host: str
    path: str
    pattern: str | None
    plugin: str | None


def split_url(url: str) -> tuple[str, str]:
    """Host (lower case, no port, no trailing dot) and path of a URL or `host/path` text.

    Raises:
        ValueError: there is no host.
    """
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise ValueError("enter a URL such as https://shop.example.com/api/cart")
    return host, parts.path or "/"


def _path_match(routes: list[tuple[patterns.RoutePattern, str]], path: str) -> tuple[str, str] | None:
    exact = [(p, plugin) for p, plugin in routes if not p.path.endswith("*") and p.path == path]
    if exact:
        return exact[0][0].pattern, exact[0][1]
    prefixes = sorted(
        ((p, plugin) for p, plugin in routes if p.path.endswith("*") and path.startswith(p.path[:-1])),
        key=lambda item: len(item[0].path),
        reverse=True,
    )
    return (prefixes[0][0].pattern, prefixes[0][1]) if prefixes else None


def which(url: str, routes: Sequence[tuple[str, str]]) -> Match:
    """The (pattern, plugin) of `routes` that would serve `url`.

    Raises:
        ValueError: the URL has no host.
    """
    host, path = split_url(url)
    parsed = []
    for pattern, plugin in routes:
        try:
            parsed.append((patterns.parse(pattern), plugin))
        except patterns.PatternError:
            continue
    candidates = [host] + [host[i + 1 :] for i, c in enumerate(host) if c == "."]
    for depth, suffix in enumerate(candidates):
        wildcard = depth > 0
        on_host = [(p, plugin) for p, plugin in parsed if p.wildcard == wildcard and p.host_suffix == suffix]
        found = _path_match(on_host, path)
        if found:
            return Match(host=host, path=path, pattern=found[0], plugin=found[1])
    return Match(host=host, path=path, pattern=None, plugin=None)

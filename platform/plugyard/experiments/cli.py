"""`plugyard experiments ...`: the experiments API from a terminal (PLUGYARD_API_URL, PLUGYARD_TOKEN).

Every command prints the API's JSON answer; a problem answer prints its title and detail to
stderr and exits 1. See docs/experiments.md, "CLI".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import httpx


def _split(target: str, parts: int) -> list[str]:
    names = target.split("/")
    if len(names) != parts or not all(names):
        shape = "TENANT/NAMESPACE" if parts == 2 else "TENANT/NAMESPACE/KEY"
        raise ValueError(f"the target must be {shape}")
    return names


def _base(target: str, parts: int) -> str:
    names = _split(target, parts)
    path = f"/v1/tenants/{names[0]}/namespaces/{names[1]}/experiments"
    return path if parts == 2 else f"{path}/{names[2]}"


def _variant(text: str) -> dict[str, Any]:
    """NAME=VERSION[:WEIGHT], e.g. control=1:50."""
    name, _, rest = text.partition("=")
    version, _, weight = rest.partition(":")
    if not name or not version.isdigit():
        raise argparse.ArgumentTypeError("a variant is NAME=VERSION[:WEIGHT], e.g. control=1:50")
    return {"name": name, "version": int(version), "weight": float(weight or 1)}


def _call(method: str, path: str, body: Any = None, params: dict[str, str] | None = None) -> int:
    token = os.environ.get("PLUGYARD_TOKEN")
    if not token:
        raise ValueError("PLUGYARD_TOKEN is not set (a tenant API token)")
    api = os.environ.get("PLUGYARD_API_URL", "http://127.0.0.1:8000").rstrip("/")
    try:
        response = httpx.request(
            method,
            api + path,
            json=body,
            params=params,
            headers={"authorization": f"Bearer {token}"},
            timeout=30,
        )
    except httpx.HTTPError as exc:
        print(f"plugyard: cannot reach {api}: {exc}", file=sys.stderr)
        return 1
    payload = response.json() if response.content else None
    if response.status_code >= 400:
        detail = payload.get("detail", "") if isinstance(payload, dict) else response.text
        title = payload.get("title", "error") if isinstance(payload, dict) else "error"
        print(f"plugyard: {response.status_code} {title}: {detail}", file=sys.stderr)
        return 1
    print(json.dumps(payload, indent=2, ensure_ascii=False))
    return 0


def _create(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "key": args.key,
        "plugin": args.plugin,
        "variants": args.variant,
        "coverage": args.coverage,
    }
    if args.header:
        body["sticky"] = {"header": args.header}
    elif args.cookie:
        body["sticky"] = {"cookie": args.cookie}
    if args.exclusion:
        group, start, end = args.exclusion.split(":")
        body["exclusion"] = {"group": group, "start": float(start), "end": float(end)}
    if args.guardrail:
        metric, margin = args.guardrail.split(":")
        body["guardrail"] = {"metric": metric, "margin": float(margin), "min_requests": args.min_requests}
    return _call("POST", _base(args.target, 2), body)


def _weights(args: argparse.Namespace) -> int:
    weights = {}
    for item in args.weights:
        name, _, value = item.partition("=")
        weights[name] = float(value)
    body: dict[str, Any] = {"weights": weights, "new_phase": args.new_phase}
    if args.coverage is not None:
        body["coverage"] = args.coverage
    return _call("PATCH", _base(args.target, 3), body)


def add_parser(sub: Any) -> None:
    """Add `experiments` and its subcommands to the `plugyard` parser."""
    p = sub.add_parser(
        "experiments", help="A/B experiments through the API (PLUGYARD_API_URL, PLUGYARD_TOKEN)"
    )
    cmds = p.add_subparsers(dest="experiments_command", required=True)

    c = cmds.add_parser("list", help="list a namespace's experiments")
    c.add_argument("target", help="TENANT/NAMESPACE")
    c.set_defaults(func=lambda a: _call("GET", _base(a.target, 2)))

    c = cmds.add_parser("create", help="create a draft experiment")
    c.add_argument("target", help="TENANT/NAMESPACE")
    c.add_argument("--key", required=True)
    c.add_argument("--plugin", required=True)
    c.add_argument("--variant", type=_variant, action="append", required=True, help="NAME=VERSION[:WEIGHT]")
    c.add_argument("--coverage", type=float, default=1.0)
    c.add_argument("--header", help="bucket by this request header instead of the gateway's cookie")
    c.add_argument("--cookie", help="the sticky cookie's name (default plugyard_vid)")
    c.add_argument("--exclusion", help="GROUP:START:END, a claimed range of an exclusion group")
    c.add_argument("--guardrail", help="METRIC:MARGIN, e.g. error_rate:0.05 or p95_latency_ms:50")
    c.add_argument(
        "--min-requests", type=int, default=100, help="guardrail: requests per arm before it judges"
    )
    c.set_defaults(func=_create)

    for name, summary in (("show", "GET"), ("results", "GET")):
        c = cmds.add_parser(name, help=f"{'show an experiment' if name == 'show' else 'results per variant'}")
        c.add_argument("target", help="TENANT/NAMESPACE/KEY")
        if name == "results":
            c.add_argument("--event", help="the conversion event (default: the first one)")
            c.set_defaults(
                func=lambda a: _call(
                    "GET", _base(a.target, 3) + "/results", params={"event": a.event} if a.event else None
                )
            )
        else:
            c.set_defaults(func=lambda a, m=summary: _call(m, _base(a.target, 3)))

    for action in ("start", "pause", "resume", "kill"):
        c = cmds.add_parser(action, help=f"{action} an experiment (deploys at once)")
        c.add_argument("target", help="TENANT/NAMESPACE/KEY")
        c.set_defaults(func=lambda a, action=action: _call("POST", _base(a.target, 3) + f"/{action}"))

    c = cmds.add_parser("stop", help="stop with a winner: its version becomes the active version")
    c.add_argument("target", help="TENANT/NAMESPACE/KEY")
    c.add_argument("--winner", required=True)
    c.set_defaults(func=lambda a: _call("POST", _base(a.target, 3) + "/stop", {"winner": a.winner}))

    c = cmds.add_parser("weights", help="change weights (a live experiment needs --new-phase)")
    c.add_argument("target", help="TENANT/NAMESPACE/KEY")
    c.add_argument("weights", nargs="+", help="NAME=WEIGHT for every variant")
    c.add_argument("--coverage", type=float)
    c.add_argument(
        "--new-phase", action="store_true", help="start a new phase: every visitor is bucketed afresh"
    )
    c.set_defaults(func=_weights)

    c = cmds.add_parser("assign", help="which variant does a visitor key get?")
    c.add_argument("target", help="TENANT/NAMESPACE/KEY")
    c.add_argument("visitor")
    c.set_defaults(
        func=lambda a: _call("GET", _base(a.target, 3) + "/assignment", params={"visitor": a.visitor})
    )

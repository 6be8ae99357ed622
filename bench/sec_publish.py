"""Section 3: publish-to-live and rollback-to-live through the control plane, and their floor."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from bench import load, pushes
from bench.report import Row, Section, ms, ratio, verdict
from bench.stack import Stack, check, make_tenant, plugin_with_route

P99_TARGET_MS = 100.0
HOST = "pub.bench.test"
FLOOR_HOST = "pubfloor.bench.test"
EXP_HOST = "pubexp.bench.test"
VISITOR_HEADER = "x-bench-visitor"
MAX_POLLS = 2000
POLL_DEADLINE_S = 5.0


def _until_live(gw: load.Client, host: str, expected: str, **headers: str) -> int:
    """Poll the gateway until it serves `expected`; returns how many polls it took."""
    deadline = time.monotonic() + POLL_DEADLINE_S
    for polls in range(1, MAX_POLLS + 1):
        status, body, _ = gw.get("/", host=host, **headers)
        if status == 200 and body.decode() == expected:
            return polls
        if time.monotonic() > deadline:
            break
    raise RuntimeError(f"{host} never served {expected!r} (last: {status} {body[:120]!r})")


def _timed(
    action: Callable[[], None], gw: load.Client, host: str, expected: str, **headers: str
) -> tuple[float, float, int]:
    start = time.perf_counter()
    action()
    api_done = time.perf_counter()
    polls = _until_live(gw, host, expected, **headers)
    end = time.perf_counter()
    return (end - start) * 1000, (api_done - start) * 1000, polls


def _row(name: str, total: list[float], api: list[float], floor: list[float] | None, polls: int) -> list[Row]:
    p50, p99 = load.percentile(total, 50), load.percentile(total, 99)
    rows = [
        Row(
            measure=f"{name}: p50 / p99 of {len(total)}",
            result=f"{ms(p50)} / {ms(p99)}",
            floor=""
            if floor is None
            else f"{ms(load.percentile(floor, 50))} / {ms(load.percentile(floor, 99))}",
            ratio="" if floor is None else ratio(p99, load.percentile(floor, 99)),
            target="" if floor is None else f"p99 ≤ {P99_TARGET_MS:.0f} ms",
            verdict="" if floor is None else verdict(p99 <= P99_TARGET_MS),
        )
    ]
    if floor is not None:
        rows.append(
            Row(
                measure=f"{name}: of which the API call, p50 / p99",
                result=f"{ms(load.percentile(api, 50))} / {ms(load.percentile(api, 99))}",
                target="",
                verdict=f"{polls} extra poll(s)" if polls else "live on first poll",
            )
        )
    return rows


def run(stack: Stack, *, count: int) -> Section:
    """`count` publishes, `count` rollbacks, `count` direct pushes (floor), each until first response."""
    gateway = stack.gateway()
    gw = load.Client(gateway.url)
    base = "/v1/tenants/pub/namespaces/prod/plugins/hello"
    with stack.api() as api:
        headers = make_tenant(api, stack.admin_token, "pub")
        plugin_with_route(api, headers, "pub", "hello", pushes.plugin_source("v1"), f"{HOST}/*")
        _until_live(gw, HOST, "v1")
        publish: list[tuple[float, float, int]] = []
        for i in range(2, count + 2):

            def publish_one(i: int = i) -> None:
                body = {
                    "modules": [{"name": "index.js", "content": pushes.plugin_source(f"v{i}")}],
                    "activate": True,
                }
                done = check(api.post(f"{base}/versions", json=body, headers=headers))
                if done["deployment"]["pushes"][0]["status"] != "succeeded":
                    raise RuntimeError(f"publish v{i}: push {done['deployment']['pushes']}")

            publish.append(_timed(publish_one, gw, HOST, f"v{i}"))
        last = count + 1
        rollback: list[tuple[float, float, int]] = []
        for k in range(count):
            number = last - 1 if k % 2 == 0 else last  # back to the previous version, then forward

            def activate(number: int = number) -> None:
                check(api.put(f"{base}/active-version", json={"version": number}, headers=headers))

            rollback.append(_timed(activate, gw, HOST, f"v{number}"))
        toggles = _toggles(api, headers, gw, count)
    floor = _floor(stack, gw, count)
    gw.close()
    section = Section(number="3", title="Publish-to-live and rollback-to-live")
    section.rows += _row(
        "publish (POST version, activate) → first response", *_cols(publish), floor, _extra(publish)
    )
    section.rows += _row(
        "rollback/forward (PUT active-version, warm isolate) → first response",
        *_cols(rollback),
        floor,
        _extra(rollback),
    )
    section.rows += _row("floor: signed push straight to the gateway → first response", floor, floor, None, 0)
    section.rows += _row(
        "experiment toggle (pause / resume) → first response", *_cols(toggles), floor, _extra(toggles)
    )
    section.notes.append(
        "Timed from sending the API call to the first gateway response with the new body "
        "(sequential, one keep-alive client each). Floor: the same kind of push body sent by "
        "the harness, signed, without the control plane. Experiment toggles: a 50/50 experiment "
        "keyed on a request header; one visitor in the treatment variant; `pause` is live when "
        "that visitor gets the active version's body, `resume` when it gets the variant's again."
    )
    return section


def _toggles(
    api: httpx.Client, headers: dict[str, str], gw: load.Client, count: int
) -> list[tuple[float, float, int]]:
    """`count` alternating pause / resume calls on a running experiment, each until live."""
    ns = "/v1/tenants/pub/namespaces/prod"
    plugin_with_route(api, headers, "pub", "exp", pushes.plugin_source("control"), f"{EXP_HOST}/*")
    body = {"modules": [{"name": "index.js", "content": pushes.plugin_source("treatment")}]}
    treatment = check(api.post(f"{ns}/plugins/exp/versions", json=body, headers=headers))["version"]["number"]
    experiment = {
        "key": "toggle",
        "plugin": "exp",
        "variants": [
            {"name": "control", "version": 1, "weight": 1},
            {"name": "treatment", "version": treatment, "weight": 1},
        ],
        "coverage": 1,
        "sticky": {"header": VISITOR_HEADER},
    }
    check(api.post(f"{ns}/experiments", json=experiment, headers=headers))
    visitor = next(
        f"v{i}"
        for i in range(1000)
        if check(
            api.get(f"{ns}/experiments/toggle/assignment", params={"visitor": f"v{i}"}, headers=headers)
        )["variant"]
        == "treatment"
    )
    sticky = {VISITOR_HEADER: visitor}
    check(api.post(f"{ns}/experiments/toggle/start", headers=headers))
    _until_live(gw, EXP_HOST, "treatment", **sticky)
    samples: list[tuple[float, float, int]] = []
    for k in range(count):
        action, expected = ("pause", "control") if k % 2 == 0 else ("resume", "treatment")

        def toggle(action: str = action) -> None:
            check(api.post(f"{ns}/experiments/toggle/{action}", headers=headers))

        samples.append(_timed(toggle, gw, EXP_HOST, expected, **sticky))
    return samples


def _cols(samples: list[tuple[float, float, int]]) -> tuple[list[float], list[float]]:
    return [s[0] for s in samples], [s[1] for s in samples]


def _extra(samples: list[tuple[float, float, int]]) -> int:
    return sum(s[2] - 1 for s in samples)


def _floor(stack: Stack, gw: load.Client, count: int) -> list[float]:
    """Direct signed pushes of a new version each, timed until the gateway serves it."""
    out = []
    with httpx.Client(base_url=stack.gateway().url, timeout=30) as http:
        for revision in range(1, count + 1):
            h, bundle = pushes.bundle(pushes.plugin_source(f"f{revision}"))
            body = pushes.namespace_body(
                "pubfloor", "prod", revision, [(f"{FLOOR_HOST}/*", "hello")], {"hello": h}, {h: bundle}
            )

            def push_one(body: bytes = body) -> None:
                pushes.push(http, stack.secret, "pubfloor", "prod", body)

            total, _, _ = _timed(push_one, gw, FLOOR_HOST, f"f{revision}")
            out.append(total)
    return out

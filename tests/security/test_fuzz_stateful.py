"""Stateful API fuzzing: schemathesis chains operations through OpenAPI links.

Litestar's OpenAPI document declares no `links` (its response specs have no field for them), so
the test adds them (LINKS) to the fetched `/schema/openapi.json` before loading it: each create
answer feeds the operations on what it created (a new namespace's name into its plugins, routes
and secrets; a plugin's name into its versions, route and secrets; a version's number into
activation, preview and an experiment; a route's id into its deletion; an experiment's key into
its lifecycle; a token's id into its revocation). schemathesis' own link inference is off: it
guesses links from admin-only tenant listings that a tenant token cannot follow.

The state machine runs PLUGYARD_FUZZ_STATEFUL_EXAMPLES scenarios (default 100) of at most
PLUGYARD_FUZZ_STATEFUL_STEPS steps (default 10) with valid (positive) data, as one tenant with
real resources, on a control plane with the rate limit off. Every response must pass the same
gating checks as the stateless fuzzer (no 5xx, bodies and headers as the schema declares) plus
the stateful ones: a resource a link points at exists (`ensure_resource_availability`) and a
deleted one is gone (`use_after_free`).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from typing import Any, NamedTuple

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode

from plugyard.gateway.process import GatewayProcess
from tests.conftest import ControlPlane
from tests.integration.helpers import plugin_code
from tests.security.figures import record
from tests.security.test_fuzz_api import NOT_GATING, _resources, unlimited_control_plane

pytestmark = pytest.mark.e2e

EXAMPLES = int(os.environ.get("PLUGYARD_FUZZ_STATEFUL_EXAMPLES", "100"))
STEPS = int(os.environ.get("PLUGYARD_FUZZ_STATEFUL_STEPS", "10"))

TENANT = "/v1/tenants/{tenant}"
NAMESPACE = TENANT + "/namespaces/{namespace}"
PLUGIN = NAMESPACE + "/plugins/{plugin}"
# A bundle the gateway accepts, so that publishing through a link creates a version.
BUNDLE = {"modules": [{"name": "index.js", "content": plugin_code("stateful")}]}

# Link parameters that keep the source request's tenant, namespace, plugin...
SAME = {
    "tenant": "$request.path.tenant",
    "namespace": "$request.path.namespace",
    "plugin": "$request.path.plugin",
    "key": "$request.path.key",
    "name": "$request.path.name",
}


def _keep(*names: str, **values: str) -> dict[str, str]:
    return {**{name: SAME[name] for name in names}, **values}


class Link(NamedTuple):
    """An OpenAPI link: the answer to `source` (with `status`) feeds `target`."""

    source: str  # "METHOD path"
    status: str
    target: str
    parameters: dict[str, str]
    body: dict[str, Any] | None = None
    # False: `body` is the whole request body; True: it overrides fields of a generated one.
    merge: bool = True


def _fan_out(source: str, status: str, parameters: dict[str, str], targets: list[str]) -> list[Link]:
    return [Link(source, status, target, parameters) for target in targets]


_NEW_NAMESPACE = _keep("tenant", namespace="$response.body#/name")
_NEW_PLUGIN = _keep("tenant", "namespace", plugin="$response.body#/name")
_NEW_VERSION = _keep("tenant", "namespace", "plugin", number="$response.body#/version/number")
_NEW_EXPERIMENT = _keep("tenant", "namespace", key="$response.body#/key")
_VERSION = "$response.body#/version/number"

LINKS: list[Link] = [
    *_fan_out(
        f"POST {TENANT}/namespaces",
        "201",
        _NEW_NAMESPACE,
        [
            f"GET {NAMESPACE}",
            f"PATCH {NAMESPACE}",
            f"PUT {NAMESPACE}/egress",
            f"GET {NAMESPACE}/deployments",
            f"GET {NAMESPACE}/routes",
            f"POST {NAMESPACE}/plugins",
            f"GET {NAMESPACE}/plugins",
            f"GET {NAMESPACE}/experiment-holdout",
            f"PUT {NAMESPACE}/experiment-holdout",
            f"PUT {NAMESPACE}/secrets/{{name}}",
            f"GET {NAMESPACE}/secrets",
        ],
    ),
    *_fan_out(
        f"POST {NAMESPACE}/plugins",
        "201",
        _NEW_PLUGIN,
        [
            f"GET {PLUGIN}",
            f"PATCH {PLUGIN}",
            f"DELETE {PLUGIN}",
            f"POST {PLUGIN}/versions/from-template",
            f"GET {PLUGIN}/versions",
            f"GET {PLUGIN}/status",
            f"GET {PLUGIN}/logs",
            f"PUT {PLUGIN}/secrets/{{name}}",
            f"GET {PLUGIN}/secrets",
        ],
    ),
    # Publishing a bundle the gateway accepts, so that versions exist to chain on.
    Link(f"POST {NAMESPACE}/plugins", "201", f"POST {PLUGIN}/versions", _NEW_PLUGIN, BUNDLE, merge=False),
    # A route to the new plugin on a host of its own (the plugin's uuid): host claims are global.
    Link(
        f"POST {NAMESPACE}/plugins",
        "201",
        f"POST {NAMESPACE}/routes",
        _keep("tenant", "namespace"),
        {"pattern": "{$response.body#/id}.stateful.test/*", "plugin": "$response.body#/name"},
        merge=False,
    ),
    *_fan_out(
        f"POST {PLUGIN}/versions",
        "201",
        _NEW_VERSION,
        [
            f"GET {PLUGIN}/versions/{{number}}",
            f"POST {PLUGIN}/versions/{{number}}/preview",
            f"POST {PLUGIN}/versions/{{number}}/release",
        ],
    ),
    Link(
        f"POST {PLUGIN}/versions",
        "201",
        f"GET {PLUGIN}/versions/{{number}}/diff/{{other}}",
        {**_NEW_VERSION, "other": _VERSION},
    ),
    Link(
        f"POST {PLUGIN}/versions",
        "201",
        f"PUT {PLUGIN}/active-version",
        _keep("tenant", "namespace", "plugin"),
        {"version": _VERSION},
        merge=False,
    ),
    # An experiment on the new version (key, coverage, sticky... generated).
    Link(
        f"POST {PLUGIN}/versions",
        "201",
        f"POST {NAMESPACE}/experiments",
        _keep("tenant", "namespace"),
        {
            "plugin": "$request.path.plugin",
            "variants": [{"name": "a", "version": _VERSION}, {"name": "b", "version": _VERSION}],
        },
    ),
    *_fan_out(
        f"POST {NAMESPACE}/routes",
        "201",
        _keep("tenant", "namespace", route_id="$response.body#/route/id"),
        [f"DELETE {NAMESPACE}/routes/{{route_id}}"],
    ),
    *_fan_out(
        f"POST {NAMESPACE}/routes",
        "201",
        _keep("tenant", "namespace", revision="$response.body#/deployment/revision"),
        [f"GET {NAMESPACE}/deployments/{{revision}}"],
    ),
    *_fan_out(
        f"POST {NAMESPACE}/experiments",
        "201",
        _NEW_EXPERIMENT,
        [
            f"{method} {NAMESPACE}/experiments/{{key}}{suffix}"
            for method, suffix in [
                ("GET", ""),
                ("PATCH", ""),
                ("POST", "/start"),
                ("POST", "/pause"),
                ("POST", "/resume"),
                ("POST", "/stop"),
                ("POST", "/kill"),
                ("GET", "/results"),
                ("GET", "/assignment"),
                ("POST", "/preview-tokens"),
            ]
        ],
    ),
    *_fan_out(
        f"POST {NAMESPACE}/experiments/{{key}}/start",
        "200",
        _keep("tenant", "namespace", "key"),
        [
            f"POST {NAMESPACE}/experiments/{{key}}/pause",
            f"POST {NAMESPACE}/experiments/{{key}}/stop",
            f"GET {NAMESPACE}/experiments/{{key}}/assignment",
            f"GET {NAMESPACE}/experiments/{{key}}/results",
        ],
    ),
    Link(
        f"PUT {NAMESPACE}/secrets/{{name}}",
        "200",
        f"DELETE {NAMESPACE}/secrets/{{name}}",
        _keep("tenant", "namespace", "name"),
    ),
    Link(
        f"PUT {PLUGIN}/secrets/{{name}}",
        "200",
        f"DELETE {PLUGIN}/secrets/{{name}}",
        _keep("tenant", "namespace", "plugin", "name"),
    ),
    Link(
        f"POST {TENANT}/tokens",
        "201",
        f"DELETE {TENANT}/tokens/{{token_id}}",
        _keep("tenant", token_id="$response.body#/id"),
    ),
]


# What a chain starts with: the tenant's resources made by `_resources` (tests/security/test_fuzz_api.py).
FIXED = {"namespace": "prod", "plugin": "p", "key": "exp"}
# Creations whose answers name a new resource: (method, path) -> (path parameter, answer field).
CREATES = {
    ("POST", TENANT + "/namespaces"): ("namespace", "name"),
    ("POST", NAMESPACE + "/plugins"): ("plugin", "name"),
    ("POST", NAMESPACE + "/experiments"): ("key", "key"),
}


def add_links(raw: dict[str, Any]) -> int:
    """Declare LINKS in a fetched OpenAPI document (targets by operationId); returns how many."""

    def operation(spec: str) -> dict[str, Any]:
        method, path = spec.split(" ", 1)
        found: dict[str, Any] = raw["paths"][path][method.lower()]
        return found

    for link in LINKS:
        target = operation(link.target)
        wanted = {p["name"] for p in target.get("parameters", []) if p["in"] == "path"}
        # Parameters a link leaves out (a secret's name, say) are generated.
        assert set(link.parameters) <= wanted, link
        assert {"tenant", "namespace"} & wanted <= set(link.parameters), link
        declared: dict[str, Any] = {"operationId": target["operationId"], "parameters": link.parameters}
        if link.body is not None:
            declared["requestBody"] = link.body
            declared["x-schemathesis"] = {"merge_body": link.merge}
        links = operation(link.source)["responses"][link.status].setdefault("links", {})
        method, path = link.target.split(" ", 1)
        links[f"{method} {path.removeprefix(TENANT)}"] = declared
    return len(LINKS)


def unclosed_request_bodies(raw: dict[str, Any]) -> list[str]:
    """Object schemas reachable from request bodies that do not say `additionalProperties: false`.

    The API's input Structs forbid unknown fields (docs/api.md) and the served document says so
    (plugyard/openapi.py): otherwise generated "valid" bodies would mostly carry unknown keys and
    stop at a 422.
    """
    components = raw["components"]["schemas"]
    seen: set[str] = set()
    unclosed: list[str] = []

    def visit(node: Any, where: str) -> None:
        if isinstance(node, list):
            for item in node:
                visit(item, where)
        elif isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/components/schemas/") and (name := ref.rsplit("/", 1)[1]) not in seen:
                seen.add(name)
                visit(components[name], name)
            if (
                node.get("type") == "object"
                and "properties" in node
                and node.get("additionalProperties") is not False
            ):
                unclosed.append(where)
            for value in node.values():
                visit(value, where)

    for path, item in raw["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "requestBody" in operation:
                visit(operation["requestBody"], f"{method.upper()} {path}")
    return unclosed


@pytest.fixture
def fuzz_plane(
    database_url: str, gateway: GatewayProcess, gateway_secret: str, admin_token: str, secrets_key: str
) -> Iterator[ControlPlane]:
    with unlimited_control_plane(database_url, gateway, gateway_secret, admin_token, secrets_key) as plane:
        yield plane


def test_fuzz_linked_operations(fuzz_plane: ControlPlane, admin_token: str, unique: str) -> None:
    base_url = fuzz_plane.url
    with httpx.Client(base_url=base_url, timeout=30) as http:
        tenant = _resources(http, admin_token, unique, prefix="fs")
        raw = http.get("/schema/openapi.json").raise_for_status().json()
    links = add_links(raw)
    assert unclosed_request_bodies(raw) == []
    schema = schemathesis.openapi.from_dict(raw)
    # Valid data, so that chains go deep (the stateless fuzzer sends the negative data).
    schema.config.generation.update(modes=[GenerationMode.POSITIVE], allow_extra_parameters=False)
    schema.config.phases.stateful.inference.algorithms = []
    workflow = schema.as_state_machine()
    calls: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    followed: Counter[str] = Counter()
    failures: list[str] = []
    known = {name: {value} for name, value in FIXED.items()}
    scenarios = 0

    class Scenario(workflow):  # type: ignore[misc, valid-type]
        """Every step as the tenant (its slug and token), checked without stopping the run."""

        def setup(self) -> None:
            nonlocal scenarios
            scenarios += 1

        def step(self, step_input: Any) -> Any:
            if step_input.transition is not None and step_input.is_applied:
                followed[step_input.transition.id] += 1
            return super().step(step_input)

        def before_call(self, case: Any) -> None:
            # Every scenario runs in this tenant. A step that starts a chain gets names that exist
            # (generated ones would all be 404s); values a link carried over are known, and kept.
            params = case.path_parameters or {}
            if "tenant" in params:
                params["tenant"] = tenant.slug
            for name, seen in known.items():
                if name in params and params[name] not in seen:
                    params[name] = FIXED[name]
            case.headers = {**(case.headers or {}), "authorization": f"Bearer {tenant.token}"}

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": base_url, "timeout": 30}

        def after_call(self, response: Any, case: Any) -> None:
            super().after_call(response, case)
            calls[f"{case.method} {case.operation.path}"] += 1
            statuses[response.status_code] += 1
            if response.status_code == 201 and (field := CREATES.get((case.method, case.operation.path))):
                known[field[0]].add(response.json()[field[1]])

        def validate_response(
            self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            try:
                case.validate_response(
                    response,
                    excluded_checks=NOT_GATING,
                    transport_kwargs=kwargs or None,
                    recorder=self.recorder,
                )
            except (Exception, BaseExceptionGroup) as exc:  # collected; the run goes on
                failures.append(f"{case.method} {case.formatted_path}: {str(exc)[:1500]}")

    # The server's state carries over between scenarios, so Hypothesis may see the same choices
    # enable other rules than before and stop with `Flaky`, as schemathesis' own runner expects:
    # like that runner, start again (fresh random choices) until the scenario budget is spent.
    rounds = 0
    while scenarios < EXAMPLES and rounds < 2 * EXAMPLES:
        rounds += 1
        try:
            Scenario.run(
                settings=hypothesis.settings(
                    max_examples=EXAMPLES - scenarios,
                    stateful_step_count=STEPS,
                    deadline=None,
                    database=None,
                    phases=[Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
            )
        except hypothesis.errors.Flaky:
            continue
    record(
        "fuzz_stateful",
        calls=sum(calls.values()),
        failures=len(failures),
        scenarios=scenarios,
        links=links,
        links_followed=len(followed),
        steps_through_links=sum(followed.values()),
        operations=len(calls),
        created=statuses[201],
    )
    assert not failures, "\n\n".join(failures[:5])
    # The links were followed, not just declared: resources were created, then used through them.
    assert statuses[201] >= 5, statuses
    assert len(followed) >= 10, (sorted(followed), statuses)

"""Hypothesis property tests for the parsers we own: route patterns, bundles, template parameters.

No I/O. Each property runs a bounded number of examples (PLUGYARD_PROPERTY_EXAMPLES, default
300) with a fixed seed, so CI runs are repeatable.
"""

from __future__ import annotations

import itertools
import os
import random
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from plugyard.errors import DomainError, InvalidInput, PayloadTooLarge
from plugyard.plugins import bundles
from plugyard.plugins.schemas import VersionCreate
from plugyard.routes.patterns import MAX_PATTERN_LENGTH, PatternError, RoutePattern, hosts_overlap, parse
from plugyard.templates.manifest import Parameter, StringRules
from plugyard.templates.params import check, check_string, resolve
from tests.security.figures import record

EXAMPLES = int(os.environ.get("PLUGYARD_PROPERTY_EXAMPLES", "300"))
BOUNDED = settings(
    max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
_CALLS: dict[str, int] = {}


def _count(name: str) -> None:
    _CALLS[name] = _CALLS.get(name, 0) + 1


@pytest.fixture(scope="module", autouse=True)
def _figures() -> Any:
    yield
    record("parser_properties", calls=sum(_CALLS.values()), failures=0, properties=len(_CALLS))


# ---- route patterns --------------------------------------------------------------------------

_LABELS = ["a", "b", "c"]
_label = st.sampled_from(_LABELS)
_host = st.builds(
    lambda wild, labels: ("*." if wild else "") + ".".join(labels),
    st.booleans(),
    st.lists(_label, min_size=2, max_size=3),
)
_path = st.builds(
    lambda parts, star: "/" + "/".join(parts) + ("*" if star else ""),
    st.lists(st.sampled_from(["api", "v1", "x-y", "a.b", "%20"]), max_size=3),
    st.booleans(),
)
_pattern_text = st.builds(lambda h, p: h + p, _host, _path)
# Every hostname over the same labels (plus one foreign label) up to four deep: enough to
# witness any overlap of hosts at most three labels long.
_NAMES = [
    ".".join(parts) for depth in range(1, 5) for parts in itertools.product([*_LABELS, "x"], repeat=depth)
]


def _matches(pattern: RoutePattern, name: str) -> bool:
    if pattern.wildcard:
        return name.endswith("." + pattern.host_suffix)
    return name == pattern.host


@BOUNDED
@seed(9)
@given(st.text(max_size=MAX_PATTERN_LENGTH + 20))
def test_parse_raises_only_pattern_error(text: str) -> None:
    _count("parse_any_text")
    try:
        parsed = parse(text)
    except PatternError:
        return
    assert parsed.pattern == parsed.host + parsed.path


@BOUNDED
@seed(9)
@given(_pattern_text)
def test_parse_normalises_to_a_fixed_point(text: str) -> None:
    _count("parse_fixed_point")
    once = parse(text)
    assert parse(once.pattern) == once
    assert parse(text.upper().split("/", 1)[0] + "/" + text.split("/", 1)[1]) == once  # hosts are case-blind


@BOUNDED
@seed(9)
@given(_pattern_text, _pattern_text)
def test_hosts_overlap_is_symmetric_and_matches_brute_force(left: str, right: str) -> None:
    _count("hosts_overlap")
    a, b = parse(left), parse(right)
    assert hosts_overlap(a, b) == hosts_overlap(b, a)
    assert hosts_overlap(a, a)
    witnessed = any(_matches(a, name) and _matches(b, name) for name in _NAMES)
    assert hosts_overlap(a, b) == witnessed, (a.host, b.host)


# ---- bundles ---------------------------------------------------------------------------------

_module_name = st.sampled_from(
    ["index.js", "lib/util.js", "data.json", "a.txt", "./x.js", "__plugyard.js", "b/../c.js"]
)
_module = st.fixed_dictionaries(
    {
        "name": _module_name,
        "content": st.sampled_from(["export default {}", "{}", "[1", "aGVsbG8=", "not base64!", "x"]),
        "type": st.sampled_from(["js", "cjs", "json", "text", "data", "wasm"]),
    }
)
_upload = st.fixed_dictionaries(
    {"modules": st.lists(_module, min_size=1, max_size=6)},
    optional={
        "main_module": _module_name,
        "compatibility_flags": st.lists(st.sampled_from(["nodejs_compat", "a_b"]), max_size=4),
    },
)


def _version(raw: dict[str, Any]) -> VersionCreate | None:
    """The body as the API decodes it (None: the schema refuses it, a 400 before any check)."""
    try:
        return msgspec.convert(raw, VersionCreate)
    except msgspec.ValidationError:
        return None


@BOUNDED
@seed(9)
@given(_upload, st.integers(min_value=1, max_value=64))
def test_bundle_check_refuses_only_with_domain_errors_and_respects_limits(
    raw: dict[str, Any], limit: int
) -> None:
    _count("bundle_check")
    data = _version(raw)
    if data is None:
        return
    try:
        bundle = bundles.check(data, max_bytes=limit)
    except (InvalidInput, PayloadTooLarge):
        return
    assert bundle.size_bytes <= limit
    assert len({m["name"] for m in bundle.modules}) == len(bundle.modules)
    assert bundle.main_module in {m["name"] for m in bundle.modules}
    assert all(
        ".." not in m["name"].split("/") and not m["name"].startswith("__plugyard") for m in bundle.modules
    )


@BOUNDED
@seed(9)
@given(_upload, st.randoms(use_true_random=False))
def test_bundle_hash_ignores_module_and_flag_order(raw: dict[str, Any], rnd: random.Random) -> None:
    _count("bundle_hash")
    data = _version(raw)
    if data is None:
        return
    try:
        first = bundles.check(data)
    except DomainError:
        return
    shuffled = dict(raw)
    shuffled["main_module"] = first.main_module
    shuffled["modules"] = rnd.sample(raw["modules"], len(raw["modules"]))
    flags = list(raw.get("compatibility_flags", []))
    shuffled["compatibility_flags"] = rnd.sample(flags, len(flags)) + flags[:1]
    again = _version(shuffled)
    assert again is not None
    assert bundles.check(again).hash == first.hash


def test_module_count_over_the_limit_is_413() -> None:
    modules = [{"name": f"m{i}.js", "content": "export default {}"} for i in range(bundles.MAX_MODULES + 1)]
    data = _version({"modules": modules})
    assert data is not None
    with pytest.raises(PayloadTooLarge):
        bundles.check(data)


# ---- template parameters ---------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=10,
)
_SPECS = {
    "name": Parameter(
        type="string", description="d", min_length=1, max_length=8, pattern=r"[a-z]+", default="abc"
    ),
    "count": Parameter(type="integer", description="d", minimum=1, maximum=10, default=3),
    "ratio": Parameter(type="number", description="d", minimum=0, maximum=1, default=0.5),
    "on": Parameter(type="boolean", description="d", default=False),
    "mode": Parameter(type="enum", description="d", choices=["fast", "safe"], default="safe"),
    "origin": Parameter(type="string", description="d", format="url", default=""),
    "nets": Parameter(
        type="list",
        description="d",
        max_items=3,
        unique_items=True,
        items=StringRules(format="cidr"),
        default=[],
    ),
    "headers": Parameter(
        type="map",
        description="d",
        max_items=3,
        keys=StringRules(format="header-name", min_length=1),
        values=StringRules(format="header-value", max_length=16),
        default={},
    ),
}


@BOUNDED
@seed(9)
@given(st.sampled_from(sorted(_SPECS)), _json)
def test_parameter_check_refuses_only_with_invalid_input_naming_the_field(name: str, value: Any) -> None:
    _count("parameter_check")
    spec = _SPECS[name]
    field = f"parameters.{name}"
    try:
        checked = check(spec, value, field)
    except InvalidInput as exc:
        refused = exc.extra["errors"][0]["field"]
    else:
        refused = None
    if refused is not None:
        assert refused.startswith(field)
    elif spec.type in {"integer", "number"}:
        assert spec.minimum is not None
        assert spec.maximum is not None
        assert spec.minimum <= checked <= spec.maximum
        assert not isinstance(checked, bool)
    elif spec.type in {"string", "enum"}:
        assert spec.min_length <= len(checked) <= spec.max_length
    elif spec.type == "list":
        assert len(checked) <= spec.max_items
        assert len(set(checked)) == len(checked)
    elif spec.type == "map":
        assert len(checked) <= spec.max_items


@BOUNDED
@seed(9)
@given(st.dictionaries(st.sampled_from([*sorted(_SPECS), "unknown"]), _json, max_size=4))
def test_resolve_fills_defaults_or_names_the_bad_parameter(given_values: dict[str, Any]) -> None:
    _count("parameter_resolve")
    try:
        values = resolve(_SPECS, given_values)
    except InvalidInput as exc:
        refused = exc.extra["errors"][0]["field"]
        assert refused.split(".")[1].split("[")[0] in given_values, refused
        return
    assert list(values) == list(_SPECS)
    for name, spec in _SPECS.items():
        if name not in given_values:
            assert values[name] == spec.default


@BOUNDED
@seed(9)
@given(st.text(max_size=40))
def test_formats_refuse_control_characters(value: str) -> None:
    _count("parameter_formats")
    for fmt in ("url", "header-value"):
        try:
            check_string(StringRules(format=fmt), value, "f")
        except InvalidInput:
            continue
        assert "\r" not in value
        assert "\n" not in value

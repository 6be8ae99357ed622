"""The portal's pure pieces: passwords, the route checker, generated template forms, diffs, charts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from plugyard.accounts import passwords
from plugyard.errors import InvalidInput
from plugyard.portal import charts, diffview, route_check, template_form, uploads
from plugyard.templates.catalog import load_catalog


def test_passwords_hash_with_salt_and_verify() -> None:
    first = passwords.hash_password("correct horse battery", n=2**10)
    second = passwords.hash_password("correct horse battery", n=2**10)
    assert first != second  # salted
    assert first.startswith("scrypt$1024$8$1$")
    assert passwords.verify_password("correct horse battery", first)
    assert not passwords.verify_password("correct horse batterz", first)
    assert not passwords.verify_password("x", "not-a-hash")
    assert passwords.needs_rehash(first)  # weaker than the current cost
    assert passwords.check_strength("short") == "use at least 10 characters"
    assert passwords.check_strength("aaaaaaaaaaaa") is not None
    assert passwords.check_strength("a good long password") is None


ROUTES = [
    ("shop.acme.test/*", "a"),
    ("shop.acme.test/api/*", "b"),
    ("shop.acme.test/api", "c"),
    ("*.acme.test/*", "d"),
    ("*.eu.acme.test/*", "e"),
]


@pytest.mark.parametrize(
    ("url", "plugin"),
    [
        ("https://shop.acme.test/", "a"),
        ("shop.acme.test/api/cart", "b"),
        ("http://shop.acme.test:8443/api", "c"),
        ("x.acme.test/anything", "d"),
        ("x.eu.acme.test/", "e"),
        ("acme.test/", None),
        ("SHOP.ACME.TEST./api/", "b"),
    ],
)
def test_route_checker_follows_the_gateways_specificity(url: str, plugin: str | None) -> None:
    assert route_check.which(url, ROUTES).plugin == plugin


def test_route_checker_needs_a_host() -> None:
    with pytest.raises(ValueError, match="enter a URL"):
        route_check.which("/just/a/path", ROUTES)


def test_template_forms_round_trip_every_catalog_template() -> None:
    for template in load_catalog().all():
        params = template.manifest.parameters
        fields = template_form.fields(params, None)
        assert [f.name for f in fields] == list(params)
        form = {f.name: f.value for f in fields if f.widget != "checkbox" or f.checked}
        for f in fields:
            if f.required and not f.value:
                example = template.manifest.example[f.name]
                form[f.name] = template_form.fields({f.name: params[f.name]}, None)[0].value or (
                    "\n".join(f"{k} = {v}" for k, v in example.items())
                    if isinstance(example, dict)
                    else "\n".join(example)
                    if isinstance(example, list)
                    else str(example)
                )
        template.render(template_form.values(params, form))  # the defaults pass the manifest's checks


def test_template_form_names_the_parameter_of_a_bad_value() -> None:
    params = load_catalog().get("maintenance").manifest.parameters
    with pytest.raises(InvalidInput) as caught:
        template_form.values(params, {"title": "x", "retry_after_seconds": "soon"})
    assert caught.value.extra["errors"][0]["field"] == "parameters.retry_after_seconds"
    redirects = load_catalog().get("redirects").manifest.parameters
    values = template_form.values(
        redirects, {"rules": "/old = /new\n\n/a/* = https://b.example/*", "status": "302"}
    )
    assert values["rules"] == {"/old": "/new", "/a/*": "https://b.example/*"}
    assert values["status"] == 302
    assert values["preserve_query"] is False  # an unchecked checkbox


def test_uploads_strip_the_dropped_folder_and_read_the_manifest() -> None:
    assert uploads.module_names(["hello/index.js", "hello/lib/util.js"]) == ["index.js", "lib/util.js"]
    assert uploads.module_names(["index.js", "lib/util.js"]) == ["index.js", "lib/util.js"]
    version, names = uploads.version(
        [
            ("app/worker.js", b"export default {}"),
            ("app/plugyard.json", b'{"main_module": "worker.js"}'),
            ("app/.DS_Store", b"junk"),
        ],
        activate=True,
    )
    assert names == ["worker.js"]
    assert version.main_module == "worker.js"
    assert version.activate is True
    with pytest.raises(InvalidInput, match="at least one file"):
        uploads.version([], activate=False)


def test_side_by_side_pairs_removed_and_added_lines() -> None:
    rows = diffview.side_by_side("--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n keep\n-old\n+new\n+more\n")
    assert [(r.kind, r.left, r.right) for r in rows] == [
        ("hunk", "@@ -1,3 +1,3 @@", "@@ -1,3 +1,3 @@"),
        ("same", "keep", "keep"),
        ("changed", "old", "new"),
        ("changed", None, "more"),
    ]


def test_charts_are_svg_with_an_accessible_summary() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    points = charts.filled({start + timedelta(minutes=1): 5.0}, start, start + timedelta(minutes=3), 60)
    assert [v for _, v in points] == [0.0, 5.0, 0.0]
    svg = charts.line_chart(
        "Requests <script>",
        [charts.Line(name="a<b", points=points)],
        start=start,
        end=start + timedelta(minutes=3),
    )
    assert svg.startswith("<svg")
    assert 'role="img"' in svg
    assert "<script>" not in svg
    assert "Requests &lt;script&gt;" in svg
    assert "polyline" in svg

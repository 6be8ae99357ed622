"""Template catalog rules, rendering and the docs' examples: no I/O beyond reading the repo's files."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from plugyard.errors import InvalidInput, NotFound
from plugyard.settings import PROJECT_ROOT
from plugyard.templates.catalog import TEMPLATES_DIR, folder_hash, load_catalog, load_template
from plugyard.templates.manifest import ManifestError

CATALOG = load_catalog()
DOCS = PROJECT_ROOT / "docs" / "templates.md"


def test_the_repository_has_at_least_six_templates_and_each_example_renders() -> None:
    names = [t.name for t in CATALOG.all()]
    assert len(names) >= 6
    assert names == sorted(p.name for p in TEMPLATES_DIR.iterdir() if p.is_dir())
    for template in CATALOG.all():
        rendered = template.render(template.manifest.example)
        assert "export default" in rendered.source
        assert set(rendered.parameters) == set(template.manifest.parameters)
        assert len(template.hash) == 64


def test_each_parameter_is_typed_and_described() -> None:
    for template in CATALOG.all():
        assert template.manifest.title
        assert template.manifest.description
        for name, spec in template.manifest.parameters.items():
            assert spec.description, f"{template.name}.{name}"
            assert spec.type in {"string", "integer", "number", "boolean", "enum", "list", "map"}


def test_the_docs_show_exactly_the_examples_the_tests_run() -> None:
    text = DOCS.read_text()
    bodies: dict[str, dict[str, Any]] = {}
    for block in re.findall(r"```json\n(.*?)```", text, flags=re.S):
        body = json.loads(block)
        if isinstance(body, dict) and "template" in body and "parameters" in body:
            bodies[body["template"]] = body["parameters"]
    assert sorted(bodies) == [t.name for t in CATALOG.all()]
    for template in CATALOG.all():
        assert bodies[template.name] == template.manifest.example, template.name
        section = text.split(f"\n## {template.name}\n", 1)[1].split("\n## ", 1)[0]
        for name, spec in template.manifest.parameters.items():
            row = next((line for line in section.splitlines() if line.startswith(f"| `{name}` |")), None)
            assert row is not None, f"{template.name}.{name} is not in the parameter table"
            default = row.split(" | ")[2]
            expected = "*required*" if spec.required else "`" + json.dumps(spec.default) + "`"
            assert default in {expected, "see the manifest"}, f"{template.name}.{name}: {default}"


HOSTILE = "\"'`${globalThis.pwned = 1}</script>\n<script>alert(1)</script> \\u0041 \u2028 done"


def test_a_hostile_value_renders_as_one_json_string_literal() -> None:
    rendered = CATALOG.get("maintenance").render({"title": "Notice", "message": HOSTILE})
    line = next(x for x in rendered.source.splitlines() if x.startswith("const MESSAGE"))
    assert line == (
        r"""const MESSAGE = "\"\u0027`${globalThis.pwned = 1}\u003c/script\u003e\n"""
        r"""\u003cscript\u003ealert(1)\u003c/script\u003e \\u0041 \u2028 done";"""
    )
    assert rendered.parameters["message"] == HOSTILE


def test_render_applies_defaults_and_refuses_bad_parameters() -> None:
    maintenance = CATALOG.get("maintenance")
    assert maintenance.render({}).parameters == {
        "title": "Down for maintenance",
        "message": "We are making some improvements and will be back shortly.",
        "retry_after_seconds": 3600,
    }
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("maintenance", {"nope": 1}, "parameters.nope"),
        ("maintenance", {"retry_after_seconds": 1.5}, "parameters.retry_after_seconds"),
        ("maintenance", {"retry_after_seconds": -1}, "parameters.retry_after_seconds"),
        ("maintenance", {"message": None}, "parameters.message"),
        ("redirects", {}, "parameters.rules"),
        ("redirects", {"rules": {"/a": "/b"}, "preserve_query": "yes"}, "parameters.preserve_query"),
        ("redirects", {"rules": {"/a/*/b": "/c"}}, "parameters.rules./a/*/b"),
        ("access-gate", {"allow_cidrs": ["10.0.0.0/33"]}, "parameters.allow_cidrs[0]"),
        ("access-gate", {"allow_cidrs": ["fe80::1%eth0/64"]}, "parameters.allow_cidrs[0]"),
        ("access-gate", {"allow_cidrs": ["10.0.0.0/8", "10.0.0.0/8"]}, "parameters.allow_cidrs"),
        ("access-gate", {"required_header_values": ["a\nb"]}, "parameters.required_header_values[0]"),
        ("security-headers", {"custom_headers": {"bad name": "x"}}, "parameters.custom_headers.bad name"),
        ("security-headers", {"frame_options": "ALLOW"}, "parameters.frame_options"),
        ("json-api-proxy", {}, "parameters.origin"),
        ("json-api-proxy", {"origin": "https://a.test", "path_prefix": "/a/../b"}, "parameters.path_prefix"),
        ("json-api-proxy", {"origin": "https://a.test", "allowed_methods": []}, "parameters.allowed_methods"),
        ("html-banner", {"banner_text": "x", "page_html": "<p>no body</p>"}, "parameters.page_html"),
    ]
    for name, given, field in cases:
        with pytest.raises(InvalidInput) as caught:
            CATALOG.get(name).render(given)
        assert caught.value.extra["errors"][0]["field"] == field, (name, given)


def test_unknown_templates() -> None:
    with pytest.raises(NotFound):
        CATALOG.get("nope")
    with pytest.raises(InvalidInput) as caught:
        CATALOG.for_input("nope")
    assert caught.value.extra["errors"][0]["field"] == "template"


def _template(tmp_path: Path, source: str, manifest: str | None = None) -> Path:
    folder = tmp_path / "demo"
    folder.mkdir()
    (folder / "template.js.j2").write_text(source)
    (folder / "manifest.toml").write_text(
        manifest
        or 'title = "t"\ndescription = "d"\n[parameters.x]\ntype = "string"\ndefault = "a"\n'
        'description = "x"\n[example]\nx = "b"\n'
    )
    return folder


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("const X = {{ x }};", "every output must be"),
        ("const X = {{ x | safe }};", "only the tojson filter"),
        ("const X = {{ x | tojson(2) }};", "only the tojson filter"),
        ("const X = {{ 'literal' }};", "every output must be"),
        ("{% for c in x %}{{ c | tojson }}{% endfor %}", "For is not allowed"),
        ("{% set y = x %}{{ y | tojson }}", "is not allowed"),
        ("{% include 'other' %}", "is not allowed"),
        ("{{ x.__class__ | tojson }}", "is not allowed"),
        ("const Y = {{ y | tojson }};", "undeclared parameters ['y']"),
        ("const X = {{ x | tojson }", "line 1"),
    ],
)
def test_templates_that_could_output_raw_values_are_refused(
    tmp_path: Path, source: str, message: str
) -> None:
    with pytest.raises(ManifestError, match=re.escape(message)):
        load_template(_template(tmp_path, source))


def test_simple_conditionals_are_allowed(tmp_path: Path) -> None:
    template = load_template(_template(tmp_path, '{% if x == "b" %}const B = {{ x | tojson }};{% endif %}\n'))
    assert template.render({"x": "b"}).source == 'const B = "b";\n'
    assert template.render({}).source == "\n"


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (
            'title = "t"\ndescription = "d"\n[parameters.x]\ntype = "string"\ndescription = "x"\n[example]\n',
            "either `required = true` or a `default`",
        ),
        (
            'title = "t"\ndescription = "d"\n[parameters.x]\ntype = "string"\ndescription = "x"\nrequired = true\n'
            'default = "a"\n[example]\nx = "a"\n',
            "either `required = true` or a `default`",
        ),
        (
            'title = "t"\ndescription = "d"\n[parameters.x]\ntype = "colour"\ndescription = "x"\ndefault = "a"\n'
            "[example]\n",
            "manifest.toml",
        ),
        (
            'title = "t"\ndescription = "d"\n[parameters.x]\ntype = "string"\ndescription = "x"\ndefault = "a"\n'
            "max_length = 0\n[example]\n",
            "default of x",
        ),
        (
            'title = "t"\ndescription = "d"\n[parameters.x]\ntype = "string"\ndescription = "x"\ndefault = "a"\n'
            "[example]\nx = 1\n",
            "example",
        ),
        (
            'title = "t"\ndescription = "d"\n[parameters.x]\ntype = "string"\ndescription = "x"\ndefault = "a"\n'
            'pattern = "("\n[example]\n',
            "bad pattern",
        ),
        (
            'title = "t"\ndescription = "d"\n[parameters.x]\ntype = "enum"\ndescription = "x"\ndefault = "a"\n'
            "[example]\n",
            "needs `choices`",
        ),
        (
            'title = "t"\ndescription = "d"\n[parameters.x]\ntype = "integer"\ndescription = "x"\ndefault = 1\n'
            'choices = ["1"]\n[example]\n',
            "every choice must be a int",
        ),
        (
            'title = "t"\ndescription = "d"\n[parameters.X]\ntype = "string"\ndescription = "x"\ndefault = "a"\n'
            "[example]\n",
            "lower_snake_case",
        ),
    ],
)
def test_broken_manifests_are_refused(tmp_path: Path, manifest: str, message: str) -> None:
    with pytest.raises(ManifestError, match=re.escape(message)):
        load_template(_template(tmp_path, "const X = {{ x | tojson }};\n", manifest))


def test_the_hash_covers_every_file_of_the_folder(tmp_path: Path) -> None:
    folder = _template(tmp_path, "const X = {{ x | tojson }};\n")
    digest = hashlib.sha256()
    for name in ("manifest.toml", "template.js.j2"):
        data = (folder / name).read_bytes()
        digest.update(b"%d:%s%d:" % (len(name), name.encode(), len(data)))
        digest.update(data)
    before = folder_hash(folder)
    assert before == digest.hexdigest()
    (folder / "README.md").write_text("notes")
    assert folder_hash(folder) != before
    assert load_template(folder).hash == folder_hash(folder)

"""The template catalog: loads `plugin_templates/`, checks each template once, renders on demand.

Rendering is safe by construction: Jinja2 runs with `StrictUndefined` and `autoescape=False`,
and at load time the template's syntax tree is checked so that the only thing ever output is
`{{ name | tojson }}` (a JSON literal is a valid JavaScript expression, and Jinja's `tojson`
also escapes `<`, `>`, `&` and `'`), and the only logic is `{% if %}` on parameters.
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import Any

import jinja2
import msgspec
from jinja2 import meta, nodes

from plugyard.errors import InvalidInput, NotFound
from plugyard.settings import PROJECT_ROOT
from plugyard.templates import params
from plugyard.templates.manifest import Manifest, ManifestError, parse

TEMPLATES_DIR = PROJECT_ROOT / "plugin_templates"
SOURCE_FILE = "template.js.j2"
MANIFEST_FILE = "manifest.toml"
MODULE_NAME = "index.js"

# The syntax a template may use: text, `{{ name | tojson }}` and `{% if %}` on parameters.
_ALLOWED_NODES = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.If,
    nodes.Name,
    nodes.Const,
    nodes.Filter,
    nodes.Not,
    nodes.And,
    nodes.Or,
    nodes.Compare,
    nodes.Operand,
)


class Rendered(msgspec.Struct, frozen=True, kw_only=True):
    """A rendered module with the parameters it was rendered with (defaults applied)."""

    source: str
    parameters: dict[str, Any]


class Template:
    """One checked template folder."""

    def __init__(self, name: str, manifest: Manifest, source: str, digest: str) -> None:
        """Check the source against the manifest and compile it.

        Raises:
            ManifestError: the source outputs anything but `tojson` of a parameter, uses logic
                beyond `if`, names an undeclared parameter, or the example does not validate.
        """
        self.name = name
        self.manifest = manifest
        self.source = source
        self.hash = digest
        # JavaScript, not HTML: escaping is the tojson filter's job, enforced by _check_tree.
        env = jinja2.Environment(
            undefined=jinja2.StrictUndefined,
            autoescape=False,  # noqa: S701
            keep_trailing_newline=True,
        )
        try:
            tree = env.parse(source)
        except jinja2.TemplateSyntaxError as exc:
            raise ManifestError(f"template {name}: line {exc.lineno}: {exc.message}") from None
        _check_tree(name, tree)
        undeclared = meta.find_undeclared_variables(tree) - set(manifest.parameters)
        if undeclared:
            raise ManifestError(f"template {name}: undeclared parameters {sorted(undeclared)}")
        self._compiled = env.from_string(source)
        for pname, spec in manifest.parameters.items():
            if spec.default is not msgspec.UNSET:
                try:
                    params.check(spec, spec.default, f"parameters.{pname}")
                except InvalidInput as exc:
                    raise ManifestError(f"template {name}: default of {pname}: {exc.detail}") from None
        try:
            params.resolve(manifest.parameters, manifest.example)
        except InvalidInput as exc:
            raise ManifestError(f"template {name}: example: {exc.extra['errors'][0]}") from None

    def render(self, given: dict[str, Any]) -> Rendered:
        """Validate the parameters and render the module.

        Raises:
            InvalidInput: a parameter is unknown, missing or breaks its rules (`parameters.<name>`).
        """
        values = params.resolve(self.manifest.parameters, given)
        return Rendered(source=self._compiled.render(**values), parameters=values)


def _check_tree(name: str, tree: nodes.Template) -> None:
    for node in tree.find_all(nodes.Node):
        if not isinstance(node, _ALLOWED_NODES):
            raise ManifestError(f"template {name}: {type(node).__name__} is not allowed (only tojson and if)")
        if isinstance(node, nodes.Filter) and (node.name != "tojson" or node.args or node.kwargs):
            raise ManifestError(f"template {name}: only the tojson filter is allowed, not {node.name}")
    for output in tree.find_all(nodes.Output):
        for child in output.nodes:
            tojson = isinstance(child, nodes.Filter) and isinstance(child.node, nodes.Name)
            if not isinstance(child, nodes.TemplateData) and not tojson:
                raise ManifestError(f"template {name}: every output must be {{{{ parameter | tojson }}}}")


def folder_hash(folder: Path) -> str:
    """SHA-256 over every file of a template folder (relative path and bytes, sorted by path)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        data = path.read_bytes()
        relative = path.relative_to(folder).as_posix().encode()
        digest.update(b"%d:%s%d:" % (len(relative), relative, len(data)))
        digest.update(data)
    return digest.hexdigest()


def load_template(folder: Path) -> Template:
    """Load and check one template folder.

    Raises:
        ManifestError: a missing file, bad TOML, or a broken rule.
    """
    try:
        document = tomllib.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
        source = (folder / SOURCE_FILE).read_text(encoding="utf-8")
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ManifestError(f"template {folder.name}: {exc}") from None
    return Template(folder.name, parse(folder.name, document), source, folder_hash(folder))


class Catalog:
    """Every template of a folder, by name."""

    def __init__(self, templates: dict[str, Template]) -> None:
        """Hold already-checked templates (see `load_catalog`)."""
        self._templates = dict(sorted(templates.items()))

    def all(self) -> list[Template]:
        """Every template, ordered by name."""
        return list(self._templates.values())

    def get(self, name: str) -> Template:
        """A template by name.

        Raises:
            NotFound: no such template.
        """
        template = self._templates.get(name)
        if template is None:
            raise NotFound(f"template {name!r} not found", slug="template-not-found")
        return template

    def for_input(self, name: str) -> Template:
        """A template named in a request body.

        Raises:
            InvalidInput: no such template (field `template`).
        """
        template = self._templates.get(name)
        if template is None:
            raise InvalidInput(f"no template named {name!r}", field="template", slug="unknown-template")
        return template


def load_catalog(directory: Path = TEMPLATES_DIR) -> Catalog:
    """Load every template folder under `directory` (a missing folder gives an empty catalog).

    Raises:
        ManifestError: a template breaks the rules; the app refuses to start rather than serve it.
    """
    if not directory.is_dir():
        return Catalog({})
    folders = sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    return Catalog({folder.name: load_template(folder) for folder in folders})

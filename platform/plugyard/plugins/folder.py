"""Bundles from files: module types by extension, folders, multipart parts. No I/O but `read_folder`."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import msgspec

from plugyard.errors import InvalidInput
from plugyard.plugins.schemas import ModuleType, UploadMeta, VersionCreate

MANIFEST = "plugyard.json"
DEFAULT_MAINS = ("index.js", "index.mjs", "src/index.js", "src/index.mjs", "worker.js")
_TYPES: dict[str, ModuleType] = {
    ".js": "js",
    ".mjs": "js",
    ".cjs": "cjs",
    ".json": "json",
    ".txt": "text",
    ".html": "text",
    ".wasm": "wasm",
}


def module_type(name: str) -> ModuleType:
    """The module type a file name implies: .js/.mjs js, .cjs, .json, .txt/.html text, .wasm, else data."""
    return _TYPES.get(PurePosixPath(name).suffix.lower(), "data")


def version_from_files(files: Mapping[str, bytes], meta: UploadMeta) -> VersionCreate:
    """Build an upload from named file contents and the upload metadata.

    Raises:
        InvalidInput: a text module is not UTF-8, or a name or setting breaks the schema.
    """
    modules = []
    for name, content in files.items():
        kind = meta.types.get(name) or module_type(name)
        if kind in {"data", "wasm"}:
            text = base64.b64encode(content).decode()
        else:
            try:
                text = content.decode()
            except UnicodeDecodeError:
                raise InvalidInput(f"{kind} module {name!r} is not UTF-8 text", field=name) from None
        modules.append({"name": name, "type": kind, "content": text})
    body = msgspec.to_builtins(meta)
    body.pop("types", None)
    if meta.main_module is None:
        body["main_module"] = _default_main([m["name"] for m in modules if m["type"] == "js"])
    try:
        return msgspec.convert({**body, "modules": modules}, VersionCreate)
    except msgspec.ValidationError as exc:
        raise InvalidInput(str(exc), field="modules") from None


def _default_main(js_modules: list[str]) -> str | None:
    """index.js (or one of DEFAULT_MAINS) if present, else the only ES module, else undecided."""
    for name in DEFAULT_MAINS:
        if name in js_modules:
            return name
    return js_modules[0] if len(js_modules) == 1 else None


def read_folder(root: Path) -> tuple[dict[str, bytes], UploadMeta]:
    """Every file below `root` (dot-files and the manifest excepted) and the manifest, if any.

    Module names are the paths relative to `root` with `/` separators.

    Raises:
        ValueError: the manifest is not valid, or the folder holds no files.
    """
    meta = UploadMeta()
    manifest = root / MANIFEST
    if manifest.is_file():
        try:
            meta = msgspec.json.decode(manifest.read_bytes(), type=UploadMeta)
        except msgspec.DecodeError as exc:
            raise ValueError(f"{manifest}: {exc}") from None
    files = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if not path.is_file() or relative.as_posix() == MANIFEST:
            continue
        if any(part.startswith(".") for part in relative.parts):
            continue
        files[relative.as_posix()] = path.read_bytes()
    if not files:
        raise ValueError(f"{root} holds no module files")
    return files, meta

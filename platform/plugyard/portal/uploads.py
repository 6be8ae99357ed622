"""Browser uploads (files or a dropped folder) turned into a version to publish (no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath

import msgspec

from plugyard.errors import InvalidInput
from plugyard.plugins.folder import MANIFEST, version_from_files
from plugyard.plugins.schemas import UploadMeta, VersionCreate


def module_names(names: Sequence[str]) -> list[str]:
    """Relative module names: `/` separators, and a folder that holds everything dropped.

    A dropped or picked folder `hello/` gives `hello/index.js`; the folder itself is not part of
    the bundle, so a prefix shared by every file is removed.
    """
    clean = [PurePosixPath(n.replace("\\", "/").lstrip("/")).as_posix() for n in names]
    parts = [n.split("/") for n in clean]
    if len(parts) >= 1 and all(len(p) > 1 for p in parts) and len({p[0] for p in parts}) == 1:
        clean = ["/".join(p[1:]) for p in parts]
    return clean


def version(files: Sequence[tuple[str, bytes]], *, activate: bool) -> tuple[VersionCreate, list[str]]:
    """The upload to publish and the module names in upload order (to place errors next to a module).

    Dot-files are skipped; `plugyard.json` supplies the settings (main module, compatibility date
    and flags, limits, module types) as in `plugyard plugins push`.

    Raises:
        InvalidInput: no files, a duplicate name, or a bad manifest (`modules` / `plugyard.json`).
    """
    names = module_names([name for name, _ in files])
    contents: dict[str, bytes] = {}
    meta = UploadMeta()
    for name, (_, content) in zip(names, files, strict=True):
        if any(part.startswith(".") for part in name.split("/")):
            continue
        if name == MANIFEST:
            try:
                meta = msgspec.json.decode(content, type=UploadMeta)
            except msgspec.DecodeError as exc:
                raise InvalidInput(f"{MANIFEST}: {exc}", field=MANIFEST) from None
            continue
        if name in contents:
            raise InvalidInput(f"two files are named {name!r}", field="modules")
        contents[name] = content
    if not contents:
        raise InvalidInput("choose or drop at least one file (index.js, for instance)", field="modules")
    created = version_from_files(contents, msgspec.structs.replace(meta, activate=activate or meta.activate))
    return created, list(contents)

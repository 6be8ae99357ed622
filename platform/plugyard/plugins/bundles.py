"""Bundle rules and content addressing: pure functions, no I/O."""

from __future__ import annotations

import base64
import hashlib

import msgspec

from plugyard.errors import InvalidInput, PayloadTooLarge
from plugyard.plugins.schemas import VersionCreate

MAX_BUNDLE_BYTES = 1024 * 1024
MAX_MODULES = 100
# Module names the gateway uses for its own wrapper modules (the validation probe, the logs shim).
RESERVED_PREFIX = "__plugyard"
_ENCODER = msgspec.json.Encoder(order="deterministic")


class Bundle(msgspec.Struct, frozen=True, kw_only=True):
    """A checked bundle ready to store."""

    hash: str
    main_module: str
    modules: list[dict[str, str]]
    compatibility_date: str
    compatibility_flags: list[str]
    limits: dict[str, int] | None
    size_bytes: int


def check(data: VersionCreate, *, max_bytes: int = MAX_BUNDLE_BYTES) -> Bundle:
    """Check an upload against the bundle rules and compute its content hash.

    The hash covers the modules (sorted by name), the main module, the compatibility settings
    and the limits (when set), so the same bundle and settings always get the same hash.

    Raises:
        PayloadTooLarge: the modules add up to more than `max_bytes`, or there are more than
            MAX_MODULES of them.
        InvalidInput: a duplicate, unsafe or reserved module name, a main module that is missing
            or not an ES module, bad base64 or JSON.
    """
    if len(data.modules) > MAX_MODULES:
        raise PayloadTooLarge(
            f"the bundle has {len(data.modules)} modules, more than {MAX_MODULES}", limit=MAX_MODULES
        )
    size = 0
    seen: set[str] = set()
    for index, module in enumerate(data.modules):
        field = f"modules[{index}]"
        if module.name in seen:
            raise InvalidInput(f"module {module.name!r} appears twice", field=f"{field}.name")
        seen.add(module.name)
        if any(part in {"", ".", ".."} for part in module.name.split("/")):
            raise InvalidInput(
                f"module name {module.name!r} has an empty, '.' or '..' path segment", field=f"{field}.name"
            )
        if module.name.startswith(RESERVED_PREFIX):
            raise InvalidInput(
                f"module names starting with {RESERVED_PREFIX!r} are reserved", field=f"{field}.name"
            )
        size += _content_size(module.type, module.content, f"{field}.content")
        if size > max_bytes:
            raise PayloadTooLarge(f"the bundle is larger than {max_bytes} bytes", limit=max_bytes)
    main = data.main_module or data.modules[0].name
    main_type = next((m.type for m in data.modules if m.name == main), None)
    if main_type is None:
        raise InvalidInput(f"main module {main!r} is not among the modules", field="main_module")
    if main_type != "js":
        # workerd: "Main module must be an ES module."
        raise InvalidInput(
            f"main module {main!r} must be an ES module (type js), not {main_type}", field="main_module"
        )
    modules = sorted(
        ({"name": m.name, "type": m.type, "content": m.content} for m in data.modules),
        key=lambda m: m["name"],
    )
    flags = sorted(set(data.compatibility_flags))
    limits = msgspec.to_builtins(data.limits) if data.limits is not None else None
    hashed = {
        "main_module": main,
        "modules": modules,
        "compatibility_date": data.compatibility_date,
        "compatibility_flags": flags,
    }
    if limits:
        # Only when set, so bundles stored before limits existed keep their hash.
        hashed["limits"] = limits
    digest = hashlib.sha256(_ENCODER.encode(hashed)).hexdigest()
    return Bundle(
        hash=digest,
        main_module=main,
        modules=modules,
        compatibility_date=data.compatibility_date,
        compatibility_flags=flags,
        limits=limits or None,
        size_bytes=size,
    )


def _content_size(kind: str, content: str, field: str) -> int:
    if kind in {"data", "wasm"}:
        try:
            return len(base64.b64decode(content, validate=True))
        except ValueError:  # binascii.Error, or a plain ValueError for non-ASCII text
            raise InvalidInput(f"{kind} module content must be base64", field=field) from None
    if kind == "json":
        try:
            msgspec.json.decode(content)
        except msgspec.DecodeError as exc:
            raise InvalidInput(f"json module is not valid JSON: {exc}", field=field) from None
    return len(content.encode())

import base64

import msgspec
import pytest

from plugyard.errors import InvalidInput, PayloadTooLarge
from plugyard.plugins import bundles
from plugyard.plugins.schemas import VersionCreate


def version(**kw: object) -> VersionCreate:
    return msgspec.convert(
        {"modules": [{"name": "index.js", "content": "export default {}"}], **kw}, VersionCreate
    )


def test_hash_is_content_addressed_and_order_independent() -> None:
    a = version(modules=[{"name": "a.js", "content": "1"}, {"name": "b.txt", "content": "2", "type": "text"}])
    b = version(
        modules=[{"name": "b.txt", "content": "2", "type": "text"}, {"name": "a.js", "content": "1"}],
        main_module="a.js",
    )
    assert bundles.check(a).hash == bundles.check(b).hash


def test_settings_are_part_of_the_hash() -> None:
    assert bundles.check(version()).hash != bundles.check(version(compatibility_date="2024-01-01")).hash
    assert bundles.check(version()).hash != bundles.check(version(compatibility_flags=["nodejs_compat"])).hash


def test_size_counts_decoded_binary() -> None:
    data = base64.b64encode(b"\0" * 10).decode()
    checked = bundles.check(
        version(
            modules=[{"name": "i.js", "content": "x"}, {"name": "d.bin", "content": data, "type": "data"}]
        )
    )
    assert checked.size_bytes == 11


def test_limits_and_rules() -> None:
    with pytest.raises(PayloadTooLarge):
        bundles.check(version(modules=[{"name": "i.js", "content": "x" * 101}]), max_bytes=100)
    with pytest.raises(InvalidInput, match="path segment"):
        bundles.check(version(modules=[{"name": "a/../i.js", "content": "x"}]))
    with pytest.raises(InvalidInput, match="base64"):
        bundles.check(
            version(
                modules=[{"name": "i.js", "content": "x"}, {"name": "w", "content": "!!", "type": "wasm"}]
            )
        )
    with pytest.raises(InvalidInput, match=r"must be an ES module \(type js\), not text"):
        bundles.check(version(modules=[{"name": "t.txt", "content": "x", "type": "text"}]))
    with pytest.raises(InvalidInput, match="ES module"):
        bundles.check(version(modules=[{"name": "m.cjs", "content": "x", "type": "cjs"}]))
    with pytest.raises(InvalidInput, match="reserved"):
        bundles.check(
            version(
                modules=[{"name": "i.js", "content": "x"}, {"name": "__plugyard_probe__.js", "content": "x"}]
            )
        )


def test_module_count_is_a_413() -> None:
    many = [{"name": f"m{i}.js", "content": "x"} for i in range(bundles.MAX_MODULES + 1)]
    with pytest.raises(PayloadTooLarge, match="more than 100"):
        bundles.check(version(modules=many))
    assert bundles.check(version(modules=many[:-1])).size_bytes == bundles.MAX_MODULES


def test_limits_are_part_of_the_hash_only_when_set() -> None:
    plain = bundles.check(version())
    assert plain.limits is None
    limited = bundles.check(version(limits={"cpu_ms": 50, "subrequests": 10}))
    assert limited.limits == {"cpu_ms": 50, "subrequests": 10}
    assert limited.hash != plain.hash
    assert bundles.check(version(limits={"cpu_ms": 50, "subrequests": 10})).hash == limited.hash
    assert bundles.check(version(limits={})).hash == plain.hash
    # A bundle hashed before limits existed keeps its hash (no "limits" key when unset).
    assert plain.hash == "3d280a5b4b36c1c6db89b1f0491cb9d3ff5d3c97e9dfcd795fafb9d93ce7ca17"

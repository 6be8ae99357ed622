import base64
from pathlib import Path

import msgspec
import pytest

from plugyard.errors import InvalidInput
from plugyard.plugins import diff
from plugyard.plugins.folder import module_type, read_folder, version_from_files
from plugyard.plugins.schemas import UploadMeta


def test_module_types_follow_the_extension() -> None:
    assert [
        module_type(n)
        for n in ["a.js", "b.MJS", "c.cjs", "d.json", "e.txt", "f.html", "g.wasm", "h.bin", "i"]
    ] == [
        "js",
        "js",
        "cjs",
        "json",
        "text",
        "text",
        "wasm",
        "data",
        "data",
    ]


def test_a_folder_becomes_modules_with_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.js").write_text("export default {}")
    (tmp_path / "data.json").write_text('{"a": 1}')
    (tmp_path / "blob.bin").write_bytes(b"\0\1\2")
    (tmp_path / ".hidden").write_text("skip")
    (tmp_path / "plugyard.json").write_text('{"main_module": "src/main.js", "limits": {"cpu_ms": 20}}')
    files, meta = read_folder(tmp_path)
    assert sorted(files) == ["blob.bin", "data.json", "src/main.js"]
    version = version_from_files(files, meta)
    assert version.main_module == "src/main.js"
    assert version.limits is not None
    assert version.limits.cpu_ms == 20
    by_name = {m.name: m for m in version.modules}
    assert by_name["blob.bin"].type == "data"
    assert base64.b64decode(by_name["blob.bin"].content) == b"\0\1\2"
    assert by_name["data.json"].type == "json"


def test_default_main_and_bad_text() -> None:
    files = {"lib.js": b"export const a = 1", "index.js": b"export default {}"}
    assert version_from_files(files, UploadMeta()).main_module == "index.js"
    assert version_from_files({"x.mjs": b"export default {}"}, UploadMeta()).main_module == "x.mjs"
    with pytest.raises(InvalidInput, match="not UTF-8"):
        version_from_files({"index.js": b"\xff\xfe"}, UploadMeta())
    with pytest.raises(InvalidInput):
        version_from_files({"../x.js": b"x"}, UploadMeta())
    forced = version_from_files({"a.dat": b"text"}, msgspec.convert({"types": {"a.dat": "text"}}, UploadMeta))
    assert forced.modules[0].type == "text"


def test_diff_reports_text_as_unified_and_binary_as_digests() -> None:
    old = [
        {"name": "index.js", "type": "js", "content": "a\nb\n"},
        {"name": "gone.txt", "type": "text", "content": "bye"},
        {"name": "w.wasm", "type": "wasm", "content": base64.b64encode(b"\0asm1").decode()},
    ]
    new = [
        {"name": "index.js", "type": "js", "content": "a\nc\n"},
        {"name": "w.wasm", "type": "wasm", "content": base64.b64encode(b"\0asm22").decode()},
    ]
    result = {m.name: m for m in diff.modules(old, new)}
    assert result["index.js"].status == "changed"
    assert result["index.js"].diff == "--- a/index.js\n+++ b/index.js\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n"
    assert result["gone.txt"].status == "removed"
    assert result["gone.txt"].diff is not None
    assert "-bye" in result["gone.txt"].diff
    assert (result["w.wasm"].size_from, result["w.wasm"].size_to) == (5, 6)
    assert result["w.wasm"].diff is None
    assert result["w.wasm"].sha256_from != result["w.wasm"].sha256_to
    changes = diff.settings(
        {"limits": None, "main_module": "a"}, {"limits": {"cpu_ms": 5}, "main_module": "a"}
    )
    assert [(c.setting, c.from_, c.to) for c in changes] == [("limits", None, {"cpu_ms": 5})]

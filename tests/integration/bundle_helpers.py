"""Bundles the bundle, secret and preview tests build: a wasm module and the must-show plugin."""

from __future__ import annotations

import base64

# (module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)),
# assembled by hand so the tests need no toolchain.
ADD_WASM = bytes.fromhex(
    "0061736d 01000000"  # magic, version 1
    " 01 07 01 60 02 7f 7f 01 7f"  # type section: (i32, i32) -> i32
    " 03 02 01 00"  # function section: function 0 has type 0
    " 07 07 01 03 616464 00 00"  # export section: "add" = function 0
    " 0a 09 01 07 00 20 00 20 01 6a 0b"  # code: local.get 0, local.get 1, i32.add
)

INDEX_JS = """\
import config from "./config.json";
import greeting from "./greeting.txt";
import addModule from "./add.wasm";

const { add } = new WebAssembly.Instance(addModule).exports;

export default {
  async fetch(request, env) {
    const sum = add(config.a, config.b);
    return new Response(`${greeting.trim()}, ${config.name}: ${config.a} + ${config.b} = ${sum}`);
  },
};
"""


def must_show_modules() -> list[dict[str, str]]:
    """An ES module importing a JSON, a text and a wasm module (JSON upload form)."""
    return [
        {"name": "index.js", "type": "js", "content": INDEX_JS},
        {"name": "config.json", "type": "json", "content": '{"name": "Plugyard", "a": 2, "b": 40}'},
        {"name": "greeting.txt", "type": "text", "content": "Hello\n"},
        {"name": "add.wasm", "type": "wasm", "content": base64.b64encode(ADD_WASM).decode()},
    ]


MUST_SHOW_OUTPUT = "Hello, Plugyard: 2 + 40 = 42"

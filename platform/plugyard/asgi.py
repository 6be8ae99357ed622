"""ASGI entry point for servers: `granian --interface asgi plugyard.asgi:app`."""

from __future__ import annotations

import gc

from plugyard import log, settings
from plugyard.app import create_app

# Young-generation collections every this many net allocations (CPython's default is 700).
GC_THRESHOLD = (10_000, 10, 10)


def settle_heap() -> None:
    """Tune the cyclic garbage collector for serving, once the app is built.

    With CPython's defaults the collector took ~10 % of the serving process's CPU under load
    (docs/benchmarks.md, "Profiling notes: control plane, third pass"): a young collection every
    ~16 requests (the requests in flight keep more than 700 young objects alive), and every couple of
    seconds a full collection that walked the ~100k objects of the imported modules and the app
    (~70 ms each, a pause for every request in flight). Those objects live as long as the
    process, so they are frozen out of the collector's view, and young collections run less
    often. Cycles are still collected; reference counting frees everything else at once.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


_settings = settings.from_env()
log.configure(log_format=_settings.log_format, level=_settings.log_level)
app = create_app(_settings)
settle_heap()

"""Loading heavy modules (torch, numpy, h5py) without Python's garbage collector.

While modules load, the collector traverses every object they have made so far again and
again (``python -c "import torch, torch._dynamo"``: 3.00-3.25 s with it, 2.35-2.50 s
without). :func:`loading` pauses it and then freezes what was loaded, so that later
collections skip those objects too (and, in a process that forks, never write to the
pages the children share). The commands load their modules under it
(:func:`interp.cli.interrupts.deferred_interrupts`), and so does a sweep's fork server
(:mod:`interp.sweeps.preload`).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def loading() -> Iterator[None]:
    """Pause the garbage collector while the body imports, then freeze every object so
    far and resume it. Nested, or with the collector already off, it changes nothing."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()

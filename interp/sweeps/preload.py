"""What a sweep's fork server imports before it forks any worker
(:mod:`interp.sweeps.forkserver`): the workers' module, torch included, and
``torch._dynamo``, which torch's optimizers import on first use (about 1 s that each
worker would otherwise pay), without the garbage collector and then frozen
(:func:`interp.imports.loading`), so that no forked worker's collector traverses them."""

from interp.imports import loading

with loading():
    import torch._dynamo  # noqa: F401

    import interp.sweeps.workers  # noqa: F401

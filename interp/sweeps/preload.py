"""What a sweep's fork server imports before it forks any worker
(:mod:`interp.sweeps.forkserver`): the workers' module, torch included, and
``torch._dynamo``, which torch's optimizers import on first use (about 1 s that each
worker would otherwise pay). The garbage collector waits while they load: it would
traverse every object of torch's import again and again (a fifth of the time), and its
objects are then frozen, so that neither the server nor a forked worker traverses them
again (nor copies their pages by writing to them)."""

import gc

gc.disable()
try:
    import torch._dynamo  # noqa: F401

    import interp.sweeps.workers  # noqa: F401
finally:
    gc.freeze()
    gc.enable()

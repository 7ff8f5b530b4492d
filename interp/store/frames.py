"""Notebook views of a run file: the per-step metrics as a pandas ``DataFrame`` and the
checkpoints as an xarray ``Dataset`` with named dimensions and coordinates.

pandas and xarray are the optional extra ``interp[notebook]``; they are imported here,
when a view is asked for, and a missing one is an ``ImportError`` that says how to
install it. :meth:`interp.Run.metrics_frame` and :meth:`interp.Run.to_xarray` call these.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

    from interp.store.run import Run


def require(module: str, what: str) -> Any:
    """Import an optional dependency of the notebook views, or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"{what} needs {module}, which is not installed; install it with "
                          f"pip install 'interp[notebook]' (or pip install {module}).") from None


def metrics_frame(run: Run, names: Sequence[str] | None = None) -> pd.DataFrame:
    """The run's per-step metrics (:meth:`Run.metrics`) as a ``pandas.DataFrame``: one row
    per recorded step (the index, named ``step``), one column per metric (``loss``,
    ``test_loss``, ``accuracy/<name>``, ``norm/<param>``), in the file's dtype."""
    pd = require("pandas", "Run.metrics_frame()")
    metrics = run.metrics(names)
    steps = metrics.pop("step")
    frame = pd.DataFrame(metrics, index=pd.Index(np.asarray(steps), name="step"))
    frame.attrs["path"] = str(run.path)
    return frame


def array_dims(run: Run, name: str, shape: Sequence[int]) -> tuple[str, ...]:
    """Dimension names of a stored array (its checkpoint axis left out): ``neuron`` on the
    family's neuron axis, ``residue`` on an axis of length p that changes with p,
    ``token`` on another axis that changes with p (a vocabulary with extra tokens), and
    ``<name>_<axis>`` elsewhere."""
    p, model = run.config.data.p, run.config.model
    neuron = run.family.neuron_axes(model).get(name)
    here = run.family.array_shapes(p, model).get(name)
    there = run.family.array_shapes(p + 1, model).get(name)
    dims = []
    for axis, size in enumerate(shape):
        varies = here is not None and there is not None and len(here) == len(shape) \
            and tuple(here) == tuple(shape) and here[axis] != there[axis]
        if axis == neuron:
            dims.append("neuron")
        elif varies:
            dims.append("residue" if size == p else "token")
        else:
            dims.append(f"{name}_{axis}")
    return tuple(dims)


def to_xarray(run: Run, names: Sequence[str] | None = None,
              steps: slice | Sequence[int] | None = None) -> xr.Dataset:
    """Checkpoints as an ``xarray.Dataset``: one variable per stored array (``names``,
    default all), each with dimensions ``("step", *array_dims)`` (the MLP's ``U`` is
    ``(step, neuron, residue)``, ``W`` is ``(step, residue, neuron)``) and coordinates
    ``step`` (the stored steps), ``neuron`` and ``residue`` (0, 1, ...). ``steps`` selects
    checkpoint indices as in :meth:`Run.read`. The run's config is the attribute
    ``config`` (JSON). The selected checkpoints are read into memory."""
    xr = require("xarray", "Run.to_xarray()")
    names = list(run.names if names is None else names)
    index = np.arange(len(run.steps))[steps if steps is not None else slice(None)]
    variables, sizes = {}, {}
    for name in names:
        values = run.read(name, steps)
        dims = ("step", *array_dims(run, name, values.shape[1:]))
        variables[name] = (dims, values)
        sizes |= dict(zip(dims, values.shape))
    coords = {"step": run.steps[index]}
    coords |= {dim: np.arange(sizes[dim]) for dim in ("neuron", "residue", "token")
               if dim in sizes}
    return xr.Dataset(variables, coords=coords,
                      attrs={"path": str(run.path), "config": run.config.to_json()})

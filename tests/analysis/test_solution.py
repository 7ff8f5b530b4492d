import numpy as np
import pytest
import torch

from interp.analysis.fit import fit_neurons
from interp.analysis.neurons import neuron_ipr
from interp.analysis.solution import analytic_network, solution_frequencies
from interp.analysis.spectra import ipr_bounds
from interp.data import all_pairs, apply_op
from interp.models import MLPConfig
from interp.models.mlp import MLP


def predict_all_pairs(net: dict[str, np.ndarray], p: int, op: str) -> tuple[np.ndarray, ...]:
    """Predictions of the paper's MLP loaded with ``net`` on every pair, and the targets."""
    model = MLP(p, MLPConfig(width=net["U"].shape[0]))
    model.load_arrays(net)
    pairs = all_pairs(op, p)
    with torch.no_grad():
        logits = model.eval()(torch.as_tensor(pairs[:, 0]), torch.as_tensor(pairs[:, 1]))
    return logits.argmax(-1).numpy(), apply_op(op, pairs[:, 0], pairs[:, 1], p)


@pytest.mark.parametrize("op", ["add", "sub"])
def test_analytic_network_classifies_every_pair(op: str) -> None:
    net = analytic_network(97, 500, seed=0, op=op)
    pred, target = predict_all_pairs(net, 97, op)
    np.testing.assert_array_equal(pred, target)


def test_analytic_network_shapes_amplitude_and_frequencies() -> None:
    p, n = 97, 500
    net = analytic_network(p, n, seed=3)
    assert net["U"].shape == (n, p) and net["V"].shape == (n, p) and net["W"].shape == (p, n)
    assert all(a.dtype == np.float32 for a in net.values())
    amplitude = (2 / n) ** (1 / 3)
    # Every neuron is a full-amplitude cosine: its sum of squares is A^2 p / 2.
    for name, axis in (("U", 1), ("V", 1), ("W", 0)):
        np.testing.assert_allclose((net[name].astype(np.float64) ** 2).sum(axis),
                                   amplitude**2 * p / 2, rtol=1e-5)
    sigma = solution_frequencies(p, n)
    counts = np.bincount(sigma, minlength=49)[1:]
    assert sigma.min() == 1 and sigma.max() == 48
    assert counts.min() == n // 48 and counts.max() == n // 48 + 1


def test_analytic_neurons_have_maximal_ipr_and_fit_the_solution() -> None:
    p, n = 97, 500
    net = analytic_network(p, n, seed=1)
    np.testing.assert_allclose(neuron_ipr(net, MLPConfig(width=len(net["U"])), p), ipr_bounds(p)[1],
                               atol=1e-6)
    fit = fit_neurons(net["U"], net["V"], net["W"])
    assert fit["consistent"].all()
    np.testing.assert_array_equal(fit["frequency"], solution_frequencies(p, n))
    np.testing.assert_allclose(fit["residual"], 0.0, atol=1e-5)
    np.testing.assert_allclose(fit["explained"], 1.0, atol=1e-6)


def test_analytic_network_is_seeded() -> None:
    a, b, c = (analytic_network(31, 40, seed=s) for s in (5, 5, 6))
    for k in "UVW":
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.allclose(a["U"], c["U"], atol=1e-3)


@pytest.mark.parametrize("kwargs, match", [
    ({"p": 2, "width": 10}, "p must be"),
    ({"p": 97, "width": 0}, "width must be"),
    ({"p": 97, "width": 10, "op": "mul"}, "op must be one of add, sub"),
])
def test_analytic_network_rejects_bad_input(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        analytic_network(**kwargs)

"""Fourier spectra and IPR: answers worked out by hand."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from interp.analysis.neurons import neuron_ipr, neuron_power, trajectory_ipr
from interp.analysis.spectra import IPR_CONVENTION, fourier_spectra, ipr, ipr_bounds, power_shares
from interp.models import MLPConfig
from interp.models.mlp import MLPFamily


def mlp(U, V, W):
    """Arrays of the MLP family and its config, as neuron_ipr takes them."""
    return {"U": U, "V": V, "W": W}, MLPConfig(width=np.shape(U)[-2]), np.shape(U)[-1]


def cosine(p: int, freq: int, phase: float = 0.0, amp: float = 1.0) -> np.ndarray:
    return amp * np.cos(2 * np.pi * freq * np.arange(p) / p + phase)


@pytest.mark.parametrize("p", [7, 11, 12, 97])
def test_pure_cosine_has_all_power_in_one_bin_and_ipr_one(p):
    rng = np.random.default_rng(p)
    for freq in range(1, p // 2 + 1):
        x = cosine(p, freq, rng.uniform(-np.pi, np.pi), rng.uniform(0.1, 3))
        mag, _ = fourier_spectra(x)
        assert mag.shape == (p // 2 + 1,)
        np.testing.assert_allclose(np.delete(mag, freq), 0.0, atol=1e-12)
        np.testing.assert_allclose(ipr(x), 1.0, rtol=1e-12)
        np.testing.assert_allclose(ipr(x, r=3), 1.0, rtol=1e-12)


@pytest.mark.parametrize("p", [97, 601])  # DFT-matrix path and FFT path (p > 512)
def test_power_paths_agree_with_numpy_rfft(p):
    x = np.random.default_rng(p).normal(size=(3, p))
    expected = np.abs(np.fft.rfft(x)) ** 2
    np.testing.assert_allclose(power_shares(x), expected / expected.sum(-1, keepdims=True),
                               rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(ipr(cosine(p, p // 3, 0.3)), 1.0, rtol=1e-12)


def test_cosine_phase_is_recovered():
    p, freq, phase = 11, 3, 0.7
    mag, ph = fourier_spectra(cosine(p, freq, phase, amp=2.0))
    np.testing.assert_allclose(mag[freq], 2.0 * p / 2, rtol=1e-12)
    np.testing.assert_allclose(ph[freq], phase, atol=1e-12)


@pytest.mark.parametrize("p", [7, 11, 12, 97])
def test_delta_and_flat_spectrum_hit_the_minimum(p):
    k = p // 2 + 1
    delta = np.zeros(p)
    delta[3 % p] = 5.0
    np.testing.assert_allclose(ipr(delta), 1 / k, rtol=1e-12)
    np.testing.assert_allclose(ipr(delta, r=3), k ** -2.0, rtol=1e-12)
    np.testing.assert_allclose(ipr_bounds(p), (1 / k, 1.0), rtol=1e-12)
    # any signal whose one-sided magnitudes are all equal, e.g. with random phases
    spec = np.exp(1j * np.random.default_rng(0).uniform(-np.pi, np.pi, k))
    spec[0] = 1.0
    if p % 2 == 0:
        spec[-1] = 1.0  # Nyquist bin of a real signal is real
    flat = np.fft.irfft(spec, n=p)
    np.testing.assert_allclose(fourier_spectra(flat)[0], 1.0, rtol=1e-12)
    np.testing.assert_allclose(ipr(flat), 1 / k, rtol=1e-12)


def test_random_vectors_lie_within_the_stated_range():
    x = np.random.default_rng(1).normal(size=(1000, 11))
    values = ipr(x)
    lo, hi = ipr_bounds(11)
    assert values.shape == (1000,)
    assert np.all(values >= lo - 1e-12) and np.all(values <= hi + 1e-12)


@pytest.mark.parametrize("p", [11, 12])
def test_parseval_for_the_one_sided_convention(p):
    # sum_i x_i^2 = (|X_0|^2 + 2 sum_{0<f<p/2} |X_f|^2 + |X_{p/2}|^2 [p even]) / p:
    # the interior bins stand for two conjugate frequencies, DC and Nyquist for one.
    x = np.random.default_rng(2).normal(size=(4, p))
    mag, _ = fourier_spectra(x)
    weight = np.full(p // 2 + 1, 2.0)
    weight[0] = 1.0
    if p % 2 == 0:
        weight[-1] = 1.0
    np.testing.assert_allclose((weight * mag**2).sum(-1) / p, (x**2).sum(-1), rtol=1e-12)


def test_zero_vector_has_ipr_zero_without_warnings():
    # pytest turns warnings into errors, so a 0/0 would fail here
    x = np.zeros((3, 11))
    x[1] = cosine(11, 2)
    np.testing.assert_allclose(ipr(x), [0.0, 1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(power_shares(np.zeros(11)), 0.0, atol=0)
    assert "zero" in IPR_CONVENTION and "p//2+1" in IPR_CONVENTION


def test_tiny_and_huge_weights_do_not_overflow():
    x = cosine(11, 4)
    np.testing.assert_allclose(ipr(np.stack([x * 1e-200, x * 1e200])), 1.0, rtol=1e-12)


def planted(p: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    freq = rng.integers(1, p // 2 + 1, size=n)
    phase = rng.uniform(-np.pi, np.pi, size=(3, n))
    U = np.stack([cosine(p, f, a) for f, a in zip(freq, phase[0], strict=True)])
    V = np.stack([cosine(p, f, a) for f, a in zip(freq, phase[1], strict=True)])
    W = np.stack([cosine(p, f, a) for f, a in zip(freq, phase[2], strict=True)], axis=1)
    return U, V, W


def test_neuron_vectors_and_ipr_of_an_analytic_network():
    U, V, W = planted(11, 6, seed=3)
    u, v, w = MLPFamily().fourier_view(*mlp(U, V, W)).vectors()
    np.testing.assert_array_equal(w, W.T)
    np.testing.assert_allclose(neuron_ipr(*mlp(U, V, W)), 1.0, rtol=1e-12)
    power = neuron_power(*mlp(U, V, W))
    assert power.shape == (6, 6)
    np.testing.assert_allclose(power.sum(-1), 1.0, rtol=1e-12)


def test_neuron_ipr_is_the_mean_of_three_and_broadcasts_over_steps():
    rng = np.random.default_rng(4)
    U, V, W = rng.normal(size=(5, 8, 11)), rng.normal(size=(5, 8, 11)), rng.normal(size=(5, 11, 8))
    batched = neuron_ipr(*mlp(U, V, W))
    assert batched.shape == (5, 8)
    for t in range(5):
        expected = [(ipr(U[t, k]) + ipr(V[t, k]) + ipr(W[t, :, k])) / 3 for k in range(8)]
        np.testing.assert_allclose(batched[t], expected, rtol=1e-12)


def test_shape_errors_name_the_argument():
    U = np.zeros((4, 7))
    with pytest.raises(ValueError, match=r"W must have shape \(7, 4\)"):
        neuron_ipr(*mlp(U, U, np.zeros((4, 7))))
    with pytest.raises(ValueError, match="V must have the shape of U"):
        neuron_ipr(*mlp(U, np.zeros((3, 7)), np.zeros((7, 4))))
    with pytest.raises(ValueError, match="r must be a number >= 1"):
        ipr(U, r=0.5)


class FakeRun:
    """Duck-typed stand-in for interp.store.Run (config, names, steps, iter_chunks) over
    in-memory arrays of an MLP."""

    def __init__(self, arrays: dict[str, np.ndarray], steps: np.ndarray) -> None:
        self.arrays, self.steps, self.names = arrays, steps, list(arrays)
        _, model, p = mlp(arrays["U"], arrays["V"], arrays["W"])
        self.config = SimpleNamespace(model=model, data=SimpleNamespace(p=p, op="add"))

    def iter_chunks(self, names, chunk=32, stride=1):
        idx = np.arange(0, len(self.steps), stride)
        for start in range(0, len(idx), chunk):
            block = idx[start:start + chunk]
            yield self.steps[block], {k: self.arrays[k][block] for k in names}


def test_trajectory_ipr_equals_a_loop_over_checkpoints():
    rng = np.random.default_rng(5)
    T, N, p = 10, 6, 11
    arrays = {"U": rng.normal(size=(T, N, p)), "V": rng.normal(size=(T, N, p)),
              "W": rng.normal(size=(T, p, N))}
    run = FakeRun(arrays, np.arange(T) * 10)
    steps, traj = trajectory_ipr(run, chunk=3)
    np.testing.assert_array_equal(steps, np.arange(T) * 10)
    loop = np.stack([neuron_ipr(*mlp(arrays["U"][t], arrays["V"][t], arrays["W"][t]))
                     for t in range(T)])
    np.testing.assert_allclose(traj, loop, rtol=1e-12)
    steps2, traj2 = trajectory_ipr(run, chunk=4, stride=2)
    np.testing.assert_array_equal(steps2, steps[::2])
    np.testing.assert_allclose(traj2, loop[::2], rtol=1e-12)


@pytest.mark.parametrize("scale", [1.0, 1e-20, 1e-39])
def test_trajectory_ipr_of_float32_checkpoints_matches_float64(scale):
    """Stored checkpoints are float32: the fast path transforms them in float32, to ~1e-6,
    also when weights have decayed to subnormal numbers (Forgetting)."""
    rng = np.random.default_rng(6)
    T, N, p = 4, 5, 13
    arrays = {"U": rng.normal(size=(T, N, p)), "V": rng.normal(size=(T, N, p)),
              "W": rng.normal(size=(T, p, N))}
    single = {k: (v * scale).astype(np.float32) for k, v in arrays.items()}
    _, traj = trajectory_ipr(FakeRun(single, np.arange(T)))
    want = np.stack([neuron_ipr(*mlp(*(single[k][t].astype(np.float64) for k in "UVW")))
                     for t in range(T)])
    assert np.isfinite(traj).all()
    np.testing.assert_allclose(traj, want, rtol=1e-5)

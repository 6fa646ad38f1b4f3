"""The ``miso`` model against independent computations (seed 001, eqs. (2)-(3))."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wbench.scenarios.miso import Miso


def make(nt=4, k=4, snr_db=20.0, seed=0, weights="equal"):
    sc = Miso()
    params = sc.resolve_params({"Nt": nt, "K": k, "snr_db": snr_db, "weights": weights})
    return sc.problem(params, sc.draw(params, np.random.default_rng(seed)))


def received_signal_rates(h_rows, V, sigma2):
    """Rates from the received-signal model y_k = h_k^H sum_j v_j s_j + n_k with unit-power Gaussian
    symbols: R_k = log2( E|y_k|^2 / E|y_k - h_k^H v_k s_k|^2 ), expectations written out as sums."""
    K = h_rows.shape[0]
    rates = []
    for k in range(K):
        h = h_rows[k]
        total = sigma2
        for j in range(K):
            total += abs(sum(np.conj(h[n]) * V[n, j] for n in range(len(h)))) ** 2
        desired = abs(sum(np.conj(h[n]) * V[n, k] for n in range(len(h)))) ** 2
        rates.append(np.log2(total / (total - desired)))
    return np.array(rates)


@pytest.mark.parametrize("seed", range(5))
def test_wsr_equals_received_signal_model(seed):
    rng = np.random.default_rng(100 + seed)
    prob = make(nt=3, k=4, snr_db=10, seed=seed, weights="1;2;0.5;3")
    V = rng.normal(size=(3, 4)) + 1j * rng.normal(size=(3, 4))
    expected = np.dot([1, 2, 0.5, 3], received_signal_rates(prob.H, V, prob.sigma2))
    assert prob.utility({"V": V}) == pytest.approx(expected, rel=1e-12)


def test_torch_loss_is_negative_utility_and_gradient_matches_finite_differences():
    prob = make(nt=4, k=3, snr_db=15, seed=3)
    rng = np.random.default_rng(0)
    V0 = rng.normal(size=(4, 3)) + 1j * rng.normal(size=(4, 3))
    V = torch.tensor(V0, dtype=torch.complex128, requires_grad=True)
    loss = prob.loss_torch({"V": V})
    assert loss.item() == pytest.approx(-prob.utility({"V": V0}), rel=1e-12)
    loss.backward()
    grad = V.grad.numpy()  # torch: d loss / d Re + i d loss / d Im (conjugate Wirtinger x 2)
    eps = 1e-6
    for idx in [(0, 0), (2, 1), (3, 2)]:
        for unit in (1, 1j):
            d = np.zeros_like(V0)
            d[idx] = unit * eps
            fd = (-prob.utility({"V": V0 + d}) + prob.utility({"V": V0 - d})) / (2 * eps)
            analytic = grad[idx].real if unit == 1 else grad[idx].imag
            assert analytic == pytest.approx(fd, rel=1e-5, abs=1e-8)


@pytest.mark.parametrize("method", ["mrt", "zf", "rzf", "random"])
def test_initial_points_use_full_power(method):
    prob = make(snr_db=17)
    V = prob.initial(method, np.random.default_rng(0))["V"]
    assert np.sum(np.abs(V) ** 2) == pytest.approx(prob.power, rel=1e-12)
    assert prob.feasibility({"V": V}).feasible


def test_zf_nulls_interference_and_is_offered_only_when_k_le_nt():
    prob = make(nt=4, k=3)
    V = prob.initial("zf")["V"]
    G = prob.H.conj() @ V
    assert np.max(np.abs(G - np.diag(np.diag(G)))) < 1e-10
    assert "zf" not in make(nt=2, k=3).init_methods


def test_rzf_tends_to_zf_at_high_snr_and_to_mrt_at_low_snr():
    def direction(V):
        return V / np.linalg.norm(V)

    hi, lo = make(snr_db=100), make(snr_db=-50)
    np.testing.assert_allclose(direction(hi.initial("rzf")["V"]), direction(hi.initial("zf")["V"]), atol=1e-6)
    np.testing.assert_allclose(direction(lo.initial("rzf")["V"]), direction(lo.initial("mrt")["V"]), atol=1e-4)


def test_feasibility_rejects_excess_power():
    prob = make()
    V = prob.initial("mrt")["V"] * np.sqrt(1 + 1e-3)
    f = prob.feasibility({"V": V})
    assert not f.feasible and f.violations["V"] == pytest.approx(1e-3, rel=1e-6)


def test_bad_weights_are_rejected():
    from wbench.params import ParamError

    with pytest.raises(ParamError, match="weights"):
        Miso().resolve_params({"K": 3, "weights": "1;2"})

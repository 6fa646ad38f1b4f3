"""Field-response channel (wbench.channels.field_response): oracles of the model, torch == NumPy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wbench.channels.field_response import (draw_field_response, effective_rows, effective_rows_torch,
                                            path_phase, ula_positions)


def _draw(seed: int = 0, n=2, k=3, i=4, l_=6, q=6, gain=None):
    rng = np.random.default_rng(seed)
    g = np.full((n, k), 2.0) if gain is None else gain
    return draw_field_response(rng, n, k, i, l_, q, g)


def test_reference_point_is_the_fixed_position_channel():
    d = _draw()
    # at r = 0 every receive phase is 0, f = 1: h^H = 1^T Sigma G, written here without the position code
    direct = np.einsum("nkqi->kni", d.sigma_g()).reshape(3, -1)
    np.testing.assert_allclose(effective_rows(d, np.zeros((3, 2))), direct, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(effective_rows(d), direct, rtol=1e-12, atol=1e-15)


def test_transmit_matrix_matches_eq2_elementwise():
    d = _draw(1, n=1, k=1, i=3, l_=2, q=2)
    G = d.transmit_matrix()[0, 0]
    tx = ula_positions(3)
    for li in range(2):
        for ii in range(3):
            th, ph = d.theta_t[0, 0, li], d.phi_t[0, 0, li]
            rho = tx[ii, 0] * np.cos(th) * np.sin(ph) + tx[ii, 1] * np.sin(th)
            assert G[li, ii] == pytest.approx(np.exp(2j * np.pi * rho), abs=1e-14)


def test_one_path_modulus_does_not_depend_on_position():
    d = _draw(2, l_=1, q=1)
    rng = np.random.default_rng(5)
    ref = np.abs(effective_rows(d))
    for _ in range(5):
        r = rng.uniform(-3, 3, (3, 2))
        np.testing.assert_allclose(np.abs(effective_rows(d, r)), ref, rtol=1e-12)
    # and with several paths it does (the model is not trivially position-free)
    d6 = _draw(2)
    assert not np.allclose(np.abs(effective_rows(d6, rng.uniform(-1, 1, (3, 2)))), np.abs(effective_rows(d6)))


@pytest.mark.parametrize("l_,q", [(6, 6), (3, 5)])
def test_average_power_gain_is_g(l_, q):
    """E|h_i|^2 = g over independent draws (diagonal Sigma for L = Q, i.i.d. otherwise), at a random position."""
    g = np.array([[2.0, 0.5]])
    rng = np.random.default_rng(11)
    samples = []
    for s in range(400):
        d = draw_field_response(rng, 1, 2, 4, l_, q, g)
        r = rng.uniform(-1, 1, (2, 2))
        samples.append(np.abs(effective_rows(d, r)) ** 2)  # (2 users, 4 antennas)
    p = np.stack(samples)  # (400, 2, 4)
    for k in range(2):
        x = p[:, k, :].mean(axis=1)  # one number per independent draw (antennas of a draw are correlated)
        se = x.std(ddof=1) / np.sqrt(x.size)
        assert abs(x.mean() - g[0, k]) < 4 * se


def test_torch_equals_numpy_and_is_differentiable():
    d = _draw(3)
    r = np.random.default_rng(0).uniform(-1, 1, (3, 2))
    rt = torch.tensor(r, requires_grad=True)
    At = effective_rows_torch(d, rt)
    np.testing.assert_allclose(At.detach().numpy(), effective_rows(d, r), rtol=1e-12, atol=1e-15)
    # d|A|^2/dr by autograd against central differences
    loss = (At.abs() ** 2).sum()
    (g,) = torch.autograd.grad(loss, rt)
    h = 1e-6
    fd = np.zeros_like(r)
    for idx in np.ndindex(r.shape):
        e = np.zeros_like(r)
        e[idx] = h
        fd[idx] = ((np.abs(effective_rows(d, r + e)) ** 2).sum() - (np.abs(effective_rows(d, r - e)) ** 2).sum()) / (2 * h)
    np.testing.assert_allclose(g.numpy(), fd, rtol=1e-6, atol=1e-9)


def test_path_phase_formula():
    pos = np.array([[1.0, 2.0]])
    th, ph = np.array([0.3]), np.array([-0.7])
    assert path_phase(pos, th, ph)[0, 0] == pytest.approx(np.cos(0.3) * np.sin(-0.7) + 2 * np.sin(0.3))


def test_bad_positions_shape():
    with pytest.raises(ValueError, match="positions"):
        effective_rows(_draw(), np.zeros((2, 2)))

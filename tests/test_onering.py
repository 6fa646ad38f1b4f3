"""The uniform circular array and the one-ring correlation of seed 000 (eq. (13)); SCENARIOS.md section 3.

Oracles: ``Delta = pi`` is the Bessel closed form ``J0(2 pi |r_i - r_j| / lambda)``; doubling the quadrature
nodes changes nothing beyond 1e-9; adjacent elements are ``lambda / 2`` apart; ``Delta -> 0`` tends to
``b b^H``; ``R`` is Hermitian PSD with ``tr R = Nt``; the clipped ``eigh`` root squares back to ``R``; the
CSIT draws have the covariances of eq. (14).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import j0

from wbench.channels import onering


@pytest.mark.parametrize("nt", [3, 8, 16, 100])
def test_adjacent_elements_are_half_a_wavelength_apart(nt):
    for lam in (1.0, 0.3):
        r = onering.uca_positions(nt, lam)
        d = np.linalg.norm(r - np.roll(r, -1, axis=0), axis=1)
        np.testing.assert_allclose(d, lam / 2, rtol=1e-12)
        np.testing.assert_allclose(np.linalg.norm(r, axis=1), onering.uca_radius(nt, lam), rtol=1e-12)


@pytest.mark.parametrize("nt", [4, 8, 32])
def test_full_spread_is_the_bessel_closed_form(nt):
    r = onering.uca_positions(nt)
    R = onering.one_ring_correlation(r, 0.3, np.pi)
    dist = np.linalg.norm(r[:, None, :] - r[None, :, :], axis=-1)
    np.testing.assert_allclose(R, j0(2 * np.pi * dist), atol=1e-10)


@pytest.mark.parametrize("nt,delta", [(8, np.pi / 36), (8, np.pi / 3), (32, np.pi / 8), (100, np.pi / 8)])
def test_quadrature_is_converged(nt, delta):
    r = onering.uca_positions(nt)
    n = onering.quadrature_nodes(r, delta)
    R = onering.one_ring_correlation(r, -0.7, delta)
    R2 = onering.one_ring_correlation(r, -0.7, delta, nodes=2 * n)
    assert np.max(np.abs(R - R2)) < 1e-9


def test_narrow_spread_tends_to_the_steering_outer_product():
    r = onering.uca_positions(8)
    b = onering.steering(r, 0.4)
    np.testing.assert_allclose(np.abs(b), 1.0)
    bb = np.outer(b, b.conj())
    errs = [np.max(np.abs(onering.one_ring_correlation(r, 0.4, d) - bb)) for d in (1e-1, 1e-2, 1e-3)]
    assert errs[0] > errs[1] > errs[2] and errs[2] < 1e-4
    np.testing.assert_allclose(onering.one_ring_correlation(r, 0.4, 0.0), bb, atol=1e-15)
    # the steering vector's sign convention is eq. (13)'s: the correlation's dominant direction is b(theta)
    lam, U = np.linalg.eigh(onering.one_ring_correlation(r, 0.4, np.pi / 36))
    assert abs(np.vdot(U[:, -1], b)) ** 2 / 8 > 0.99


@pytest.mark.parametrize("delta", [np.pi / 36, np.pi / 8, np.pi / 3, np.pi])
def test_correlation_is_hermitian_psd_with_trace_nt_and_its_root_squares_back(delta):
    nt = 16
    R = onering.one_ring_correlation(onering.uca_positions(nt), 1.1, delta)
    np.testing.assert_allclose(R, R.conj().T, atol=1e-15)
    assert np.trace(R).real == pytest.approx(nt, rel=1e-12)
    assert np.min(np.linalg.eigvalsh(R)) > -1e-10
    S = onering.psd_sqrt(R)
    np.testing.assert_allclose(S, S.conj().T, atol=1e-14)
    assert np.min(np.linalg.eigvalsh(S)) > -1e-10
    np.testing.assert_allclose(S @ S, R, atol=1e-10)


def test_csit_draws_have_the_covariances_of_the_model():
    """``E[h h^H] = R``, ``E[h h_hat^H] = sqrt(1 - se2) R``, and draws given the estimate have mean
    ``sqrt(1 - se2) h_hat`` and covariance ``se2 R`` (Monte Carlo, 4 standard errors)."""
    rng = np.random.default_rng(0)
    nt, n, se2 = 4, 40000, 0.3
    R = onering.one_ring_correlation(onering.uca_positions(nt), 0.2, np.pi / 4)
    S = onering.psd_sqrt(R)
    Rs = np.broadcast_to(S, (n, nt, nt))
    g_hat = onering.cn(rng, (n, nt))
    h_hat = onering.estimate(Rs, g_hat)
    h = onering.csit_draws(Rs, h_hat, se2, onering.cn(rng, (1, n, nt)))[0]
    tol = 4 * np.sqrt(2.0 / n) * np.max(np.abs(R))
    np.testing.assert_allclose(h.T @ h.conj() / n, R, atol=tol)
    np.testing.assert_allclose(h.T @ h_hat.conj() / n, np.sqrt(1 - se2) * R, atol=tol)
    one = h_hat[:1]
    draws = onering.csit_draws(S[None], one, se2, onering.cn(rng, (n, 1, nt)))[:, 0]
    np.testing.assert_allclose(draws.mean(0), np.sqrt(1 - se2) * one[0], atol=4 * np.sqrt(se2 * nt / n))
    d = draws - np.sqrt(1 - se2) * one[0]
    np.testing.assert_allclose(d.T @ d.conj() / n, se2 * R, atol=tol)


def test_bad_input_is_one_clear_error():
    r = onering.uca_positions(4)
    with pytest.raises(ValueError, match="Delta"):
        onering.one_ring_correlation(r, 0.0, 4.0)
    with pytest.raises(ValueError, match="se2"):
        onering.csit_draws(np.eye(2)[None], np.ones((1, 2)), 1.5, np.ones((1, 1, 2)))
    with pytest.raises(ValueError, match="element"):
        onering.uca_positions(0)

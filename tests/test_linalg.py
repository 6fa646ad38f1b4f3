"""``wbench.linalg``: the polar factor, the nearest symmetric unitary matrix, ``U U^T`` and the Takagi factor.

Oracles: unitarity and symmetry residuals at round-off (a few ulps per entry, scaled with ``n``), round trips
``takagi_factor(U U^T) (.)^T = U U^T``, spectra built with known (also clustered and repeated) eigenvalues,
nearest-point checks against random competitors, torch == NumPy, and a light import.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wbench import linalg
from wbench.channels.rayleigh import cn
from wbench.linalg import symmetric_unitary, takagi_factor


def random_unitary(rng: np.random.Generator, n: int) -> np.ndarray:
    q, r = np.linalg.qr(cn(rng, (n, n)))
    return q * (np.diag(r) / np.abs(np.diag(r)))


# -- U U^T and the Takagi factor ----------------------------------------------------------------------------------
def tol(n: int) -> float:
    """Frobenius round-off allowance for an n x n product: a few ulps per entry (n^2 entries, n terms each)."""
    return 20 * n * np.finfo(float).eps


@pytest.mark.parametrize("n", [1, 2, 5, 16, 64])
def test_u_ut_is_symmetric_unitary_and_takagi_factor_round_trips(n):
    rng = np.random.default_rng(n)
    for _ in range(3):
        U = random_unitary(rng, n)
        Phi = symmetric_unitary(U)
        assert np.array_equal(Phi, Phi.T)
        assert np.linalg.norm(Phi.conj().T @ Phi - np.eye(n)) <= tol(n)
        V = takagi_factor(Phi)
        assert np.linalg.norm(V.conj().T @ V - np.eye(n)) <= tol(n)
        assert np.linalg.norm(symmetric_unitary(V) - Phi) <= tol(n)
        assert np.linalg.norm(V @ V.T - Phi) <= tol(n)  # not only after symmetrising


def _sym_unitary_with_phases(rng, theta):
    Q, _ = np.linalg.qr(rng.standard_normal((len(theta), len(theta))))  # real orthogonal
    Phi = Q @ np.diag(np.exp(1j * np.asarray(theta))) @ Q.T
    return 0.5 * (Phi + Phi.T)


@pytest.mark.parametrize("case", ["identity", "minus-identity", "diagonal", "repeated", "collision", "cluster",
                                  "cluster-at-minus-one"])
def test_takagi_factor_of_degenerate_symmetric_unitaries(case):
    rng = np.random.default_rng(3)
    if case == "identity":
        Phi = np.eye(4, dtype=complex)
    elif case == "minus-identity":
        Phi = -np.eye(4, dtype=complex)
    elif case == "diagonal":
        Phi = np.diag(np.exp(2j * np.pi * rng.random(5)))
    elif case == "repeated":  # eigenvalues of multiplicity 3 and 2
        Phi = _sym_unitary_with_phases(rng, [0.3, 0.3, 0.3, 2.0, 2.0, np.pi])
    elif case == "collision":  # distinct phases a, b with cos a + c sin a = cos b + c sin b (one real mixing)
        c, a = 0.6180339887498949, 0.4
        Phi = _sym_unitary_with_phases(rng, [a, 2 * np.arctan(c) - a, 1.0, 2.5])
    elif case == "cluster":  # gaps from 1e-3 down to 1e-12: ill-determined eigenvectors, well-determined root
        Phi = _sym_unitary_with_phases(rng, [1.0, 1.0 + 1e-3, 1.0 + 1e-6, 1.0 + 1e-9, 1.0 + 1e-12, -2.0, 0.5])
    else:  # a cluster on both sides of -1, where the principal square root jumps
        Phi = _sym_unitary_with_phases(rng, [np.pi - 1e-9, -np.pi + 1e-9, np.pi - 1e-5, 0.1, 1.2])
    V = takagi_factor(Phi)
    n = len(Phi)
    assert np.linalg.norm(V.conj().T @ V - np.eye(n)) <= tol(n)
    assert np.linalg.norm(V @ V.T - Phi) <= tol(n)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 12), centres=st.integers(1, 3),
       spread=st.sampled_from([0.0, 1e-14, 1e-10, 1e-7, 1e-4, 1e-1]))
def test_takagi_factor_is_accurate_for_clustered_spectra(seed, n, centres, spread):
    """Eigenvalue phases in a few tight clusters (``spread`` wide): the factor stays exact to round-off, the
    accuracy does not degrade like ``eps / gap`` (a diagonalisation would)."""
    rng = np.random.default_rng(seed)
    centre = rng.uniform(-np.pi, np.pi, centres)
    theta = centre[rng.integers(0, centres, n)] + spread * rng.standard_normal(n)
    Q, _ = np.linalg.qr(cn(rng, (n, n)))  # a complex unitary: U0 = Q diag(e^{i theta/2}) is one Takagi factor
    U0 = Q * np.exp(0.5j * theta)
    Phi = symmetric_unitary(U0)
    V = takagi_factor(Phi)
    assert np.linalg.norm(V.conj().T @ V - np.eye(n)) <= tol(n)
    assert np.linalg.norm(V @ V.T - Phi) <= tol(n)


def test_takagi_factor_rejects_non_square_input():
    with pytest.raises(ValueError, match="square"):
        takagi_factor(np.ones((2, 3), complex))


# -- polar factor and the symmetric projection --------------------------------------------------------
def test_polar_is_the_nearest_unitary_and_works_on_stacks():
    rng = np.random.default_rng(1)
    x = cn(rng, (3, 4, 4))
    q = linalg.polar(x)
    for i in range(3):
        assert linalg.unitary_residual(q[i]) <= tol(4)
        np.testing.assert_allclose(q[i], linalg.polar(x[i]), atol=1e-14)
        best = np.linalg.norm(x[i] - q[i])
        assert all(np.linalg.norm(x[i] - random_unitary(rng, 4)) >= best for _ in range(200))


@pytest.mark.parametrize("n", [1, 3, 8])
def test_torch_versions_equal_the_numpy_ones(n):
    import torch

    rng = np.random.default_rng(n)
    x = cn(rng, (n, n))
    np.testing.assert_allclose(linalg.polar_torch(torch.tensor(x)).numpy(), linalg.polar(x), atol=1e-13)
    np.testing.assert_allclose(linalg.project_symmetric_unitary_torch(torch.tensor(x)).numpy(),
                               linalg.project_symmetric_unitary(x), atol=1e-13)
    singular = np.zeros((n, n), complex)  # every direction is a null direction: the identity completes it
    np.testing.assert_array_equal(linalg.project_symmetric_unitary(singular), np.eye(n))
    np.testing.assert_array_equal(linalg.project_symmetric_unitary_torch(torch.tensor(singular)).numpy(), np.eye(n))


def test_symmetric_projection_of_a_rank_one_matrix_is_symmetric_unitary_and_nearest():
    """``a a^T`` has an (n-1)-dimensional null space: the answer is not unique, but every answer keeps the
    range part ``a a^T / ||a||^2`` (times the phase) and is symmetric unitary; none is beaten."""
    rng = np.random.default_rng(2)
    a = cn(rng, 5)
    x = np.outer(a, a)
    p = linalg.project_symmetric_unitary(x)
    assert np.array_equal(p, p.T) and linalg.unitary_residual(p) <= tol(5)
    u = a.conj() / np.linalg.norm(a)  # the right singular vector of a a^T: p maps it to conj(u) = a / ||a||
    np.testing.assert_allclose(p @ u, a / np.linalg.norm(a), atol=1e-13)
    best = np.linalg.norm(x - p)
    for _ in range(200):
        v = random_unitary(rng, 5)
        assert np.linalg.norm(x - v @ v.T) >= best - 1e-12


def test_torch_symmetric_projection_gradient_matches_finite_differences_and_survives_singular_inputs():
    """``d/dt f(P(x + t d))`` for ``f = Re <W, P(.)>``: autograd through the torch projection against central
    differences of the NumPy one; at a singular input the backward pass runs and is finite (the null part
    is held fixed there, where the projection is not differentiable)."""
    import torch

    rng = np.random.default_rng(4)
    for n in (2, 5):
        x, d, w = cn(rng, (n, n)), cn(rng, (n, n)), cn(rng, (n, n))
        xt = torch.tensor(x, requires_grad=True)
        f = torch.real(torch.sum(torch.tensor(w).conj() * linalg.project_symmetric_unitary_torch(xt)))
        (g,) = torch.autograd.grad(f, xt)
        slope = float(np.real(np.vdot(g.numpy(), d)))  # real metric: <g, d> = Re tr(g^H d)
        h = 1e-6
        fd = (np.real(np.vdot(w, linalg.project_symmetric_unitary(x + h * d)))
              - np.real(np.vdot(w, linalg.project_symmetric_unitary(x - h * d)))) / (2 * h)
        assert slope == pytest.approx(fd, rel=1e-6, abs=1e-8)
    a = cn(rng, 4)
    xt = torch.tensor(np.outer(a, a), requires_grad=True)
    (g,) = torch.autograd.grad(torch.real(linalg.project_symmetric_unitary_torch(xt).sum()), xt)
    assert torch.isfinite(g).all()


def test_importing_linalg_loads_neither_scipy_nor_torch():
    code = "import sys, wbench.linalg; sys.exit(1 if {'torch', 'scipy'} & set(sys.modules) else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0

"""Constraint sets: projections land in the set, are idempotent, and are nearest points where known."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wbench.problem import BlockUnitary, Box, PowerBall, Simplex, Unitary, UnitModulus


def _cn(rng, shape):
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


SETS = [
    (PowerBall(3.0), (4, 3)),
    (UnitModulus(), (6,)),
    (Unitary(), (5, 5)),
    (Unitary(symmetric=True), (5, 5)),
    (BlockUnitary(2), (6, 6)),
    (BlockUnitary(3, symmetric=True), (6, 6)),
]


@pytest.mark.parametrize("cset,shape", SETS, ids=lambda s: getattr(s, "describe", lambda: str(s))())
@given(seed=st.integers(0, 2**31 - 1))
@settings(max_examples=25, deadline=None)
def test_projection_is_feasible_and_idempotent(cset, shape, seed):
    x = _cn(np.random.default_rng(seed), shape) * 3
    p = cset.project(x)
    assert cset.violation(p) <= cset.tol
    np.testing.assert_allclose(cset.project(p), p, atol=1e-9)


def test_unitary_violation_detects_off_manifold_points():
    q = Unitary().project(_cn(np.random.default_rng(0), (4, 4)))
    assert Unitary().violation(q) <= 1e-12
    assert Unitary().violation(1.01 * q) > Unitary().tol
    # a unitary matrix that is not symmetric fails the reciprocal set
    assert Unitary(symmetric=True).violation(q) > 1e-3


def test_polar_projection_is_nearest_unitary():
    """Polar factor minimises ||X - Q||_F over unitary Q: no random unitary does better."""
    rng = np.random.default_rng(1)
    x = _cn(rng, (4, 4))
    q = Unitary().project(x)
    best = np.linalg.norm(x - q)
    for _ in range(200):
        r = Unitary().project(_cn(rng, (4, 4)))
        assert np.linalg.norm(x - r) >= best - 1e-12


def _unitary_err(q: np.ndarray) -> float:
    return float(np.linalg.norm(q.conj().T @ q - np.eye(q.shape[0])))


def _random_symmetric_unitary(rng, n: int) -> np.ndarray:
    q, r = np.linalg.qr(_cn(rng, (n, n)))
    u = q * (np.diag(r) / np.abs(np.diag(r)))
    return u @ u.T


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 24),
       rank_drop=st.integers(0, 3), tiny=st.sampled_from([0.0, 1e-15, 1e-12, 1e-8, 1e-4]))
def test_symmetric_unitary_projection_is_exactly_symmetric_and_unitary_to_round_off(seed, n, rank_drop, tiny):
    """Also for (nearly) singular inputs, where the SVD's polar factor ``U V^H`` pairs arbitrary null-space bases
    and is far from symmetric (symmetrising it then left a point off the unitary group)."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(_cn(rng, (n, n)))
    sv = rng.uniform(0.1, 3.0, n)
    sv[: min(rank_drop, n)] = tiny
    x = q @ np.diag(sv) @ q.T + (_cn(rng, (n, n)) - _cn(rng, (n, n)).T) * rng.uniform(0, 1)  # + a skew part
    p = Unitary(symmetric=True).project(x)
    assert np.array_equal(p, p.T)
    assert _unitary_err(p) <= 20 * n * np.finfo(float).eps


def test_symmetric_unitary_projection_is_the_nearest_and_fixes_the_set():
    """``||x - Y||`` over symmetric unitary ``Y``: no random one, nor a symmetric unitary near the answer, does better;
    a symmetric unitary input is returned unchanged up to round-off; only the symmetric part of ``x`` matters."""
    rng = np.random.default_rng(5)
    sym = Unitary(symmetric=True)
    for n in (2, 4, 7):
        x = _cn(rng, (n, n))
        p = sym.project(x)
        best = np.linalg.norm(x - p)
        for _ in range(100):
            assert np.linalg.norm(x - _random_symmetric_unitary(rng, n)) >= best - 1e-12
            y = sym.project(p + 1e-3 * _cn(rng, (n, n)))
            assert np.linalg.norm(x - y) >= best - 1e-12
        np.testing.assert_allclose(sym.project(0.5 * (x + x.T)), p, atol=1e-12)
        phi = _random_symmetric_unitary(rng, n)
        assert np.linalg.norm(sym.project(phi) - phi) <= 20 * n * np.finfo(float).eps


def test_power_ball_scales_only_outside():
    x = np.ones((2, 2), complex)  # power 4
    np.testing.assert_allclose(PowerBall(8.0).project(x), x)
    np.testing.assert_allclose(np.sum(np.abs(PowerBall(1.0).project(x)) ** 2), 1.0)
    assert PowerBall(1.0).violation(x) == pytest.approx(3.0)


def test_simplex_projection_matches_quadratic_program():
    from scipy.optimize import minimize

    rng = np.random.default_rng(2)
    for _ in range(5):
        x = rng.normal(size=5) * 2
        s = Simplex(1.0, equality=True)
        p = s.project(x)
        res = minimize(lambda y: np.sum((y - x) ** 2), np.full(5, 0.2), method="SLSQP",
                       bounds=[(0, None)] * 5, constraints=[{"type": "eq", "fun": lambda y: y.sum() - 1}])
        np.testing.assert_allclose(p, res.x, atol=1e-5)


def test_box_and_unit_modulus():
    assert Box(0, 1).violation(np.array([0.5, 1.2, -0.1])) == pytest.approx(0.2)
    z = UnitModulus().project(np.array([2 + 0j, 0j, -3j]))
    np.testing.assert_allclose(np.abs(z), 1.0)


@pytest.mark.parametrize("cset,shape", SETS + [(Box(-1.0, 2.0), (7,))],
                         ids=lambda s: getattr(s, "describe", lambda: str(s))())
def test_torch_projection_equals_numpy_projection(cset, shape):
    import torch

    rng = np.random.default_rng(3)
    x = _cn(rng, shape) * 2 if not isinstance(cset, Box) else rng.normal(size=shape) * 3
    np.testing.assert_allclose(cset.project_torch(torch.tensor(x)).numpy(), cset.project(x), atol=1e-12)

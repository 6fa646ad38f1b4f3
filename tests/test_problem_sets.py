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

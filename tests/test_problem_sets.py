"""Constraint sets: projections land in the set, are idempotent, and are nearest points where known; the
joint constraint of a hybrid precoder, the scenario-constraint penalty and variable roles."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wbench.problem import (BlockPowerBall, BlockUnitary, Box, PowerBall, Problem, ProductPower, Simplex,
                            Unconstrained, Unitary, UnitModulus, Variable)


def _cn(rng, shape):
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


SETS = [
    (PowerBall(3.0), (4, 3)),
    (UnitModulus(), (6,)),
    (Unitary(), (5, 5)),
    (Unitary(symmetric=True), (5, 5)),
    (BlockUnitary(2), (6, 6)),
    (BlockUnitary(3, symmetric=True), (6, 6)),
    (BlockPowerBall((1.0, 3.0), (2, 2)), (4, 3)),
    (BlockPowerBall((0.5, 2.0, 1.0), (1, 1, 2), axis=1), (3, 4)),
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


# -- per-block power budgets -----------------------------------------------------------------------
def _block_case(data):
    """A random BlockPowerBall (2-4 blocks along axis 0 or 1) and a random complex point of its shape."""
    nblocks = data.draw(st.integers(1, 4))
    sizes = tuple(data.draw(st.integers(1, 3)) for _ in range(nblocks))
    budgets = tuple(data.draw(st.floats(0.1, 10.0)) for _ in range(nblocks))
    axis = data.draw(st.sampled_from([0, 1]))
    other = data.draw(st.integers(1, 3))
    shape = (sum(sizes), other) if axis == 0 else (other, sum(sizes))
    seed = data.draw(st.integers(0, 2**31 - 1))
    scale = data.draw(st.floats(0.05, 5.0))
    x = _cn(np.random.default_rng(seed), shape) * scale
    return BlockPowerBall(budgets, sizes, axis), x, seed


def _blocks_of(cset, x):
    """The blocks of ``x`` as a list of arrays (written here, not taken from the set)."""
    edges = np.cumsum((0,) + cset.sizes)
    take = (lambda a, b: x[a:b]) if cset.axis == 0 else (lambda a, b: x[:, a:b])
    return [take(a, b) for a, b in zip(edges[:-1], edges[1:])]


@given(data=st.data())
@settings(max_examples=60, deadline=None)
def test_block_projection_is_block_wise_scaling_and_the_nearest_point(data):
    cset, x, seed = _block_case(data)
    p = cset.project(x)
    # block-wise scaling: every block of p is its block of x times min(1, sqrt(P_b / ||x_b||^2))
    for xb, pb, budget in zip(_blocks_of(cset, x), _blocks_of(cset, p), cset.budgets):
        power = np.sum(np.abs(xb) ** 2)
        np.testing.assert_allclose(pb, xb * min(1.0, np.sqrt(budget / power)), rtol=1e-12, atol=1e-15)
        # KKT of min ||y - x||^2 over the ball: x_b = (1 + lam_b) p_b, lam_b >= 0, lam_b > 0 only on the sphere
        lam = np.sqrt(power / max(np.sum(np.abs(pb) ** 2), 1e-300)) - 1.0
        assert lam >= -1e-12
        assert lam <= 1e-12 or abs(np.sum(np.abs(pb) ** 2) / budget - 1.0) <= 1e-12
    assert cset.violation(p) <= cset.tol
    np.testing.assert_allclose(cset.project(p), p, atol=1e-12)
    # nearest point: no feasible point (random ones, and p moved inside/around) is closer to x
    rng = np.random.default_rng(seed + 1)
    best = np.linalg.norm(x - p)
    for _ in range(40):
        y = cset.project(_cn(rng, x.shape) * rng.uniform(0.01, 3.0))
        assert np.linalg.norm(x - y) >= best - 1e-12
        y = cset.project(p + 0.05 * _cn(rng, x.shape))
        assert np.linalg.norm(x - y) >= best - 1e-12


def test_block_violation_measures_the_worst_block():
    c = BlockPowerBall((1.0, 4.0), (1, 2))
    x = np.array([1.5, 1.0, 1.0])  # block powers 2.25 (budget 1) and 2 (budget 4)
    assert c.violation(x) == pytest.approx(1.25)
    np.testing.assert_allclose(c.block_powers(x), [2.25, 2.0])
    assert c.violation(np.array([1.0, 2.0, 0.0])) == 0.0  # both blocks exactly on their spheres
    with pytest.raises(ValueError):
        BlockPowerBall((1.0, 2.0), (3,))
    with pytest.raises(ValueError):
        c.project(np.ones(4))  # the blocks cover 3 entries
    full = c.full_power(np.array([0.1, 0.2, 0.0]))
    np.testing.assert_allclose(c.block_powers(full), [1.0, 4.0])


def _fd_check(f, x, rng, eps=1e-6, rtol=1e-6):
    """Torch gradient of the real function ``f`` vs central differences along random directions."""
    import torch

    xt = torch.tensor(x, requires_grad=True)
    (g,) = torch.autograd.grad(f(xt), [xt])
    g = g.numpy()
    for _ in range(3):
        d = rng.standard_normal(x.shape) + (1j * rng.standard_normal(x.shape) if np.iscomplexobj(x) else 0)
        with torch.no_grad():
            fd = (float(f(torch.tensor(x + eps * d))) - float(f(torch.tensor(x - eps * d)))) / (2 * eps)
        assert float(np.real(np.vdot(g, d))) == pytest.approx(fd, rel=rtol, abs=1e-9)
    return g


def test_block_penalty_is_zero_on_the_set_and_its_gradient_matches_finite_differences():
    import torch

    rng = np.random.default_rng(4)
    c = BlockPowerBall((1.0, 2.0, 0.5), (2, 1, 2), axis=0)
    x = _cn(rng, (5, 3))
    assert float(c.penalty_torch(torch.tensor(c.project(x)))) <= 1e-28  # zero up to round-off on the set
    powers = c.block_powers(x)
    expected = np.sum(np.maximum(powers / np.array(c.budgets) - 1.0, 0.0) ** 2)
    assert float(c.penalty_torch(torch.tensor(x))) == pytest.approx(expected, rel=1e-12)
    assert expected > 0
    _fd_check(c.penalty_torch, x, rng)


# -- the hybrid precoder's power: a joint constraint -------------------------------------------------
def test_product_power_rescales_the_digital_part_only():
    import torch

    rng = np.random.default_rng(5)
    j = ProductPower("F_RF", "F_BB", 3.0)
    x = {"F_RF": UnitModulus().project(_cn(rng, (6, 2))), "F_BB": _cn(rng, (2, 3)) * 4}
    y = j.project(x)
    np.testing.assert_array_equal(y["F_RF"], x["F_RF"])
    assert np.sum(np.abs(y["F_RF"] @ y["F_BB"]) ** 2) == pytest.approx(3.0, rel=1e-12)
    ratio = y["F_BB"] / x["F_BB"]
    np.testing.assert_allclose(ratio, ratio.flat[0], rtol=1e-12)  # a common real scale
    assert abs(ratio.flat[0].imag) < 1e-15 and 0 < ratio.flat[0].real < 1
    assert j.violation(x) == pytest.approx(np.sum(np.abs(x["F_RF"] @ x["F_BB"]) ** 2) / 3.0 - 1.0)
    assert j.violation(y) <= j.tol
    small = {"F_RF": x["F_RF"], "F_BB": y["F_BB"] * 0.5}
    assert j.project(small)["F_BB"] is small["F_BB"]  # inside: unchanged
    assert j.full_power(small)["F_BB"] == pytest.approx(y["F_BB"])  # full=True: onto the boundary
    yt = j.project_torch({k: torch.tensor(v) for k, v in x.items()})
    np.testing.assert_allclose(yt["F_BB"].numpy(), y["F_BB"], rtol=1e-12)
    # penalty relu(1 - power / P)^... = max(0, power / P - 1)^2 and its gradient in F_BB (F_RF fixed)
    assert float(j.penalty_torch({k: torch.tensor(v) for k, v in y.items()})) == pytest.approx(0.0, abs=1e-24)
    F_RF = torch.tensor(x["F_RF"])
    _fd_check(lambda b: j.penalty_torch({"F_RF": F_RF, "F_BB": b}), x["F_BB"], rng)
    _fd_check(lambda a: j.penalty_torch({"F_RF": a, "F_BB": torch.tensor(x["F_BB"])}), x["F_RF"], rng)


def test_problem_project_and_feasibility_apply_the_joint_constraint():
    from tests.toy_sets_plugin import toy_sets_problem

    prob = toy_sets_problem(0, case="product")
    rng = np.random.default_rng(6)
    x = {"F_RF": _cn(rng, (2, 2)), "F_BB": _cn(rng, (2, 1)) * 10}
    feas = prob.feasibility(x)
    assert not feas.feasible and feas.violations["power(F_RF F_BB)"] > 1 and feas.violations["F_RF"] > 1e-3
    y = prob.project(x)
    assert prob.feasibility(y).feasible
    np.testing.assert_allclose(np.abs(y["F_RF"]), 1.0)
    start = prob.random_feasible(rng)
    assert np.sum(np.abs(start["F_RF"] @ start["F_BB"]) ** 2) == pytest.approx(prob.power, rel=1e-12)


# -- scenario constraints in torch and the one penalised loss ----------------------------------------
def test_penalised_loss_adds_the_squared_shortfall_of_the_scenario_constraints():
    import torch

    from tests.toy_sets_plugin import toy_sets_problem

    prob = toy_sets_problem(0, case="qos")
    rng = np.random.default_rng(7)
    for _ in range(5):
        a = rng.standard_normal(3)
        x = {"a": a}
        c = prob.constraints(x)["qos"]
        ct = prob.constraints_torch({"a": torch.tensor(a)})["qos"].numpy()
        np.testing.assert_allclose(ct, c, rtol=1e-12, atol=1e-14)
        # the penalised loss, against the NumPy constraint and utility
        expected = -prob.utility(x) + 250.0 * np.sum(np.maximum(-c, 0.0) ** 2)
        got = float(prob.penalised_loss_torch({"a": torch.tensor(a)}, 250.0))
        assert got == pytest.approx(expected, rel=1e-12)
        default = float(prob.penalised_loss_torch({"a": torch.tensor(a)}))
        assert default == pytest.approx(-prob.utility(x) + prob.constraint_penalty * np.sum(np.maximum(-c, 0) ** 2))
    short = np.array([0.1, 1.0, 1.0])  # the weak channel below its floor: the penalty is active
    assert prob.constraints({"a": short})["qos"][0] < -0.1
    _fd_check(lambda t: prob.penalised_loss_torch({"a": t}, 50.0), short, rng, rtol=1e-6)
    _fd_check(lambda t: prob.constraint_penalty_torch({"a": t}), short, rng, rtol=1e-6)


def test_problems_without_constraints_keep_their_loss_unchanged():
    import torch

    from tests.helpers import miso_problem

    prob = miso_problem(3, 2, 10.0, 0, 0)
    x = {k: torch.tensor(v) for k, v in prob.initial("mrt").items()}
    assert not prob.has_constraints and prob.constraints_torch(x) == {}
    assert float(prob.penalised_loss_torch(x, 1e6)) == float(prob.loss_torch(x))


def test_feasibility_uses_the_problems_constraint_tolerance():
    from tests.toy_sets_plugin import toy_sets_problem

    prob = toy_sets_problem(0, case="qos")
    a = np.sqrt(prob.qos_powers())
    a[0] *= 1 - 2e-4  # a shortfall of about 3e-4 bit/s/Hz: within the toy's 1e-3, not within 1e-6
    feas = prob.feasibility({"a": a})
    assert feas.tolerances["qos"] == 1e-3 and 1e-4 < feas.violations["qos"] < 1e-3 and feas.feasible
    prob.constraint_tol = 1e-6
    assert not prob.feasibility({"a": a}).feasible


# -- roles ---------------------------------------------------------------------------------------------
def test_roles_are_a_closed_vocabulary_and_resolve_to_names():
    from tests.helpers import bdris_problem

    with pytest.raises(ValueError, match="unknown variable role"):
        Variable((2,), PowerBall(1.0), role="beamformer")
    prob = bdris_problem(0, B=4)
    assert prob.role_variable("precoder") == "P" and prob.role_variable("scattering") == "Phi"
    assert prob.role_variable("positions") is None
    assert prob.resolve_names("precoder") == ("P",) and prob.resolve_names("Phi") == ("Phi",)
    with pytest.raises(ValueError, match="roles: precoder, scattering"):
        prob.resolve_names("split")
    two = Problem({"a": Variable((1,), PowerBall(1.0), role="power"),
                   "b": Variable((1,), PowerBall(1.0), role="power")})
    assert two.names_with_role("power") == ("a", "b") and two.resolve_names("power") == ("a", "b")
    with pytest.raises(ValueError, match="several variables"):
        two.role_variable("power")


def test_simplex_and_unconstrained_torch_projections():
    import torch

    rng = np.random.default_rng(8)
    for cset in (Simplex(1.5), Simplex(1.0, equality=True)):
        for scale in (0.1, 3.0):
            x = rng.normal(size=6) * scale
            np.testing.assert_allclose(cset.project_torch(torch.tensor(x)).numpy(), cset.project(x), atol=1e-12)
    x = _cn(rng, (3, 2))
    assert Unconstrained().project(x) is x and Unconstrained().violation(x) == 0.0
    assert Unconstrained().violation(np.array([np.nan])) == float("inf")

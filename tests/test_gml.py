"""``gml`` (seed 004, Algorithm 1): the returned point lies on every set after its projections, satisfies the
common-rate split exactly, is the best of its iterates, and the run is reproducible."""

from __future__ import annotations

import numpy as np
import pytest

from wbench.channels.channelset import realisation_rng
from wbench.registry import get_registry
from wbench.solver import RunContext

TINY = {"N": 2, "I": 2, "K": 2, "L": 3, "Q": 3}


def problem(index: int = 0, **over):
    sc = get_registry().scenario("comp-rsma-ma")
    p = sc.resolve_params({**TINY, **over})
    return sc.problem(p, sc.draw(p, realisation_rng(5, sc.name, index)))


def run(prob, seed=0, **opts):
    ctx = RunContext(np.random.default_rng(seed))
    return get_registry().solver("gml").solve(prob, {"iters": 40, **opts}, ctx), ctx


@pytest.mark.parametrize("over", [{}, {"scheme": "sdma"}, {"antennas": "fpa", "sinr": "paper"}])
def test_output_is_on_the_sets_and_the_split_is_exact(over):
    prob = problem(0, R_th=0.0, **over)
    sol, _ = run(prob)
    feas = prob.feasibility(sol.x)
    assert feas.feasible, feas.violations  # R_th = 0: only the projected sets and the split remain
    powers = prob.variables["P"].constraint.block_powers(sol.x["P"])
    assert np.all(powers <= prob.power * (1 + 1e-12))
    if "c" in sol.x:
        r_c, _ = prob.rate_parts(sol.x)
        assert np.all(sol.x["c"] >= 0) and sol.x["c"].sum() <= r_c.min() + 1e-12
    if "r" in sol.x:
        assert np.all(np.abs(sol.x["r"]) <= prob.region / 2)
    # the best iterate is kept: never below the (feasible, R_th = 0) start, drawn as the solver draws it
    rng = np.random.default_rng(0)
    rng.integers(0, 2**63 - 1)  # the network seed comes first
    start = prob.initial("paper", rng)
    assert prob.utility(sol.x) >= prob.utility(start) - 1e-12


def test_same_seed_same_answer_and_learning_happens():
    prob = problem(1, R_th=0.0)
    a, _ = run(prob, seed=3)
    b, _ = run(prob, seed=3)
    np.testing.assert_array_equal(a.x["P"], b.x["P"])
    first = a.info["utility_per_iteration"][0]
    assert prob.utility(a.x) > first  # the networks improve on their first output


def test_declines_other_scenarios():
    sc = get_registry().scenario("miso")
    p = sc.resolve_params({})
    miso = sc.problem(p, sc.draw(p, realisation_rng(0, "miso", 0)))
    assert get_registry().solver("gml").declines(miso, {}) is not None

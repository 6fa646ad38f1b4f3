"""``sca`` (successive convex approximation by cvxpy): monotone rounds, feasible answers on ``comp-rsma-ma``,
and on ``miso`` the same local optima as WMMSE."""

from __future__ import annotations

import numpy as np
import pytest

from wbench.channels.channelset import realisation_rng
from wbench.registry import get_registry
from wbench.solver import RunContext

TINY = {"N": 2, "I": 2, "K": 2, "L": 3, "Q": 3}


def problem(name: str, index: int = 0, **over):
    sc = get_registry().scenario(name)
    p = sc.resolve_params(over)
    return sc.problem(p, sc.draw(p, realisation_rng(3, name, index)))


def run(prob, **opts):
    return get_registry().solver("sca").solve(prob, opts, RunContext(np.random.default_rng(0)))


@pytest.mark.parametrize("over", [
    {"scheme": "rsma"},
    {"scheme": "sdma"},
    {"scheme": "rsma", "antennas": "fpa"},
    {"scheme": "rsma", "sinr": "paper"},
])
def test_rounds_are_monotone_and_the_answer_feasible(over):
    prob = problem("comp-rsma-ma", 1, R_th=0.3, **TINY, **over)
    sol = run(prob, max_iter=15)
    merit = np.array(sol.info["merit"])
    assert merit.size >= 3
    assert np.all(np.diff(merit) >= -1e-9 * np.maximum(1.0, np.abs(merit[:-1])))
    assert merit[-1] > merit[0]
    feas = prob.feasibility(sol.x)
    assert feas.feasible, feas.violations
    # the merit of the answer is its utility once feasible (no penalty left)
    assert prob.utility(sol.x) == pytest.approx(merit[-1], rel=1e-12)


def test_movable_antennas_do_not_lose_to_fixed_ones_from_the_same_start():
    """Position steps are only taken when they raise the objective; rounds from r = 0 with the same
    precoder start, so the ma run ends at least where its first fixed-position round would."""
    ma = problem("comp-rsma-ma", 2, R_th=0.0, **TINY)
    fpa = problem("comp-rsma-ma", 2, R_th=0.0, antennas="fpa", **TINY)
    a = run(ma, max_iter=1, pos_steps=0)
    b = run(fpa, max_iter=1)
    assert ma.utility(a.x) == pytest.approx(fpa.utility(b.x), rel=1e-6)  # r = 0 and no steps: fpa itself
    c = run(ma, max_iter=1, pos_steps=5)
    assert ma.utility(c.x) >= ma.utility(a.x) - 1e-9
    assert not np.all(c.x["r"] == 0.0)


@pytest.mark.parametrize("nt,k,snr,index", [(2, 2, 10.0, 0), (4, 3, 20.0, 1), (3, 3, 0.0, 2)])
def test_miso_agrees_with_wmmse(nt, k, snr, index):
    """Both are monotone ascent methods to stationary points; on these small instances they end at the same
    sum rate (to 1e-6 relative), which checks the SCA model and its convergence against an independent
    method."""
    prob = problem("miso", index, Nt=nt, K=k, snr_db=snr)
    a = run(prob, tol=1e-8, max_iter=300)
    b = get_registry().solver("wmmse").solve(prob, {"max_iter": 3000, "tol": 1e-11},
                                             RunContext(np.random.default_rng(0)))
    assert prob.feasibility(a.x).feasible
    assert prob.utility(a.x) == pytest.approx(prob.utility(b.x), rel=1e-6)


def test_declines_problems_it_does_not_model():
    sca = get_registry().solver("sca")
    bd = problem("bdris", 0, Nt=2, K=2, B=4)
    assert sca.declines(bd, {}) is not None
    assert sca.declines(problem("miso", 0), {}) is None


OVERLOADED = {"N": 2, "I": 1, "K": 3, "L": 3, "Q": 3, "antennas": "fpa", "R_th": 0.0, "pt_dbm": 37.0}


def test_a_zero_common_column_gets_no_power_without_the_seed():
    """At ``p_c = 0`` the tangent of ``|a p_c|^2 / delta`` is zero: unseeded, SCA from the SDMA solution can
    never give the common stream a rate (the reason for ``common_seed``)."""
    prob = problem("comp-rsma-ma", 1, **OVERLOADED)
    sol = run(prob, warm="sdma", common_seed=0.0)
    r_c, _ = prob.rate_parts(sol.x)
    assert not sol.info["seeded"]
    assert np.all(r_c < 1e-6) and np.all(sol.x["c"] < 1e-6)
    assert prob.utility(sol.x) == pytest.approx(sol.info["warm"]["utility"], rel=1e-3)


@pytest.mark.parametrize("index", [0, 1])
def test_rsma_warm_started_from_sdma_never_ends_below_it_and_can_end_above(index):
    """Overloaded (``K = 3`` users, ``N I = 2`` antennas) at 37 dBm, where rate splitting helps: the
    warm-started run is never below its ``sdma`` stage (by construction), and on channel 1 (where SCA from the
    ``paper`` start reaches a point with a common stream) it ends strictly above it, with a common rate."""
    prob = problem("comp-rsma-ma", index, **OVERLOADED)
    sol = run(prob, warm="sdma")
    assert sol.info["seeded"]
    assert prob.feasibility(sol.x).feasible
    assert prob.utility(sol.x) >= sol.info["warm"]["utility"] - 1e-9
    if index == 1:
        assert prob.utility(sol.x) > 1.03 * sol.info["warm"]["utility"]
        assert sol.x["c"].sum() > 0.05


def test_warm_names_the_problems_stage():
    prob = problem("comp-rsma-ma", 0, **OVERLOADED)
    with pytest.raises(ValueError, match="warm"):
        run(prob, warm="fpa")

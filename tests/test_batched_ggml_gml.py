"""Batched ``ggml`` (seed 002) and ``gml`` (seed 004): ``solve_batch`` == ``solve`` per realisation, bitwise.

Oracle: the unbatched path, realisation by realisation, with the same seeds (float64, one torch thread as the
harness runs them). On the CPU the batched paths perform every floating-point operation of the unbatched ones
(per-realisation matrix products, networks and the few steps whose stacked form would round differently), so
final variables, traces and checkpoints are asserted equal to the last bit; the brief's tolerance is 1e-6
relative. Also: a batch of one, mixed shapes, a realisation with a non-finite channel (it does not disturb the
others), and the harness's batched path against its per-run path.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.helpers import compare, stored
from wbench.channels.channelset import realisation_rng
from wbench.registry import get_registry
from wbench.scenarios.hybrid import Hybrid
from wbench.solver import RunContext
from wbench.solvers.gradient.ggml import Ggml
from wbench.solvers.gradient.gml import Gml

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def hybrid_stack(n: int = 3, **given) -> list:
    sc = Hybrid()
    params = sc.resolve_params({"Nt": 8, "N_RF": 3, "K": 3, **given})
    return [sc.problems(params, sc.draw(params, realisation_rng(0, "hybrid", i)))[0] for i in range(n)]


def ctxs(n: int) -> list[RunContext]:
    return [RunContext(np.random.default_rng(100 + i)) for i in range(n)]


def assert_same_vars(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def assert_batch_equals_loop(solver, problems, options, trace_key: str) -> list:
    single_ctx = ctxs(len(problems))
    single = [solver.solve(p, options, c) for p, c in zip(problems, single_ctx)]
    batch_ctx = ctxs(len(problems))
    batch = solver.solve_batch(problems, options, batch_ctx)
    assert len(batch) == len(problems)
    for a, b, ca, cb in zip(single, batch, single_ctx, batch_ctx):
        assert_same_vars(a.x, b.x)
        assert b.iterations == a.iterations
        np.testing.assert_array_equal(b.info[trace_key], a.info[trace_key])  # the whole trace (NaN == NaN)
        assert [it for _, it, _ in cb.checkpoints] == [it for _, it, _ in ca.checkpoints]
        for (_, _, xa), (_, _, xb) in zip(ca.checkpoints, cb.checkpoints):
            assert_same_vars(xa, xb)
        assert b.info["batch"] == len(problems)
    return batch


# -- ggml ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("given", [{}, {"Nt": 7, "N_RF": 3, "K": 2}, {"Nt": 16, "N_RF": 4, "K": 4}],
                         ids=["8x3x3", "7x3x2", "16x4x4"])
def test_ggml_batch_equals_loop(given):
    # odd sizes put entries of a stacked elementwise kernel in other SIMD lanes than in the single run
    assert_batch_equals_loop(Ggml(), hybrid_stack(4, **given), {"epochs": 25, "hidden": 24}, "rate_trace")


def test_ggml_other_options_batch_equals_loop():
    opts = {"epochs": 20, "hidden": 17, "grad_input": "accumulated", "variance_weight": 0.0, "init": "phase-zf"}
    assert_batch_equals_loop(Ggml(), hybrid_stack(3), opts, "rate_trace")
    robust = hybrid_stack(3, csi_error=0.1)
    assert_batch_equals_loop(Ggml(), robust, {"epochs": 15, "hidden": 16, "robust": True}, "rate_trace")


def test_ggml_batch_of_one_and_mixed_shapes():
    assert_batch_equals_loop(Ggml(), hybrid_stack(1), {"epochs": 20, "hidden": 16}, "rate_trace")
    probs = [hybrid_stack(1)[0], hybrid_stack(1, K=2, N_RF=2)[0], hybrid_stack(2)[1]]
    opts = {"epochs": 10, "hidden": 16}
    sols = Ggml().solve_batch(probs, opts, ctxs(3))
    assert [s.x["F_BB"].shape for s in sols] == [(3, 3), (2, 2), (3, 3)]
    for p, s, c in zip(probs, sols, ctxs(3)):
        assert_same_vars(Ggml().solve(p, opts, c).x, s.x)
    assert [s.info["batch"] for s in sols] == [2, 1, 2]  # the two groups


def test_ggml_a_non_finite_realisation_does_not_disturb_the_others():
    probs = hybrid_stack(3)
    probs[1].H = probs[1].H.copy()
    probs[1].H[0, 0] = np.nan
    opts = {"epochs": 12, "hidden": 16, "init": "random"}  # the zero-forcing starts refuse a NaN channel
    batch = assert_batch_equals_loop(Ggml(), probs, opts, "rate_trace")
    assert all(np.isnan(batch[1].info["rate_trace"]))  # ggml runs its epochs and returns its start
    assert all(np.isfinite(batch[0].info["rate_trace"])) and all(np.isfinite(batch[2].info["rate_trace"]))


# -- gml ----------------------------------------------------------------------------------------------------
TINY = {"N": 2, "I": 2, "K": 2, "L": 3, "Q": 3}


def comp_stack(n: int = 3, **given) -> list:
    sc = get_registry().scenario("comp-rsma-ma")
    params = sc.resolve_params({**TINY, **given})
    return [sc.problem(params, sc.draw(params, realisation_rng(5, sc.name, i))) for i in range(n)]


@pytest.mark.parametrize("given", [{}, {"scheme": "sdma"}, {"antennas": "fpa", "sinr": "paper"}, {"K": 3, "I": 3}],
                         ids=["rsma-ma", "sdma", "fpa-paper", "K3"])
def test_gml_batch_equals_loop(given):
    batch = assert_batch_equals_loop(Gml(), comp_stack(3, **given), {"iters": 12}, "utility_per_iteration")
    assert {tuple(sorted(s.x)) for s in batch} == {tuple(sorted(comp_stack(1, **given)[0].variables))}


def test_gml_other_options_batch_of_one_and_mixed_shapes():
    assert_batch_equals_loop(Gml(), comp_stack(2), {"iters": 8, "input_norm": "raw", "penalty": 0.5,
                                                    "init": "mrt"}, "utility_per_iteration")
    assert_batch_equals_loop(Gml(), comp_stack(1), {"iters": 8}, "utility_per_iteration")
    probs = [comp_stack(1)[0], comp_stack(1, scheme="sdma")[0], comp_stack(2)[1]]
    sols = Gml().solve_batch(probs, {"iters": 5}, ctxs(3))
    assert ["c" in s.x for s in sols] == [True, False, True]
    for p, s, c in zip(probs, sols, ctxs(3)):
        assert_same_vars(Gml().solve(p, {"iters": 5}, c).x, s.x)


def test_gml_a_non_finite_realisation_does_not_disturb_the_others():
    probs = comp_stack(3)
    probs[1].draw = dataclasses.replace(probs[1].draw, sigma=np.full_like(probs[1].draw.sigma, np.nan))
    probs[1].__post_init__()  # the cached position-independent factor
    batch = assert_batch_equals_loop(Gml(), probs, {"iters": 6}, "utility_per_iteration")
    assert np.all(np.isneginf(batch[1].info["utility_per_iteration"]))  # scored -inf, start kept
    assert np.all(np.isfinite(batch[0].info["utility_per_iteration"] + batch[2].info["utility_per_iteration"]))


@pytest.mark.parametrize("solver, scenario, spec, sets", [
    (Ggml, "hybrid", "ggml[epochs=10,hidden=16]", {"Nt": 8, "N_RF": 2, "K": 2}),
    (Gml, "comp-rsma-ma", "gml[iters=6]", {"N": 2, "I": 2, "K": 2, "L": 3, "Q": 3, "R_th": 0}),
], ids=["ggml", "gml"])
def test_the_harness_batched_path_stores_the_per_run_results(tmp_path, fresh_registry, monkeypatch, solver,
                                                             scenario, spec, sets):
    args = ["--solvers", spec, "--instances", "3", *[a for k, v in sets.items() for a in ("--set", f"{k}={v}")]]
    assert compare(tmp_path / "b.db", *args, scenario=scenario) == 0
    monkeypatch.setattr(solver, "batched", False)
    assert compare(tmp_path / "s.db", *args, scenario=scenario) == 0
    batched, single = stored(tmp_path / "b.db"), stored(tmp_path / "s.db")
    single_by = {(r["label"], r["params"], r["instance"]): r for r in single}
    assert len(batched) == len(single) == 3
    for r in batched:
        s = single_by[(r["label"], r["params"], r["instance"])]
        assert r["status"] == s["status"] == "ok"
        assert r["utility"] == s["utility"] and r["iterations"] == s["iterations"]
        assert r["batch"] == 3 and s["batch"] == 1


def test_a_failed_batch_reruns_each_realisation_from_its_own_draws(monkeypatch):
    """When ``solve_batch`` raises (here ``ggml``'s zero-forcing start on a NaN channel, after the earlier
    realisations drew their starts), the harness solves the realisations one by one: each from its generator's
    state before the batch, so the good ones get exactly their unbatched results."""
    from wbench.engine.runner import _run_batch

    probs = hybrid_stack(3)
    probs[2].H = probs[2].H.copy()
    probs[2].H[0, 0] = np.nan
    opts = Ggml().resolve_options({"epochs": 5, "hidden": 8})
    with pytest.raises(np.linalg.LinAlgError):
        Ggml().solve_batch(probs, opts, ctxs(3))
    outcomes = _run_batch(Ggml(), probs, opts, ctxs(3), None)
    assert outcomes[2][0] is None and outcomes[2][1]  # the bad one: an error
    for p, c, (sol, err, *_) in zip(probs[:2], ctxs(2), outcomes[:2]):
        assert err is None
        assert_same_vars(sol.x, Ggml().solve(p, opts, c).x)


# -- device and precision (issue 18, item 2; on the CPU) ----------------------------------------------------
DEVICE_CASES = {
    "ggml": (Ggml, hybrid_stack, {"epochs": 30, "hidden": 24}, "rate_trace"),
    "gml": (Gml, comp_stack, {"iters": 10}, "utility_per_iteration"),
}


@pytest.mark.parametrize("name", list(DEVICE_CASES))
def test_float32_tracks_float64_and_batches_the_same(name):
    """``dtype=float32`` (networks, channel and variables in float32 / complex64): the returned point is handed
    back in float64 and its utility within 1e-5 relative of the float64 run's (measured: below 1e-6 at these
    sizes); the batched float32 path equals the unbatched one bitwise (the same per-realisation operations)."""
    cls, stack, opts, trace = DEVICE_CASES[name]
    probs = stack(3)
    f64 = cls().solve_batch(probs, opts, ctxs(3))
    f32 = assert_batch_equals_loop(cls(), probs, dict(opts, dtype="float32"), trace)
    for p, a, b in zip(probs, f64, f32):
        assert all(v.dtype in (np.float64, np.complex128) for v in b.x.values())
        assert p.feasibility(b.x).feasible
        assert p.utility(b.x) == pytest.approx(p.utility(a.x), rel=1e-5)
        assert not np.array_equal(a.info[trace], b.info[trace])  # float32 did run: its trace rounds otherwise


@pytest.mark.parametrize("name", list(DEVICE_CASES))
def test_device_option(name, monkeypatch):
    """``device=cpu`` is the default path bitwise, ``auto`` falls back to it without CUDA, and ``cuda``
    without CUDA is a one-line error; an unknown device is refused when the options are read."""
    import torch

    from wbench.params import ParamError

    cls, stack, opts, _ = DEVICE_CASES[name]
    p = stack(1)[0]
    default = cls().solve(p, opts, ctxs(1)[0])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cpu", "auto"):
        assert_same_vars(cls().solve(p, dict(opts, device=device), ctxs(1)[0]).x, default.x)
    with pytest.raises(RuntimeError, match="CUDA is not available") as info:
        cls().solve_batch(stack(2), dict(opts, device="cuda"), ctxs(2))
    assert "\n" not in str(info.value)
    with pytest.raises(ParamError, match="device"):
        cls().resolve_options({"device": "gpu"})

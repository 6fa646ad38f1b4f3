"""Batched gradient solvers (``metaopt``, ``metaopt-alg3``, ``adam``): ``solve_batch`` == ``solve`` per realisation.

Oracle: the unbatched path, realisation by realisation, with the same seeds (float64, one torch thread as
the harness runs them). On the CPU the batched path performs every floating-point operation of the
unbatched one (per-realisation matrix products with torch's own backward, rows in the unbatched memory
layout), so final variables, traces, utilities and losses agree to 1e-12 relative (the brief's 1e-6, tightened;
measured: bitwise in most cases, otherwise 1e-16 absolute: a few reductions of the vectorised meta-loss still
sum in another order). ``adam`` from its default start with projected variables (its leaderboard runs) is
asserted bitwise: next to a projection's kink it can turn a 1e-16 difference into 1e-3 within a few
iterations (it did, measured on miso 4x4 at 20 dB, before the batched path kept the start's memory layout),
and the committed leaderboards, now made through the batched path, must not move. Also: a batch of one,
mixed shapes, a realisation with a non-finite channel, the harness's batched path against its per-run path,
and the ``device`` / ``dtype`` options (on the CPU).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import bdris_problem, compare, miso_problem, stored
from wbench.solver import RunContext
from wbench.solvers.gradient.adam import Adam
from wbench.solvers.gradient.metaopt import MetaOpt, MetaOptAlg3

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def miso_stack(n: int = 4, nt: int = 4, k: int = 4):
    return [miso_problem(nt, k, 10.0, i, 3) for i in range(n)]


def bdris_stack(n: int = 3, **given):
    return [bdris_problem(20 + i, **{"Nt": 3, "K": 3, "B": 6, **given}) for i in range(n)]


def ctxs(n: int) -> list[RunContext]:
    return [RunContext(np.random.default_rng(100 + i)) for i in range(n)]


RTOL = 1e-12


def assert_close_vars(a: dict, b: dict, exact: bool) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if exact:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        else:
            scale = max(float(np.max(np.abs(a[k]))), 1e-300)
            assert float(np.max(np.abs(a[k] - b[k]))) <= RTOL * scale, k


def assert_batch_equals_loop(solver, problems, options, exact: bool = False) -> None:
    single_ctx = ctxs(len(problems))
    single = [solver.solve(p, options, c) for p, c in zip(problems, single_ctx)]
    batch_ctx = ctxs(len(problems))
    batch = solver.solve_batch(problems, options, batch_ctx)
    assert len(batch) == len(problems)
    for p, a, b, ca, cb in zip(problems, single, batch, single_ctx, batch_ctx):
        assert_close_vars(a.x, b.x, exact)
        assert p.utility(b.x) == pytest.approx(p.utility(a.x), rel=0 if exact else RTOL)
        assert b.iterations == a.iterations
        for key in ("stopped", "best_iteration"):
            assert b.info[key] == a.info[key], key
        for key in ("loss0", "best_loss"):
            assert b.info[key] == pytest.approx(a.info[key], rel=0 if exact else RTOL), key
        # the trace: same iterations, same best-so-far points
        assert [it for _, it, _ in cb.checkpoints] == [it for _, it, _ in ca.checkpoints]
        for (_, _, xa), (_, _, xb) in zip(ca.checkpoints, cb.checkpoints):
            assert_close_vars(xa, xb, exact)


def test_metaopt_defaults_on_miso():
    assert_batch_equals_loop(MetaOpt(), miso_stack(3), {"iters": 5})


def test_metaopt_defaults_on_bdris_fully_and_diagonal():
    assert_batch_equals_loop(MetaOpt(), bdris_stack(), {"iters": 8})
    assert_batch_equals_loop(MetaOpt(), bdris_stack(architecture="diagonal"), {"iters": 8})


def test_metaopt_alg3_with_its_warm_stage_on_bdris():
    probs = bdris_stack()
    assert_batch_equals_loop(MetaOptAlg3(), probs, {"iters": 6, "warm_iters": 4})
    sol = MetaOptAlg3().solve_batch(probs, {"iters": 6, "warm_iters": 4}, ctxs(3))[0]
    assert sol.info["warm"]["iterations"] == 4 and sol.iterations == 10  # both stages ran, per realisation


def test_metaopt_penalised_variables_and_other_options():
    opts = {"iters": 10, "hidden": "32x32", "activations": "tanh-elu", "project": "precoder",
            "lr_by_var": "scattering:1e-4", "input_norm": "max", "output_scale": "unit", "final_project": True}
    assert_batch_equals_loop(MetaOpt(), bdris_stack(), opts)


def test_adam_on_miso_and_bdris_bitwise():
    assert_batch_equals_loop(Adam(), miso_stack(), {"iters": 30}, exact=True)
    assert_batch_equals_loop(Adam(), miso_stack(), {"iters": 30, "init": "random"}, exact=True)
    assert_batch_equals_loop(Adam(), bdris_stack(), {"iters": 30}, exact=True)
    assert_batch_equals_loop(Adam(), bdris_stack(), {"iters": 30, "project": "P"})  # penalised Phi: 1e-16
    # from the embedded diagonal-RIS solution: the polar projection's derivative at a unitary point
    assert_batch_equals_loop(Adam(), bdris_stack(), {"iters": 20, "warm": "diagonal", "warm_iters": 10})
    assert_batch_equals_loop(Adam(), bdris_stack(architecture="group", group_size=3), {"iters": 20})


def test_a_batch_of_one_equals_the_unbatched_run():
    for solver, probs, opts in [(MetaOpt(), miso_stack(1), {"iters": 8}), (Adam(), bdris_stack(1), {"iters": 20})]:
        assert_batch_equals_loop(solver, probs, opts)


def test_mixed_shapes_are_grouped_and_returned_in_order():
    probs = [miso_problem(4, 4, 10.0, 0, 3), miso_problem(4, 2, 10.0, 1, 3), miso_problem(4, 4, 10.0, 2, 3)]
    assert_batch_equals_loop(MetaOpt(), probs, {"iters": 6, "hidden": "32x32x32"})
    sols = Adam().solve_batch(probs, {"iters": 5}, ctxs(3))
    assert [s.x["V"].shape for s in sols] == [(4, 4), (4, 2), (4, 4)]


def test_a_non_finite_realisation_stops_alone():
    probs = miso_stack(3)
    probs[1].H = probs[1].H.copy()
    probs[1].H[0, 0] = np.nan
    for solver, opts in [(Adam(), {"iters": 12}), (MetaOpt(), {"iters": 12, "hidden": "32x32x32"})]:
        batch = solver.solve_batch(probs, opts, ctxs(3))
        assert batch[1].info["stopped"] == "nonfinite" and batch[1].info["stalled"]
        assert [batch[0].iterations, batch[2].iterations] == [12, 12]
        assert_batch_equals_loop(solver, [probs[0], probs[2]], opts)  # the others are not disturbed
        single = solver.solve(probs[0], opts, ctxs(1)[0])
        assert_close_vars(single.x, batch[0].x, exact=False)


def test_the_harness_batched_path_stores_the_per_run_results(tmp_path, fresh_registry, monkeypatch):
    """``wbench compare`` with the batched solvers (one batch per configuration: one worker) and again with
    batching switched off: the same utility, iterations and status per run; the rows say how they ran."""
    args = ["--solvers", "adam[iters=15],metaopt[iters=6,hidden=32x32x32]", "--instances", "3"]
    assert compare(tmp_path / "b.db", *args, scenario="bdris") == 0
    monkeypatch.setattr(Adam, "batched", False)
    monkeypatch.setattr(MetaOpt, "batched", False)
    assert compare(tmp_path / "s.db", *args, scenario="bdris") == 0
    batched, single = stored(tmp_path / "b.db"), stored(tmp_path / "s.db")
    key = lambda r: (r["label"], r["params"], r["instance"])  # noqa: E731
    single_by = {key(r): r for r in single}
    assert len(batched) == len(single) == 2 * 2 * 3  # two solvers, two architectures, three channels
    for r in batched:
        s = single_by[key(r)]
        assert r["status"] == s["status"] == "ok"
        assert r["utility"] == pytest.approx(s["utility"], rel=RTOL)
        assert r["iterations"] == s["iterations"]
        assert r["batch"] == 3 and s["batch"] == 1


def test_device_option(monkeypatch):
    import torch

    prob = miso_stack(1)[0]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        MetaOpt().solve(prob, {"iters": 2, "device": "cuda"}, RunContext(np.random.default_rng(0)))
    small = {"iters": 4, "hidden": "16x16x16"}
    auto = MetaOpt().solve(prob, dict(small, device="auto"), RunContext(np.random.default_rng(0)))
    cpu = MetaOpt().solve(prob, dict(small, device="cpu"), RunContext(np.random.default_rng(0)))
    np.testing.assert_array_equal(auto.x["V"], cpu.x["V"])
    from wbench.params import ParamError

    with pytest.raises(ParamError, match="device"):
        MetaOpt().resolve_options({"device": "gpu"})


def test_float32_tracks_float64_and_is_batched_too():
    probs = miso_stack(3)
    opts = {"iters": 20, "hidden": "32x32x32"}
    f64 = MetaOpt().solve_batch(probs, opts, ctxs(3))
    f32 = MetaOpt().solve_batch(probs, dict(opts, dtype="float32"), ctxs(3))
    single = [MetaOpt().solve(p, dict(opts, dtype="float32"), c) for p, c in zip(probs, ctxs(3))]
    for p, a, b, s in zip(probs, f64, f32, single):
        assert b.x["V"].dtype == np.complex128  # handed back (and scored) in float64
        assert p.utility(b.x) == pytest.approx(p.utility(a.x), rel=1e-4)
        assert p.utility(b.x) == pytest.approx(p.utility(s.x), rel=1e-5)


# -- a wave-2 scenario: hrsma (seed 000 section IV) with metaopt-alg1 ------------------------------------------
def hrsma_stack(n: int = 3, **given) -> list:
    from wbench.channels.channelset import realisation_rng
    from wbench.scenarios.hrsma import Hrsma

    sc = Hrsma()
    params = sc.resolve_params({"Nt": 4, "K": 4, "G": 2, "M": 12, "M_eval": 12, **given})
    return [sc.problem(params, sc.draw(params, realisation_rng(0, "hrsma", i))) for i in range(n)]


@pytest.mark.parametrize("given", [{}, {"scheme": "rsma", "R_th": 0.0}, {"scheme": "sdma", "R_th": 1.0}],
                         ids=["hrsma-qos", "rsma", "sdma-qos"])
def test_metaopt_alg1_and_adam_on_hrsma_bitwise(given):
    """The per-realisation loss on the CPU (:meth:`HrsmaProblem.penalised_loss_torch_batch`) and per-row power
    ball: bitwise, also with the QoS penalty active (``P`` has 7 columns: rows that do not fill SIMD vectors)."""
    from wbench.solvers.gradient.metaopt import MetaOptAlg1

    assert_batch_equals_loop(MetaOptAlg1(), hrsma_stack(3, **given), {"iters": 12, "hidden": "32x32x32"},
                             exact=True)
    assert_batch_equals_loop(MetaOptAlg1(), hrsma_stack(1, **given), {"iters": 6, "hidden": "16x16x16"},
                             exact=True)
    assert_batch_equals_loop(Adam(), hrsma_stack(3, **given), {"iters": 20}, exact=True)


def test_metaopt_alg1_and_adam_on_isac_bitwise():
    """``isac`` (a subclass of the ``hrsma`` problem with its own loss) takes the per-realisation losses."""
    from wbench.channels.channelset import realisation_rng
    from wbench.scenarios.isac import Isac
    from wbench.solvers.gradient.metaopt import MetaOptAlg1

    sc = Isac()
    params = sc.resolve_params({"Nt": 4, "K": 4, "G": 2, "M": 12, "M_eval": 12})
    probs = [sc.problem(params, sc.draw(params, realisation_rng(0, "isac", i))) for i in range(3)]
    assert_batch_equals_loop(MetaOptAlg1(), probs, {"iters": 12, "hidden": "32x32x32"}, exact=True)
    assert_batch_equals_loop(Adam(), probs, {"iters": 20}, exact=True)


@pytest.mark.parametrize("scheme", ["hrsma", "rsma", "sdma"])
def test_hrsma_vectorised_loss_equals_the_stacked_per_realisation_losses(scheme):
    """:func:`wbench.scenarios.hrsma.stacked_loss` (the GPU form) against the per-realisation losses at random
    points: values and gradients to 1e-12 relative, with the QoS term and its penalty active."""
    import torch

    from wbench.scenarios.hrsma import stacked_loss

    probs = hrsma_stack(4, scheme=scheme, R_th=0.5)
    rng = np.random.default_rng(3)
    shape = probs[0].variables["P"].shape
    P = torch.tensor(rng.standard_normal((4, *shape)) + 1j * rng.standard_normal((4, *shape)),
                     dtype=torch.complex128) * 0.3
    for penalised, weight in [(False, None), (True, None), (True, 7.0)]:
        Pa = P.clone().requires_grad_(True)
        batched = stacked_loss(probs, Pa, penalised, weight)
        (ga,) = torch.autograd.grad(batched.sum(), Pa)
        Pb = P.clone().requires_grad_(True)
        rows = [p.penalised_loss_torch({"P": Pb[b]}, weight) if penalised else p.loss_torch({"P": Pb[b]})
                for b, p in enumerate(probs)]
        (gb,) = torch.autograd.grad(torch.stack(rows).sum(), Pb)
        np.testing.assert_allclose(batched.detach().numpy(), torch.stack(rows).detach().numpy(), rtol=1e-12)
        assert float((ga - gb).abs().max()) <= 1e-12 * float(gb.abs().max())
    shortfall = [float(p.constraints({"P": P[b].numpy()})["qos"][0]) for b, p in enumerate(probs)]
    assert min(shortfall) < 0  # the QoS term and its penalty are active in the check

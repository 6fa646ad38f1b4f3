"""Checks every registered scenario must pass (built-ins and the toys): the torch loss is the negative
float64 utility at feasible points, its gradient matches central finite differences, every variable
declares a role, and the torch form of the scenario constraints equals the NumPy one."""

from __future__ import annotations

import numpy as np
import pytest

from wbench.channels.channelset import realisation_rng
from wbench.solvers.common import autodiff


def scenario_names():
    from tests import toy_plugin, toy_sets_plugin
    from wbench.registry import Registry

    reg = Registry()
    reg.load_builtins()
    reg.add_module(toy_plugin, "tests", "0")
    reg.add_module(toy_sets_plugin, "tests", "0")
    return sorted(reg.scenarios)


@pytest.fixture
def problems(toy_registry):
    from tests import toy_sets_plugin

    toy_registry.add_module(toy_sets_plugin, "tests", "0")

    def make(name, seed):
        sc = toy_registry.scenario(name)
        params = sc.resolve_params({})
        return sc.problem(params, sc.draw(params, realisation_rng(seed, name, 0)))
    return make


@pytest.mark.parametrize("name", scenario_names())
@pytest.mark.parametrize("seed", [0, 1])
def test_loss_is_negative_utility_and_gradient_matches_finite_differences(problems, name, seed):
    prob = problems(name, seed)
    rng = np.random.default_rng(seed)
    for method in prob.init_methods:
        x = prob.initial(method, rng)
        feas = prob.feasibility(x)
        # every start lies in the variables' sets; a start may miss a QoS target (seed 004's own start, random
        # precoders with c = 0, usually does), and then the loss carries the scenario's non-negative penalty
        sets = set(prob.variables) | {j.name for j in prob.joint}
        assert all(feas.violations[k] <= feas.tolerances[k] for k in sets), (name, method)
        loss, grad = autodiff.loss_and_grad(prob, x)
        if feas.feasible:
            assert loss == pytest.approx(-prob.utility(x), rel=1e-10, abs=1e-12)
        else:
            assert loss >= -prob.utility(x) - 1e-12, (name, method)
        # directional derivative along a random direction, real inner product Re<grad, d>
        d = {k: rng.standard_normal(v.shape) + (1j * rng.standard_normal(v.shape) if np.iscomplexobj(v) else 0)
             for k, v in x.items()}
        eps = 1e-6
        plus = {k: x[k] + eps * d[k] for k in x}
        minus = {k: x[k] - eps * d[k] for k in x}
        fd = (autodiff.loss_and_grad(prob, plus)[0] - autodiff.loss_and_grad(prob, minus)[0]) / (2 * eps)
        analytic = sum(float(np.real(np.vdot(grad[k], d[k]))) for k in x)
        assert analytic == pytest.approx(fd, rel=1e-5, abs=1e-7), (name, method)


def test_pack_unpack_round_trip(problems):
    prob = problems("toy-ris", 0)
    x = prob.initial("random", np.random.default_rng(0))
    z = autodiff.pack(prob, x)
    assert z.dtype == np.float64 and z.size == 2 * sum(v.size for v in x.values())
    back = autodiff.unpack(prob, z)
    for k in x:
        np.testing.assert_array_equal(back[k], x[k])


@pytest.mark.parametrize("name", scenario_names())
def test_every_variable_declares_a_role_and_torch_constraints_match(problems, name):
    from wbench.problem import ROLES

    prob = problems(name, 0)
    assert all(v.role in ROLES for v in prob.variables.values()), name
    if not prob.has_constraints_torch:
        return
    import torch

    rng = np.random.default_rng(1)
    for _ in range(3):
        x = prob.random_feasible(rng)
        x = {k: v * rng.uniform(0.2, 1.0) for k, v in x.items()}  # inside as well as on the boundary
        ref = prob.constraints(x)
        got = prob.constraints_torch({k: torch.as_tensor(v) for k, v in x.items()})
        assert set(got) == set(ref)
        for k in ref:
            np.testing.assert_allclose(got[k].numpy(), ref[k], rtol=1e-12, atol=1e-14)

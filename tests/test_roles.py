"""Solvers find variables by role, not by name: a problem whose variables are renamed (``V -> W`` in
``miso``; ``P -> Wp``, ``Phi -> Theta`` in ``bdris``) gets the same answer from every solver, and the
built-in scenarios declare a role for every variable."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.helpers import bdris_problem, miso_problem, solve_with
from wbench.problem import ROLES, Problem, WarmStart
from wbench.registry import Registry


class Renamed(Problem):
    """``inner`` with its variables renamed by ``mapping`` (old -> new); everything else delegated."""

    def __init__(self, inner: Problem, mapping: dict[str, str]) -> None:
        self.inner, self.fwd = inner, dict(mapping)
        self.back = {v: k for k, v in mapping.items()}
        super().__init__({mapping[k]: v for k, v in inner.variables.items()}, inner.scenario, inner.params,
                         inner.init_methods)

    def _in(self, x):
        return {self.back[k]: v for k, v in x.items()}

    def _out(self, x):
        return {self.fwd[k]: v for k, v in x.items()}

    def utility(self, x):
        return self.inner.utility(self._in(x))

    def loss_torch(self, x):
        return self.inner.loss_torch(self._in(x))

    def _initial(self, method, rng):
        return self._out(self.inner._initial(method, rng))

    def precoding_view(self, x):
        view = self.inner.precoding_view(self._in(x))
        return dataclasses.replace(view, variable=self.fwd[view.variable])

    def closed_form_optimum(self):
        return self.inner.closed_form_optimum()

    def warm_start(self):
        warm = self.inner.warm_start()
        if warm is None:
            return None
        stage = Renamed(warm.problem, self.fwd)
        return WarmStart(warm.name, stage, lambda x: self._out(warm.embed(stage._in(x))))


def _registry():
    reg = Registry()
    reg.load_builtins()
    return reg


CASES = [
    ("miso", "wmmse", {"starts": 3, "max_iter": 20}),
    ("miso", "mlbf-wmmse", {"starts": 1, "outer": 3}),
    ("miso", "dpc-bound", {}),
    ("miso", "zf", {}),
    ("miso", "multistart", {"starts": 1, "max_iter": 20}),
    ("miso", "adam", {"iters": 20, "project": "precoder"}),
    ("bdris", "wmmse", {"starts": 2, "max_iter": 10}),
    ("bdris", "rzf", {}),
    ("bdris", "ao", {"max_outer": 3, "warm": "diagonal"}),
    ("bdris", "metaopt-alg3", {"iters": 5, "warm_iters": 3, "hidden": "16x16", "activations": "tanh-tanh"}),
    ("bdris", "metaopt", {"iters": 5, "hidden": "8", "activations": "tanh", "lr_by_var": "scattering:1e-4"}),
    ("bdris", "manifold", {"max_iter": 10}),
]


@pytest.mark.parametrize("scenario,solver,options", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_renamed_variables_give_the_same_answer(scenario, solver, options, one_torch_thread):
    if scenario == "miso":
        prob, mapping = miso_problem(4, 3, 20.0, 0, 0), {"V": "W"}
    else:
        prob, mapping = bdris_problem(1, Nt=3, K=2, B=4), {"P": "Wp", "Phi": "Theta"}
    renamed = Renamed(prob, mapping)
    s = _registry().solvers[solver]
    assert s.declines(prob, options) is None and s.declines(renamed, options) is None
    a, _ = solve_with(s, prob, 3, **options)
    b, _ = solve_with(s, renamed, 3, **options)
    if a.x is None:  # a bound
        assert b.x is None and b.value == a.value
        return
    assert set(b.x) == set(mapping.values())
    for old, new in mapping.items():
        np.testing.assert_array_equal(b.x[new], a.x[old])
    assert renamed.utility(b.x) == prob.utility(a.x)


def test_built_in_scenarios_declare_a_role_for_every_variable():
    reg = _registry()
    for name in ("miso", "bdris"):
        sc = reg.scenario(name)
        for arch in (("diagonal", "fully", "group") if name == "bdris" else (None,)):
            params = sc.resolve_params({} if arch is None else {"architecture": arch})
            prob = sc.problem(params, sc.draw(params, np.random.default_rng(0)))
            assert all(v.role in ROLES for v in prob.variables.values()), (name, arch)
            assert prob.role_variable("precoder") is not None
            if name == "bdris":
                assert prob.role_variable("scattering") is not None
                assert prob.warm_start() is None or prob.warm_start().problem.role_variable("scattering")

"""The device rule for torch solvers (issue 18, item 2), checked on a machine without CUDA.

Rule: a torch solver either runs on the device a run asks for (``Solver.gpu``: channels, variables and networks
moved there) or, when its inner steps are NumPy/SciPy/cvxpy, declines a CUDA device with a one-line reason
(``Solver.cpu_only``); the harness notes a declined device once per command and runs everything else.
Oracles, with ``torch.cuda.is_available`` patched to ``False``: ``--device cuda`` plans no run of the solver and
gives exactly one one-line note naming it and the reason; ``cpu`` and ``auto`` plan its runs; a GPU solver
asked for CUDA directly (``RunContext.device``) raises the one-line error instead of running on the CPU.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import stored
from wbench.cli import main
from wbench.engine import build_configs, channel_source, plan
from wbench.params import ParamError
from wbench.registry import get_registry
from wbench.selection import select
from wbench.solver import RunContext, Solver
from wbench.store import Store

#: A scenario (and small parameters) each built-in torch solver applies to; the others run on miso.
WHERE = {
    "ao": ("bdris", {}),
    "metaopt-alg3": ("bdris", {}),
    "metaopt-alg1": ("hrsma", {"Nt": "4", "K": "4", "G": "2", "M": "12", "M_eval": "12"}),
    "ao-star": ("star-ris-noma", {}),
    "ddpg": ("star-ris-noma", {}),
    "meta-ddpg": ("star-ris-noma", {}),
    "ggml": ("hybrid", {"Nt": "8", "N_RF": "3", "K": "3"}),
    "gml": ("comp-rsma-ma", {"N": "2", "I": "2", "K": "2", "L": "3", "Q": "3"}),
}
MISO = ("miso", {"snr_db": "10"})
#: Small budgets for the direct runs below (each fails before its first step, so they only bound a mistake).
SMALL = {"adam": {"iters": 2}, "metaopt": {"iters": 2}, "metaopt-alg1": {"iters": 2},
         "metaopt-alg3": {"iters": 2, "warm_iters": 0}, "ggml": {"epochs": 2}, "gml": {"iters": 2},
         "mlbf": {}, "mlbf-wmmse": {}}


def torch_solvers() -> list[str]:
    reg = get_registry()
    return sorted(n for n, s in reg.solvers.items() if s.uses_torch and type(s).__module__.startswith("wbench."))


@pytest.fixture
def no_cuda(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def _plan(tmp_path, name: str, device: str):
    scenario, sets = WHERE.get(name, MISO)
    specs, _ = select(get_registry(), name, scenario)
    configs = build_configs(scenario, sets, {}, 0, None)[:1]  # one configuration of the default sweep
    with Store(tmp_path / f"{device}.db") as store:
        return plan(store, configs, specs, 1, device=device), specs[0]


def test_the_rule_covers_every_builtin_torch_solver():
    names = torch_solvers()
    assert {"adam", "metaopt", "ggml", "gml", "ao", "sca", "ddpg", "multistart", "manifold"} <= set(names)
    for n in names:
        s = get_registry().solver(n)
        # each says where it runs: on the device, or why the CPU only (not the base class's generic reason)
        assert s.gpu or type(s).cpu_only != Solver.cpu_only, n


@pytest.mark.parametrize("name", torch_solvers())
def test_cuda_without_cuda_is_one_note_and_cpu_or_auto_run(name, tmp_path, no_cuda):
    p, spec = _plan(tmp_path, name, "cuda")
    assert p.tasks == [] and p.total == 0
    assert len(p.notes) == 1
    note = p.notes[0]
    assert "\n" not in note and note.startswith(f"{spec.label} skipped: ")
    solver = spec.solver
    if solver.gpu:
        assert "CUDA is not available" in note
    else:
        assert "runs on the CPU only" in note and solver.cpu_only in note
    for device in ("cpu", "auto"):
        q, _ = _plan(tmp_path, name, device)
        assert q.notes == [] and q.total == 1 and len(q.tasks) == 1, device
        assert q.tasks[0].device == device


def test_cuda_solvers_decline_only_for_want_of_cuda(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for n in torch_solvers():
        s = get_registry().solver(n)
        reason = s.declines_device("cuda:0", {})
        assert (reason is None) == s.gpu, n
    # a solver's own device option wins over the run's
    adam = get_registry().solver("adam")
    assert adam.declines_device("cuda", {"device": "cpu"}) is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert adam.declines_device("cpu", {"device": "cuda"}) is not None


def test_a_plugin_that_says_nothing_is_cpu_only():
    class Plain(Solver):
        name = "plain"
        uses_torch = True

    class NoTorch(Solver):
        name = "numpy-only"

    assert "runs on the CPU only" in Plain().declines_device("cuda", {})
    assert Plain().declines_device("auto", {}) is None
    assert NoTorch().declines_device("cuda", {}) is None  # the device is a torch setting


@pytest.mark.parametrize("name", [n for n in torch_solvers() if get_registry().solver(n).gpu])
def test_a_gpu_solver_asked_for_cuda_directly_raises_one_line(name, no_cuda):
    scenario, sets = WHERE.get(name, MISO)
    cfg = build_configs(scenario, sets, {}, 0, None)[0]
    sc = get_registry().scenario(scenario)
    problem = sc.problems(cfg.params_dict, channel_source(cfg).get(0)[0])[0]
    solver = get_registry().solver(name)
    with pytest.raises(RuntimeError, match="CUDA is not available") as info:
        solver.solve(problem, SMALL[name], RunContext(np.random.default_rng(0), device="cuda"))
    assert "\n" not in str(info.value)


def test_compare_device_cuda_without_cuda(tmp_path, no_cuda, capsys):
    """``wbench compare --device cuda`` on a machine without CUDA: one line about adam, wmmse still runs, and
    nothing is stored for adam (a later ``--device cpu`` run is not answered by stored errors)."""
    db = tmp_path / "c.db"
    args = ["compare", "--scenario", "miso", "--set", "snr_db=10", "--instances", "2", "--jobs", "1", "--db", str(db),
            "--format", "csv", "--solvers"]
    assert main([*args, "adam[iters=3],wmmse[max_iter=3]", "--device", "cuda"]) == 0
    err = capsys.readouterr().err
    about_adam = [line for line in err.splitlines() if "adam" in line]
    assert len(about_adam) == 1
    assert "adam[iters=3] skipped" in about_adam[0] and "CUDA is not available" in about_adam[0]
    rows = stored(db)
    assert len(rows) == 2 and {r["label"] for r in rows} == {"wmmse[max_iter=3]"}
    assert all(r["status"] == "ok" for r in rows)
    assert main([*args, "adam[iters=3]", "--device", "cpu"]) == 0
    adam = [r for r in stored(db) if r["label"] == "adam[iters=3]"]
    assert len(adam) == 2 and all(r["status"] == "ok" for r in adam)
    capsys.readouterr()
    assert main([*args, "manifold[max_iter=3]", "--device", "auto"]) == 0  # CPU-only: on the CPU under auto
    assert "skipped" not in capsys.readouterr().err
    assert len([r for r in stored(db) if r["label"] == "manifold[max_iter=3]"]) == 2


def test_an_unknown_device_is_a_one_line_error(tmp_path, capsys):
    code = main(["compare", "--scenario", "miso", "--solvers", "wmmse", "--instances", "1", "--db",
                 str(tmp_path / "d.db"), "--device", "gpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--device 'gpu'" in err
    with Store(tmp_path / "e.db") as store, pytest.raises(ParamError, match="cuda:N"):
        plan(store, build_configs("miso", {}, {}, 0, None), select(get_registry(), "wmmse", "miso")[0], 1,
             device="cuda:x")


def test_a_run_on_another_device_is_keyed_apart(monkeypatch):
    """A CUDA run is another computation (rounding, float32 kernels): its run key must differ from the CPU
    run's, or a store would hand one back for the other. CPU keys stay those of stores made before devices
    were keyed, and a CPU-only solver (or ``auto`` without CUDA) keys as the CPU."""
    import torch

    from wbench.engine.tasks import _hash, run_key

    reg = get_registry()
    cfg = build_configs("miso", {}, {}, 0, None)[0]
    adam, wmmse, ao = reg.solver("adam"), reg.solver("wmmse"), reg.solver("ao")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert adam.run_device("auto", {}) == "cpu" and adam.run_device("cuda:0", {}) == "cuda:0"
    assert adam.run_device("cpu", {"device": "cuda"}) == "cuda"  # the solver's own option wins
    assert ao.run_device("cuda", {}) == "cpu" and wmmse.run_device("cuda", {}) == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert adam.run_device("auto", {}) == "cuda"
    old = _hash(cfg.key, 0, "adam", "1", "{}", None)
    assert run_key(cfg, "adam", "1", "{}", None, 0) == old == run_key(cfg, "adam", "1", "{}", None, 0, "cpu")
    assert run_key(cfg, "adam", "1", "{}", None, 0, "cuda") != old
    assert run_key(cfg, "adam", "1", "{}", None, 0, "cuda") != run_key(cfg, "adam", "1", "{}", None, 0, "cuda:1")

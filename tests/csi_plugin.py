"""A test plugin for scoring apart from what solvers see: a MISO scenario under imperfect CSI, and solvers
that look for hidden data in the problem they receive.

``toy-csi`` (the MISO WSR model of ``wbench/scenarios/miso.py``, seed 001 eqs. (2)-(3), with an estimated
channel): the true channel ``H`` has i.i.d. ``CN(0, 1)`` entries and the transmitter knows only the noisy
estimate ``H_hat = H + E``, ``E`` i.i.d. ``CN(0, se2)`` (``se2 = 0``: perfect CSI, ``H_hat = H`` exactly).
Solvers optimise the WSR on ``H_hat``; the harness scores the precoder on ``H`` (``hidden = ("H",)``). For one
user and MRT on the estimate, ``v = sqrt(P) h_hat / ||h_hat||``:

    in-sample  log2(1 + P ||h_hat||^2)
    scored     log2(1 + P |h^H h_hat|^2 / ||h_hat||^2)

and since ``h_hat ~ CN(0, (1 + se2) I)`` has a stochastically larger norm than ``h`` while the scored gain is at
most ``||h||^2`` (Cauchy-Schwarz), the mean optimism (in-sample minus scored) is positive for ``se2 > 0``.

The draw returns ``H`` and ``H_hat`` as views of one buffer on purpose: a problem built on an uncopied
``H_hat`` would keep ``H`` alive through the view's base, which the framework must prevent.

``leak-probe`` / ``leak-probe-batch`` (the latter batched and torch-flagged, so the harness also gives it a
warm-up run) write, for every problem they are handed (in ``declines``, ``memory_bytes``, ``solve`` and
``solve_batch``), the bytes of every array reachable from it and its pickle to a file under the ``dump``
directory, with the process id; the test then searches those bytes for the hidden arrays. They return MRT.
"""

from __future__ import annotations

import gc
import os
import pickle
import types
import uuid
from typing import Any

import numpy as np

from wbench import Param, PowerBall, Scenario, Solution, Solver, Variable, hookimpl
from wbench.channels.rayleigh import cn
from wbench.scenarios.miso import MisoProblem

_LEAVES = (type, types.ModuleType, types.CodeType, types.BuiltinFunctionType, str, int, float, complex,
           bool, type(None))


def reachable_buffers(root: Any) -> list[bytes]:
    """The raw bytes of every array (and bytes object) reachable from ``root`` through its data: instance
    attributes, containers, array bases, closures and bound methods; not through classes, modules or a
    function's globals (they reach everything in the process)."""
    out: list[bytes] = []
    seen: set[int] = set()
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            out.append(np.ascontiguousarray(obj).tobytes())
            if obj.base is not None:
                stack.append(obj.base)
            if obj.dtype == object:
                stack.extend(obj.ravel().tolist())
            continue
        if isinstance(obj, (bytes, bytearray)):
            out.append(bytes(obj))
            continue
        if isinstance(obj, memoryview):
            out.append(obj.tobytes())
            stack.append(obj.obj)
            continue
        if isinstance(obj, _LEAVES):
            continue
        if isinstance(obj, types.FunctionType):
            stack.extend(c.cell_contents for c in obj.__closure__ or () if _filled(c))
            stack.extend(obj.__defaults__ or ())
            stack.extend((obj.__kwdefaults__ or {}).values())
            continue
        if isinstance(obj, types.MethodType):
            stack.extend((obj.__self__, obj.__func__))
            continue
        stack.extend(gc.get_referents(obj))
    return out


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


def dump(problem: Any, directory: str, where: str) -> None:
    """Write what a solver could find in ``problem`` (see the module docstring)."""
    record = {"pid": os.getpid(), "where": where, "buffers": reachable_buffers(problem),
              "pickle": pickle.dumps(problem)}
    path = os.path.join(directory, f"{where}-{os.getpid()}-{uuid.uuid4().hex}.pkl")
    with open(path + ".tmp", "wb") as f:
        pickle.dump(record, f)
    os.replace(path + ".tmp", path)


def read_dumps(directory: str) -> list[dict[str, Any]]:
    out = []
    for name in sorted(os.listdir(directory)):
        if name.endswith(".pkl"):
            with open(os.path.join(directory, name), "rb") as f:
                out.append(pickle.load(f))
    return out


class ToyCsi(Scenario):
    name = "toy-csi"
    description = "MISO WSR on a noisy channel estimate, scored on the true channel (tests only)"
    params = {
        "Nt": Param(3, "BS antennas", min=1),
        "K": Param(1, "single-antenna users", min=1),
        "snr_db": Param(10.0, "P / sigma2 in dB (sigma2 = 1)"),
        "se2": Param(0.2, "variance of the estimation error per entry", min=0),
    }
    default_sweep: dict[str, list[Any]] = {}
    default_instances = 5
    hidden = ("H",)

    def draw(self, params, rng):
        k, nt = params["K"], params["Nt"]
        h = cn(rng, (k, nt))
        z = cn(rng, (k, nt))
        buf = np.empty((2, k, nt), dtype=np.complex128)  # one buffer: see the module docstring
        buf[0] = h
        buf[1] = h + np.sqrt(params["se2"]) * z
        return {"H": buf[0], "H_hat": buf[1]}

    def _miso(self, params, H) -> MisoProblem:
        nt, k = params["Nt"], params["K"]
        power = 10.0 ** (params["snr_db"] / 10.0)
        return MisoProblem(variables={"V": Variable((nt, k), PowerBall(power), role="precoder")}, scenario=self.name,
                           params=dict(params), init_methods=("mrt", "rzf", "random"),
                           H=np.asarray(H, dtype=np.complex128), weights=np.ones(k), power=power, sigma2=1.0)

    def problem(self, params, channel):
        return self._miso(params, channel["H_hat"])

    def scoring_problem(self, params, channel, seen):
        return self._miso(params, channel["H"])


class LeakProbe(Solver):
    name, version, tags = "leak-probe", "1", frozenset({"baseline"})
    description = "dumps what it can reach from its problem, returns MRT (tests only)"
    scenarios = ("toy-csi",)
    options = {"dump": Param("", "directory for the dumps")}

    def declines(self, problem, options):
        dump(problem, options["dump"], "declines")
        return None

    def memory_bytes(self, problem, options):
        dump(problem, options["dump"], "memory")
        return 0

    def solve(self, problem, options, ctx):
        dump(problem, options["dump"], "solve")
        return Solution(problem.initial("mrt"))


class LeakProbeBatch(LeakProbe):
    name = "leak-probe-batch"
    batched = True
    uses_torch = True  # the harness gives it an untimed warm-up run: one more problem to search

    def solve_batch(self, problems, options, ctxs):
        for p in problems:
            dump(p, options["dump"], "batch")
        return [Solution(p.initial("mrt")) for p in problems]


@hookimpl
def wbench_register_scenarios(register):
    register(ToyCsi())


@hookimpl
def wbench_register_solvers(register):
    register(LeakProbe())
    register(LeakProbeBatch())

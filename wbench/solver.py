"""The solver contract: options, tags, supported scenarios, and the run context the harness provides.

A solver plugin subclasses :class:`Solver` and registers an instance through ``wbench_register_solvers``.
The harness calls :meth:`Solver.solve` (or :meth:`Solver.solve_batch` over several realisations of one
configuration) inside the timed region, then scores the returned variables itself: a solver proposes, the
harness measures. During the run a solver reports checkpoints through :meth:`RunContext.checkpoint`; copying
them is kept out of the measured time and their utilities are evaluated after the clock stops.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator, Mapping, Sequence

import numpy as np

from .params import Param, resolve
from .problem import Problem, Vars, to_numpy_vars

TAGS = ("baseline", "conventional", "meta", "bound", "reference", "optimum", "learned")
#: Tags of solvers that return a value (:attr:`Solution.value`) instead of variables: listed unranked.
#: ``reference``: a value that is not a bound (e.g. a fully-digital local method beside hybrid designs).
VALUE_TAGS = frozenset({"bound", "reference"})


def check_device(text: str | None) -> str | None:
    """What is wrong with a torch device name (``None``: nothing): cpu, cuda, cuda:N or auto."""
    if text is None:
        return None
    name = str(text).strip().lower()
    if name in ("cpu", "cuda", "auto") or (name.startswith("cuda:") and name[5:].isdigit()):
        return None
    return "expected cpu, cuda, cuda:N or auto"


@dataclass
class Solution:
    """What a solver returns: variables (or, for a ``bound`` or ``reference`` solver, the ``value``)."""

    x: Vars | None = None
    iterations: int = 0
    #: Only for solvers tagged ``bound`` (an upper bound on the utility) or ``reference`` (a reference value
    #: that bounds nothing): no variables to score.
    value: float | None = None
    info: dict[str, Any] = field(default_factory=dict)


def _log_schedule(max_points: int = 60) -> set[int]:
    """Iterations kept in a trace: all of 0..10, then roughly geometric (about 12 per decade)."""
    keep = set(range(11))
    x = 10.0
    while x < 1e9 and len(keep) < 10_000:
        x *= 10 ** (1 / 12)
        keep.add(int(round(x)))
    return keep


_SCHEDULE = _log_schedule()


class RunContext:
    """Per-run services: a seeded RNG, the budget, the clock, the checkpoint recorder, and the start point
    of a solver that starts from one (:meth:`initial`)."""

    def __init__(
        self,
        rng: np.random.Generator,
        budget_seconds: float | None = None,
        max_checkpoints: int = 200,
        device: str = "cpu",
    ) -> None:
        self.rng = rng
        self.budget_seconds = budget_seconds
        self.device = device
        self.max_checkpoints = max_checkpoints
        self.checkpoints: list[tuple[float, int, Vars]] = []
        #: Set by :mod:`wbench.starts` for the random starts of ``starts=N``: :meth:`initial` then returns a
        #: random feasible point whatever initial point the solver's options name.
        self.random_start = False
        #: A trained solver's policy (``trains = True``): set by the harness from :meth:`Solver.train`.
        self.policy: dict[str, np.ndarray] | None = None
        self._start = time.perf_counter()
        self._paused = 0.0

    def initial(self, problem: Problem, method: str | None = None) -> Vars:
        """The solver's starting point on ``problem``: the named initial point (``problem.initial(method,
        self.rng)``), or, on a random start of ``starts=N``, a random feasible point from :attr:`rng`.

        Solvers that start from a point (``multi_start = True``) take it from here, never from
        ``problem.initial`` directly, so that the shared ``starts`` option reaches them.
        """
        if not self.random_start:
            return problem.initial(method, self.rng)
        if "random" in problem.init_methods:
            return problem.initial("random", self.rng)
        return problem.random_feasible(self.rng)

    # -- time ------------------------------------------------------------------------------------
    def start(self) -> None:
        self._start = time.perf_counter()
        self._paused = 0.0

    def elapsed(self) -> float:
        """Seconds of solver time so far (checkpoint recording excluded)."""
        return time.perf_counter() - self._start - self._paused

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Exclude the enclosed work (recording, scoring a trace) from the solver's time."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._paused += time.perf_counter() - t0

    @property
    def recording_seconds(self) -> float:
        """Time spent copying checkpoints (excluded from the solver's time)."""
        return self._paused

    def expired(self) -> bool:
        """True once the seconds budget is spent: iterative solvers should stop and return their best."""
        return self.budget_seconds is not None and self.elapsed() >= self.budget_seconds

    # -- traces ----------------------------------------------------------------------------------
    @staticmethod
    def wants(iteration: int) -> bool:
        """Whether :meth:`checkpoint` keeps this iteration (a log schedule), so a solver can skip copies."""
        return iteration in _SCHEDULE

    def checkpoint(self, x: Mapping[str, Any], iteration: int, force: bool = False) -> None:
        """Record the current iterate for the anytime curve (kept on a log schedule of iterations)."""
        if not force and iteration not in _SCHEDULE:
            return
        if len(self.checkpoints) >= self.max_checkpoints and not force:
            return
        t0 = time.perf_counter()
        elapsed = t0 - self._start - self._paused
        self.checkpoints.append((elapsed, iteration, to_numpy_vars(x)))
        self._paused += time.perf_counter() - t0


class Solver:
    """Base class of solver plugins.

    Class attributes a subclass sets:

    * ``name``, ``version``, ``description``;
    * ``tags``: a subset of ``baseline``, ``conventional``, ``meta``, ``bound``, ``optimum`` (a solver whose
      answer is a certified global optimum, e.g. ``brb``: scored like any solver, listed apart in leaderboards);
    * ``scenarios``: names of supported scenarios, or ``None`` for a generic solver that works on any
      problem for which :meth:`supports_problem` is true;
    * ``options``: the option schema; ``budget_options`` are shown in the leaderboard's budget column
      even at their defaults, so that e.g. a 10-iteration WMMSE is never mistaken for a converged one;
    * ``multi_start``: ``True`` for a local solver that starts from a point, which it takes from
      :meth:`RunContext.initial`. Such a solver gets the shared option ``starts`` (best of ``N`` runs, the
      first from its ``init``, the others from random feasible points; :mod:`wbench.starts`), shown in the
      budget column, unless it defines its own ``starts`` option;
    * ``uses_torch``, ``gpu`` and ``cpu_only``: a torch solver runs on the run's torch device or declares
      itself CPU-only (:meth:`declines_device`).
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "0"
    description: ClassVar[str] = ""
    tags: ClassVar[frozenset[str]] = frozenset()
    scenarios: ClassVar[tuple[str, ...] | None] = None
    options: ClassVar[dict[str, Param]] = {}
    budget_options: ClassVar[tuple[str, ...]] = ()
    #: Solvers that use torch set this, so that the harness imports torch (and fixes its thread count)
    #: before the clock starts: a one-off import is not the solver's time.
    uses_torch: ClassVar[bool] = False
    #: For a torch solver: ``True`` when it runs on the torch device a run asks for (``--device``, or its own
    #: ``device`` option), its channels, variables and networks moved there. ``False``: its inner steps are
    #: NumPy, SciPy or cvxpy, so it runs on the CPU only, and the harness skips it with a note under a CUDA
    #: device (:meth:`declines_device`, with :attr:`cpu_only` as the reason) rather than run it on the CPU
    #: while the command says ``cuda``. ``auto`` runs either kind: a CPU-only solver on the CPU.
    gpu: ClassVar[bool] = False
    #: Why a CPU-only torch solver cannot run on another device (a phrase, shown in the harness's note).
    cpu_only: ClassVar[str] = "its inner steps run in NumPy on the CPU"
    #: Modules a solver imports lazily (e.g. ``("cvxpy",)``): the harness imports them before the clock
    #: starts, for the same reason. Without this a worker's first run of the solver pays the import.
    imports: ClassVar[tuple[str, ...]] = ()
    multi_start: ClassVar[bool] = False
    #: ``True`` for a solver that learns a policy over training channels first (:meth:`train`).
    trains: ClassVar[bool] = False
    #: For a trained solver: the options that change its policy (the policy cache is keyed on these, and
    #: :meth:`train` sees only these, the others at their defaults); ``None``: every option.
    training_options: ClassVar[tuple[str, ...] | None] = None
    origin: str = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        from . import starts

        starts.declare(cls)

    def resolve_options(self, given: Mapping[str, Any]) -> dict[str, Any]:
        return resolve(self.options, given, f"option for solver {self.name!r}:")

    def supports(self, scenario: str) -> bool:
        return self.scenarios is None or scenario in self.scenarios

    def supports_problem(self, problem: Problem) -> bool:
        """Finer check on a concrete problem (e.g. a baseline needs a named initial point)."""
        return True

    def declines(self, problem: Problem, options: Mapping[str, Any]) -> str | None:
        """Why this solver, with these options, will not run on ``problem`` (``None``: it will).

        The harness skips it for that configuration with a note. The default defers to
        :meth:`supports_problem`; override it for reasons that depend on the options (e.g. a size limit).
        """
        return None if self.supports_problem(problem) else "does not apply"

    def declines_device(self, device: str, options: Mapping[str, Any]) -> str | None:
        """Why this solver will not run on the torch device a run asks for (``None``: it will): its own
        ``device`` option if set, else ``device`` (the run's ``--device``). The harness calls it beside
        :meth:`declines` and skips the solver with a one-line note; solvers without torch ignore the device.

        ``cpu`` and ``auto`` always run (``auto``: CUDA where it is available and :attr:`gpu`, else the CPU);
        ``cuda``/``cuda:N`` is declined by a CPU-only solver (:attr:`cpu_only`) and, for the others, on a
        machine without CUDA.
        """
        if not self.uses_torch:
            return None
        name = str(options.get("device") or device).strip().lower()
        if name in ("cpu", "auto"):
            return None
        if not self.gpu:
            return f"runs on the CPU only ({self.cpu_only}); use --device cpu or auto"
        import torch

        if not torch.cuda.is_available():
            return f"device {name!r} requested but CUDA is not available (use cpu or auto)"
        return None

    def run_device(self, device: str, options: Mapping[str, Any]) -> str:
        """The torch device this solver's runs use when the run asks for ``device``: ``cpu`` for a solver
        without torch or a CPU-only one, else its own ``device`` option if set, else ``device``; ``auto``
        resolves to ``cuda`` where CUDA is available. A run on another device than the CPU is a different
        computation (other rounding, float32 kernels), so the harness keys it apart (:func:`run_key`)."""
        if not (self.uses_torch and self.gpu):
            return "cpu"
        name = str(options.get("device") or device).strip().lower()
        if name == "auto":
            import torch

            name = "cuda" if torch.cuda.is_available() else "cpu"
        return name

    def memory_bytes(self, problem: Problem, options: Mapping[str, Any]) -> int:
        """An estimate of the solver's peak working memory on one ``problem`` (bytes), for the harness's
        up-front check. The default, ``64 x`` the bytes of the variables, covers iterates, gradients and a
        few factorisations of their size; solvers whose state grows otherwise (networks, batches of
        starts) override it."""
        return 64 * sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in problem.variables.values())

    def solve(self, problem: Problem, options: Mapping[str, Any], ctx: RunContext) -> Solution:
        raise NotImplementedError

    def train(self, scenario: Any, params: Mapping[str, Any], options: Mapping[str, Any],
              train_seeds: Any) -> tuple[dict[str, np.ndarray], int]:
        """For ``trains = True``: learn a policy on the training channels ``train_seeds``
        (:class:`wbench.engine.training.TrainingSet`, disjoint from the evaluation channels) and return it as a
        ``dict`` of arrays with the number of episodes used. The harness calls it once per configuration, outside
        the timed runs, caches the policy and hands it to :meth:`solve` as ``ctx.policy``."""
        raise NotImplementedError

    #: Set to True in subclasses that implement :meth:`solve_batch`.
    batched: ClassVar[bool] = False

    def solve_batch(
        self, problems: Sequence[Problem], options: Mapping[str, Any], ctxs: Sequence[RunContext]
    ) -> list[Solution]:
        """Solve several realisations of one configuration at once; must equal per-problem :meth:`solve`."""
        return [self.solve(p, options, c) for p, c in zip(problems, ctxs)]

    def effective_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The values the solver runs with for resolved ``options``: a solver whose option defaults are
        placeholders (e.g. 0 for "the variant's value") fills them in. ``wbench list`` shows these."""
        return dict(options)

    def budget_label(self, options: Mapping[str, Any]) -> str:
        return ",".join(f"{k}={options[k]}" for k in self.budget_options if k in options)

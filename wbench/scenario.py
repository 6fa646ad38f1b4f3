"""The scenario contract: a system model with a seeded generator of channel realisations.

A scenario plugin subclasses :class:`Scenario` and registers an instance through the
``wbench_register_scenarios`` hook. The framework draws realisation *i* with :meth:`Scenario.draw` from a
generator seeded by ``(seed, scenario, i)`` alone (see :mod:`wbench.channels.channelset`), then asks
:meth:`Scenario.problem` to turn the channel into a :class:`~wbench.problem.Problem`.

Seen and scored. Under imperfect channel knowledge a realisation holds data no solver may use: the true channel
behind an estimate, held-out error draws for a sample-average objective. A scenario names those arrays of
:meth:`Scenario.draw` in :attr:`Scenario.hidden`; the framework removes them (and copies the rest, so no array
shares a buffer with a hidden one) before :meth:`Scenario.problem` is called, so the problem a solver receives
cannot hold them: by construction, not by convention. :meth:`Scenario.scoring_problem` then builds, from the
whole realisation, the problem the harness scores the returned point on; the solver's own objective on its
problem is recorded beside it as the in-sample value (their difference is the design's optimism).
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import numpy as np

from .params import Param, ParamError, resolve
from .problem import Problem

Channel = dict[str, np.ndarray]


class Scenario:
    """Base class of scenario plugins.

    Class attributes a subclass sets:

    * ``name``: the name used on the command line;
    * ``description``: one line for ``wbench list``;
    * ``params``: the parameter schema (:class:`~wbench.params.Param` per name);
    * ``default_sweep``: the sweep used when the user gives none, e.g. ``{"snr_db": [0, 10, 20, 30]}``;
    * ``generator_version``: bump it whenever :meth:`draw` would produce different arrays for the same
      seed; it is part of every channel fingerprint, so stale results are refused, not mixed.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    params: ClassVar[dict[str, Param]] = {}
    default_sweep: ClassVar[dict[str, list[Any]]] = {}
    generator_version: ClassVar[str] = "1"
    #: Realisations per configuration when --instances is not given.
    default_instances: ClassVar[int] = 100
    #: Names of arrays of :meth:`draw` that no solver may see (e.g. the true channel behind an estimate,
    #: held-out error draws); they reach only :meth:`scoring_problem`.
    hidden: ClassVar[tuple[str, ...]] = ()
    #: Filled in by the registry: which plugin (module or distribution) contributed the scenario.
    origin: str = ""

    def resolve_params(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Full parameter dict: defaults overlaid with ``given``, validated, then :meth:`check_params`."""
        p = resolve(self.params, given, f"parameter for scenario {self.name!r}:")
        msg = self.check_params(p)
        if msg:
            raise ParamError(f"scenario {self.name}: {msg}")
        return p

    def check_params(self, params: Mapping[str, Any]) -> str | None:
        """Cross-parameter checks (e.g. a weight vector of length K); return an error message or None."""
        return None

    def draw(self, params: Mapping[str, Any], rng: np.random.Generator) -> Channel:
        """One channel realisation as named arrays; must use ``rng`` only, and only params it needs."""
        raise NotImplementedError

    def problem(self, params: Mapping[str, Any], channel: Channel) -> Problem:
        """The optimisation problem for one channel realisation: what a solver receives. The framework
        passes only the arrays a solver may see (:meth:`seen`)."""
        raise NotImplementedError

    def scoring_problem(self, params: Mapping[str, Any], channel: Channel, seen: Problem) -> Problem | None:
        """The problem the harness scores a returned point on, built from the whole realisation ``channel``
        (hidden arrays included) and the solver's problem ``seen``; its :meth:`~wbench.problem.Problem.utility`,
        :meth:`~wbench.problem.Problem.feasibility` and variables decide the verdict (a scenario may delegate
        feasibility to ``seen``, e.g. QoS judged on the solver's own draws). ``None`` (the default): score on
        the solver's problem, and no in-sample value is recorded."""
        return None

    def seen(self, channel: Channel) -> Channel:
        """The arrays of a realisation a solver may see: all but :attr:`hidden`, copied when anything is
        hidden (a view could keep a buffer shared with a hidden array alive)."""
        if not self.hidden:
            return dict(channel)
        missing = sorted(set(self.hidden) - set(channel))
        if missing:
            raise ValueError(f"scenario {self.name!r}: hidden arrays {missing} are not in the realisation")
        return {k: np.array(v, copy=True) for k, v in channel.items() if k not in self.hidden}

    def problems(self, params: Mapping[str, Any], channel: Channel) -> tuple[Problem, Problem | None]:
        """(the solver's problem on the seen arrays, the scoring problem or ``None``) for one realisation."""
        seen = self.problem(params, self.seen(channel))
        return seen, self.scoring_problem(params, channel, seen)

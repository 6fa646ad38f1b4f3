"""The scenario contract: a system model with a seeded generator of channel realisations.

A scenario plugin subclasses :class:`Scenario` and registers an instance through the
``wbench_register_scenarios`` hook. The framework draws realisation *i* with :meth:`Scenario.draw` from a
generator seeded by ``(seed, scenario, i)`` alone (see :mod:`wbench.channels.channelset`), then asks
:meth:`Scenario.problem` to turn the channel into a :class:`~wbench.problem.Problem`.
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
        """The optimisation problem for one channel realisation."""
        raise NotImplementedError

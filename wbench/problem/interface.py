"""The Problem interface: one channel realisation of a scenario as an optimisation problem (:class:`Problem`),
its continuation stage (:class:`WarmStart`) and :data:`ProblemFactory`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from .feasibility import CONSTRAINT_ATOL, Feasibility
from .joint import JointConstraint
from .precoding import PrecodingView
from .sets import BlockPowerBall, PowerBall
from .variables import ROLES, Variable, Vars

if TYPE_CHECKING:  # torch is optional at run time: imported only by the solvers that need it
    import torch


@dataclass
class WarmStart:
    """A simpler problem on the same channel whose solution seeds this one (a continuation stage).

    ``name`` is what solvers' ``warm`` option selects (e.g. ``diagonal`` for a BD-RIS, whose warm start is
    the diagonal RIS on the same channel, seed 000 section VI-B); ``embed`` maps a point of ``problem`` to
    a feasible point of the original problem with the same utility (e.g. ``phi -> diag(phi)``).
    """

    name: str
    problem: "Problem"
    embed: Callable[[Vars], Vars]


@dataclass
class Problem:
    """One channel realisation of a scenario, as an optimisation problem (maximise :meth:`utility`).

    Subclasses implement :meth:`utility`, :meth:`loss_torch` and the initialisers; the rest has
    working defaults built from :attr:`variables`.
    """

    variables: dict[str, Variable]
    scenario: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    #: Names accepted by :meth:`initial`, the first one being the default.
    init_methods: tuple[str, ...] = ("random",)
    #: Constraints coupling several variables, applied after the variable sets (e.g. :class:`ProductPower`).
    joint: tuple[JointConstraint, ...] = ()
    #: Absolute feasibility tolerance of the scenario constraints, in their own units (bit/s/Hz for rates).
    constraint_tol: float = CONSTRAINT_ATOL
    #: Default weight of ``sum_c relu(-c)^2`` in :meth:`penalised_loss_torch` (solver options may override).
    constraint_penalty: float = 1e3

    # -- the model -------------------------------------------------------------------------------
    def utility(self, x: Vars) -> float:
        """The authoritative objective in float64 (e.g. weighted sum rate in bit/s/Hz)."""
        raise NotImplementedError

    def loss_torch(self, x: Mapping[str, "torch.Tensor"]) -> "torch.Tensor":
        """Differentiable loss: the negative utility (plus any penalty the scenario's paper puts in its own
        loss). The generic penalty of :meth:`constraints` is added by :meth:`penalised_loss_torch`, not here."""
        raise NotImplementedError

    def loss_and_grad_numpy(self, x: Vars) -> tuple[float, Vars] | None:
        """:meth:`loss_torch` and its gradient (torch's convention, ``dL/dRe x + i dL/dIm x``) in NumPy, for a
        scenario that writes them out by hand to spare autograd's per-operation overhead (SciPy-driven solvers
        evaluate them thousands of times per run); ``None`` (the default): solvers use torch autograd."""
        return None

    @classmethod
    def loss_torch_batch(cls, problems: Sequence["Problem"], x: Mapping[str, "torch.Tensor"]) -> "torch.Tensor":
        """:meth:`loss_torch` of several realisations at once, for batched solvers: ``x`` holds every
        variable stacked along a leading dimension (``x[name][b]`` belongs to ``problems[b]``, all of this
        class and of the same shapes); returns the vector of the ``len(problems)`` losses.

        This default evaluates them one by one (correct for every scenario); a scenario whose loss
        vectorises overrides it with the same formula on stacked data.
        """
        import torch

        return torch.stack([p.loss_torch({k: v[b] for k, v in x.items()}) for b, p in enumerate(problems)])

    @classmethod
    def penalised_loss_torch_batch(cls, problems: Sequence["Problem"], x: Mapping[str, "torch.Tensor"],
                                   weight: float | None = None) -> "torch.Tensor":
        """:meth:`penalised_loss_torch` of several realisations at once (stacked as in
        :meth:`loss_torch_batch`): :meth:`loss_torch_batch` plus each realisation's constraint penalty.
        A scenario that overrides :meth:`penalised_loss_torch` overrides this too."""
        import torch

        loss = cls.loss_torch_batch(problems, x)
        if not problems[0].has_constraints_torch:
            return loss
        w = [p.constraint_penalty if weight is None else float(weight) for p in problems]
        return loss + torch.stack([w[b] * p.constraint_penalty_torch({k: v[b] for k, v in x.items()})
                                   for b, p in enumerate(problems)])

    def constraints(self, x: Vars) -> dict[str, np.ndarray]:
        """Scenario inequality constraints beyond the variable sets, each ``>= 0`` when satisfied."""
        return {}

    def constraints_torch(self, x: Mapping[str, "torch.Tensor"]) -> dict[str, "torch.Tensor"]:
        """The same constraints as :meth:`constraints` on torch tensors (differentiable), same keys.

        A scenario that overrides :meth:`constraints` overrides this too, or penalty solvers decline it.
        """
        if not self.has_constraints:
            return {}
        raise NotImplementedError(f"scenario {self.scenario!r} has no torch form of its constraints")

    @property
    def has_constraints(self) -> bool:
        """Whether the scenario defines constraints beyond the variable sets (its class overrides them)."""
        return type(self).constraints is not Problem.constraints

    @property
    def has_constraints_torch(self) -> bool:
        return type(self).constraints_torch is not Problem.constraints_torch

    def constraint_penalty_torch(self, x: Mapping[str, "torch.Tensor"]) -> "torch.Tensor":
        """``sum_c sum_i relu(-c_i)^2`` over :meth:`constraints_torch` (zero exactly where they hold)."""
        terms = [(-c).clamp(min=0.0).square().sum() for c in self.constraints_torch(x).values()]
        if not terms:
            first = next(iter(x.values()))
            return first.new_zeros((), dtype=first.real.dtype)
        return sum(terms[1:], terms[0])

    def penalised_loss_torch(self, x: Mapping[str, "torch.Tensor"], weight: float | None = None
                             ) -> "torch.Tensor":
        """What penalty solvers minimise: ``loss_torch(x) + weight * sum_c relu(-c)^2`` over the scenario
        constraints (:meth:`constraints_torch`; ``weight`` defaults to :attr:`constraint_penalty`). Without
        scenario constraints in torch this is ``loss_torch(x)`` itself."""
        loss = self.loss_torch(x)
        if not self.has_constraints_torch:
            return loss
        w = self.constraint_penalty if weight is None else float(weight)
        return loss + w * self.constraint_penalty_torch(x)

    def precoding_view(self, x: Vars) -> PrecodingView:
        """The linear-precoding sub-problem at ``x`` (other variables fixed), for scenarios that have one
        (built with :meth:`PrecodingView.build` from the variable with role ``precoder``)."""
        raise NotImplementedError(f"scenario {self.scenario!r} has no linear-precoding view")

    def miso_view(self, x: Vars) -> PrecodingView:
        """The former name of :meth:`precoding_view`."""
        return self.precoding_view(x)

    def closed_form_optimum(self) -> float | None:
        """The optimal utility where a closed form is known (e.g. one user), else ``None``."""
        return None

    def warm_start(self) -> WarmStart | None:
        """The simpler stage a solver may solve first (``warm=<name>`` options), or ``None``."""
        return None

    def extra_metrics(self, x: Vars) -> dict[str, float]:
        """Further numbers the harness records for a scored point, by name (e.g. a QoS shortfall on held-out
        draws); the leaderboard shows their means as columns. None by default."""
        return {}

    @property
    def has_precoding_view(self) -> bool:
        return type(self).precoding_view is not Problem.precoding_view

    has_miso_view = has_precoding_view

    # -- roles -----------------------------------------------------------------------------------
    def names_with_role(self, role: str) -> tuple[str, ...]:
        """The variables declaring ``role`` (see :data:`ROLES`), in problem order."""
        if role not in ROLES:
            raise ValueError(f"unknown variable role {role!r}; valid: {', '.join(ROLES)}")
        return tuple(n for n, v in self.variables.items() if v.role == role)

    def role_variable(self, role: str) -> str | None:
        """The one variable with ``role``, ``None`` if there is none (an error if there are several)."""
        names = self.names_with_role(role)
        if len(names) > 1:
            raise ValueError(f"several variables have the role {role!r}: {', '.join(names)}")
        return names[0] if names else None

    def resolve_names(self, token: str) -> tuple[str, ...]:
        """A variable name, or a role standing for every variable that declares it (solver options such as
        ``project=precoder`` use this)."""
        token = token.strip()
        if token in self.variables:
            return (token,)
        if token in ROLES and self.names_with_role(token):
            return self.names_with_role(token)
        roles = sorted({v.role for v in self.variables.values() if v.role})
        raise ValueError(f"unknown variable or role {token!r}; variables: {', '.join(self.variables)}"
                         + (f"; roles: {', '.join(roles)}" if roles else ""))

    # -- sets, feasibility, starting points -----------------------------------------------------
    def project(self, x: Vars) -> Vars:
        """Every variable onto its set, then the joint constraints in order (each rescales one variable)."""
        out = {k: self.variables[k].constraint.project(np.asarray(v)) for k, v in x.items()}
        for j in self.joint:
            out = j.project(out)
        return out

    def feasibility(self, x: Vars) -> Feasibility:
        viol: dict[str, float] = {}
        tols: dict[str, float] = {}
        for name, var in self.variables.items():
            value = np.asarray(x[name])
            if value.shape != var.shape:
                raise ValueError(f"variable {name!r} has shape {value.shape}, expected {var.shape}")
            viol[name] = var.constraint.violation(value)
            tols[name] = var.constraint.tol
        for j in self.joint:
            viol[j.name] = j.violation(x)
            tols[j.name] = j.tol
        for name, c in self.constraints(x).items():
            viol[name] = float(np.max(-np.asarray(c), initial=0.0).clip(min=0.0))
            tols[name] = self.constraint_tol
        ok = all(np.isfinite(v) and v <= tols[k] for k, v in viol.items())
        return Feasibility(viol, tols, ok)

    def initial(self, method: str | None = None, rng: np.random.Generator | None = None) -> Vars:
        """A standard feasible starting point by name (see :attr:`init_methods`)."""
        method = method or self.init_methods[0]
        if method not in self.init_methods:
            raise ValueError(f"unknown initial point {method!r}; valid: {', '.join(self.init_methods)}")
        return self._initial(method, rng if rng is not None else np.random.default_rng(0))

    def _initial(self, method: str, rng: np.random.Generator) -> Vars:
        if method != "random":
            raise NotImplementedError(method)
        return self.random_feasible(rng)

    def random_feasible(self, rng: np.random.Generator) -> Vars:
        """A random point projected onto every variable's set (full power for power balls, block by block
        for block budgets), then onto the joint constraints (on their boundary where ``full``)."""
        out: Vars = {}
        for name, var in self.variables.items():
            z = rng.standard_normal(var.shape)
            if var.complex:
                z = (z + 1j * rng.standard_normal(var.shape)) / np.sqrt(2)
            if isinstance(var.constraint, PowerBall):
                z = z * np.sqrt(var.constraint.budget / np.sum(np.abs(z) ** 2))
            elif isinstance(var.constraint, BlockPowerBall) and var.constraint.full:
                z = var.constraint.full_power(z)
            out[name] = var.constraint.project(z)
        for j in self.joint:
            out = j.full_power(out)
        return out


ProblemFactory = Callable[..., Problem]

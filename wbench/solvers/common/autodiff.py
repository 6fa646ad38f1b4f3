"""Torch plumbing shared by the gradient-based solvers (``adam``, ``metaopt``, ``mlbf``, ``multistart``,
``manifold``): moving variables between NumPy and torch, the penalised loss, projections, gradients,
a real parametrisation for SciPy, and seeding.

Gradient convention: for a real loss ``L`` of a complex variable ``z = a + i b`` torch returns
``dL/da + i dL/db`` (twice the conjugate Wirtinger derivative); :func:`loss_and_grad` returns exactly that,
which is the steepest-ascent direction of ``L`` in the real inner product ``Re <x, y>``.

Import this module only inside a solver's ``solve``: torch stays optional for non-neural solvers.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np
import torch

from ...problem import Problem, Vars, to_numpy_vars
from ...solver import RunContext

DTYPES = {True: torch.complex128, False: torch.float64}


#: Values of the solvers' ``dtype`` option: the real and complex torch types of variables and networks.
PRECISIONS = {"float64": (torch.float64, torch.complex128), "float32": (torch.float32, torch.complex64)}


def device_for(ctx: RunContext, requested: str | None = None) -> torch.device:
    """The torch device: ``requested`` (a solver's ``device`` option) or else the run's (``--device``);
    ``auto`` is CUDA when it is available and the CPU otherwise; CUDA only when it is actually available."""
    name = str(requested or ctx.device).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available (use cpu or auto)")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown torch device {name!r}; valid: cpu, cuda, cuda:N, auto") from None


def torch_generator(ctx: RunContext, device: torch.device | None = None) -> torch.Generator:
    """A torch generator seeded from the run's NumPy generator (same seed, same result)."""
    gen = torch.Generator(device=device or "cpu")
    gen.manual_seed(int(ctx.rng.integers(0, 2**63 - 1)))
    return gen


def to_torch(problem: Problem, x: Mapping[str, np.ndarray], device: torch.device | str = "cpu",
             requires_grad: bool = False, precision: str = "float64") -> dict[str, torch.Tensor]:
    """NumPy variables as tensors of the problem's dtypes: float64/complex128, or float32/complex64 with
    ``precision="float32"``."""
    real, cplx = PRECISIONS[precision]
    out = {}
    for name, var in problem.variables.items():
        t = torch.as_tensor(np.asarray(x[name], dtype=var.dtype), device=device)
        t = t.to(cplx if var.complex else real).clone()
        out[name] = t.requires_grad_(requires_grad)
    return out


def to_numpy(x: Mapping[str, torch.Tensor]) -> Vars:
    return to_numpy_vars(x)


def project(problem: Problem, x: Mapping[str, torch.Tensor], names: Iterable[str] | None = None
            ) -> dict[str, torch.Tensor]:
    """Project the named variables (default: all) onto their sets, differentiably; others pass through.
    The joint constraints whose rescaled variable is among them are applied after (in problem order)."""
    names = set(problem.variables if names is None else names)
    out = {k: problem.variables[k].constraint.project_torch(v) if k in names else v for k, v in x.items()}
    for j in problem.joint:
        if j.rescaled in names:
            out = j.project_torch(out)
    return out


def penalised_loss(problem: Problem, x: Mapping[str, torch.Tensor], penalised: Iterable[str] = (),
                   weight: float = 0.0, joint: Iterable[Any] = (), constraint_weight: float | None = None
                   ) -> torch.Tensor:
    """The loss of penalty solvers: ``problem.penalised_loss_torch(x, constraint_weight)`` (the scenario's
    loss plus its constraints' penalty, if any) ``+ weight *`` the set penalties of the variables a solver
    does not project and the penalties of the joint constraints it does not apply."""
    loss = problem.penalised_loss_torch(x, constraint_weight)
    for name in penalised:
        loss = loss + weight * problem.variables[name].constraint.penalty_torch(x[name])
    for j in joint:
        loss = loss + weight * j.penalty_torch(x)
    return loss


def loss_and_grad(problem: Problem, x: Mapping[str, np.ndarray]) -> tuple[float, Vars]:
    """The torch loss and its gradient (convention above) at a NumPy point; the problem's hand-written NumPy
    form (:meth:`~wbench.problem.Problem.loss_and_grad_numpy`) where it has one."""
    fast = problem.loss_and_grad_numpy(x)
    if fast is not None:
        return fast
    xt = to_torch(problem, x, requires_grad=True)
    loss = problem.loss_torch(xt)
    grads = torch.autograd.grad(loss, list(xt.values()), allow_unused=True)
    out = {}
    for (name, t), g in zip(xt.items(), grads):
        out[name] = np.zeros(t.shape, dtype=problem.variables[name].dtype) if g is None else g.detach().numpy()
    return float(loss.detach()), out


# -- real parametrisation (for SciPy) --------------------------------------------------------------
def pack(problem: Problem, x: Mapping[str, np.ndarray]) -> np.ndarray:
    """All variables as one real vector: complex entries as (real, imaginary) pairs."""
    parts = []
    for name, var in problem.variables.items():
        a = np.asarray(x[name], dtype=var.dtype).ravel()
        parts.append(np.stack([a.real, a.imag], axis=-1).ravel() if var.complex else a)
    return np.concatenate(parts) if parts else np.zeros(0)


def unpack(problem: Problem, z: np.ndarray) -> Vars:
    """Inverse of :func:`pack`."""
    out: Vars = {}
    i = 0
    for name, var in problem.variables.items():
        n = int(np.prod(var.shape))
        if var.complex:
            pairs = z[i : i + 2 * n].reshape(n, 2)
            out[name] = (pairs[:, 0] + 1j * pairs[:, 1]).reshape(var.shape)
            i += 2 * n
        else:
            out[name] = z[i : i + n].reshape(var.shape).astype(np.float64)
            i += n
    return out

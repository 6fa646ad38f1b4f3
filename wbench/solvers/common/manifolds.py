"""The manifold vocabulary: the Riemannian manifold behind each constraint set, for pymanopt.

Every variable of a :class:`~wbench.problem.Problem` whose set is a smooth manifold maps to one factor of a
pymanopt ``Product`` manifold (Absil, Mahony, Sepulchre, *Optimization Algorithms on Matrix Manifolds*,
Princeton 2008, ch. 3-4; Townsend, Koep, Weichwald, "Pymanopt: a Python toolbox for optimization on
manifolds using automatic differentiation", JMLR 17, 2016). All factors are Riemannian submanifolds of
``C^n`` (or ``R^n``) with the real metric ``<A, B> = Re tr(A^H B)``, so the Euclidean gradient a factor
expects is ``dL/dRe + i dL/dIm``, which is exactly what torch returns for a real loss of a complex tensor
(:func:`wbench.solvers.common.autodiff.loss_and_grad`): no factor of 2 is needed in this metric. (The conjugate
Wirtinger derivative ``dL/dconj(z)`` is half of it; whoever uses that must double it.)

==========================================  ==================================================================
constraint set                              manifold
==========================================  ==================================================================
``PowerBall(P, full=True)``                 :class:`Sphere` of radius ``sqrt(P)`` in ``C^n`` (``R^n`` for a
                                            real variable), kept in the variable's own shape. A small
                                            complex sphere rather than pymanopt's real ``Sphere`` on the
                                            stacked real/imaginary parts: no packing, and the same metric.
``BlockPowerBall(budgets, full=True)``      :class:`BlockSphere`: a product of spheres, block ``b`` of
                                            radius ``sqrt(budget_b)``, kept in the variable's own shape.
``Unconstrained``                           :class:`Flat`: the whole space ``C^n`` (``R^n``), metric
                                            ``Re <a, b>``, retraction ``x + v``.
``UnitModulus`` (complex)                   pymanopt's ``ComplexCircle`` on the flattened variable (it is
                                            correct as shipped).
``Unitary(symmetric=False)`` (complex)      :class:`UnitaryGroup`, pymanopt's ``UnitaryGroup`` fixed (below).
``BlockUnitary(g, symmetric=False)``        :class:`UnitaryGroup` with ``k = n / g`` copies (points
                                            ``(k, g, g)``), assembled block-diagonally; the zero off-block
                                            entries are not variables.
anything else                               no mapping: :func:`unsupported_reason` says why, and the solver
                                            declines (symmetric unitary, ``Box``, ``Simplex``, a power ball
                                            with ``full=False``, real unit-modulus or unitary variables,
                                            problems with scenario ``constraints``, joint constraints such
                                            as ``ProductPower``: their set is not a product of the
                                            variables' manifolds).
==========================================  ==================================================================

The fix of ``pymanopt.manifolds.UnitaryGroup`` (2.2.1; DESIGN.md, "Known pitfalls"): tangent vectors at
``X`` are stored as ``Omega`` in ``X Omega`` with ``Omega`` skew-*Hermitian* (the Lie algebra u(n)), but the
shipped ``projection`` takes the skew-*symmetric* part of ``X^H G`` (real transpose, so the result is not in
u(n): its imaginary symmetric part is lost and a skew-symmetric imaginary part is kept), and
``inner_product`` returns the complex ``tr(A^H B)``, not its real part. Conjugate gradient then
stalls far from the optimum. :class:`UnitaryGroup` projects with ``skewh(X^H G) = (X^H G - G^H X) / 2`` and
returns ``Re tr(A^H B)``; it uses the polar retraction, which is second order (so that the Riemannian
Hessian can be checked by a second-order Taylor expansion). Its Riemannian Hessian is pymanopt's own
``skewh(X^H ehess[X Omega] - Omega herm(X^H egrad))``, which is right once the gradient is.

None of these manifolds draws random points: a solver passes its own starting point (``x0``) so that all
randomness comes from the run's generator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ...problem import (BlockPowerBall, BlockUnitary, PowerBall, Problem, Unconstrained, Unitary, UnitModulus,
                       Variable, Vars)

if TYPE_CHECKING:  # pymanopt is imported lazily (inside the solver) so that `wbench list` stays light
    from pymanopt.manifolds.manifold import Manifold


def _skewh(a: np.ndarray) -> np.ndarray:
    return 0.5 * (a - np.conj(np.swapaxes(a, -1, -2)))


def _no_random(*_: Any) -> Any:
    raise NotImplementedError("wbench manifolds draw no random points: pass a start drawn from ctx.rng")


def _classes() -> tuple[type, type]:
    """Build the two manifold classes on first use (they subclass pymanopt, imported only here)."""
    global _UNITARY, _SPHERE
    if _UNITARY is not None:
        return _UNITARY, _SPHERE
    from pymanopt.manifolds import UnitaryGroup as _PymanoptUnitaryGroup
    from pymanopt.manifolds.manifold import RiemannianSubmanifold

    class FixedUnitaryGroup(_PymanoptUnitaryGroup):
        """pymanopt's ``UnitaryGroup`` with the skew-Hermitian projection and the real inner product."""

        def __init__(self, n: int, *, k: int = 1) -> None:
            super().__init__(n, k=k, retraction="polar")

        def inner_product(self, point: np.ndarray, tangent_vector_a: np.ndarray,
                          tangent_vector_b: np.ndarray) -> float:
            return float(np.real(np.vdot(tangent_vector_a, tangent_vector_b)))

        def projection(self, point: np.ndarray, vector: np.ndarray) -> np.ndarray:
            return _skewh(np.conj(np.swapaxes(point, -1, -2)) @ vector)

        def to_tangent_space(self, point: np.ndarray, vector: np.ndarray) -> np.ndarray:
            return _skewh(vector)

        def zero_vector(self, point: np.ndarray) -> np.ndarray:
            return np.zeros_like(point, dtype=np.complex128)

        random_point = _no_random
        random_tangent_vector = _no_random

    class Sphere(RiemannianSubmanifold):
        """``{x : ||x||_F = radius}`` in ``C^shape`` (or ``R^shape``), metric ``Re <a, b>``."""

        def __init__(self, shape: tuple[int, ...], radius: float, complex_: bool = True) -> None:
            self._shape = tuple(shape)
            self._radius = float(radius)
            self._complex = complex_
            n = int(np.prod(self._shape))
            kind = "C" if complex_ else "R"
            super().__init__(f"Sphere of radius {radius:.6g} in {kind}^{self._shape}",
                             (2 * n if complex_ else n) - 1)

        @property
        def typical_dist(self) -> float:
            return float(np.pi * self._radius)

        def inner_product(self, point: np.ndarray, tangent_vector_a: np.ndarray,
                          tangent_vector_b: np.ndarray) -> float:
            return float(np.real(np.vdot(tangent_vector_a, tangent_vector_b)))

        def norm(self, point: np.ndarray, tangent_vector: np.ndarray) -> float:
            return float(np.linalg.norm(tangent_vector))

        def projection(self, point: np.ndarray, vector: np.ndarray) -> np.ndarray:
            return vector - (np.real(np.vdot(point, vector)) / self._radius**2) * point

        to_tangent_space = projection

        def weingarten(self, point: np.ndarray, tangent_vector: np.ndarray,
                       normal_vector: np.ndarray) -> np.ndarray:
            # Shape operator of a sphere of radius r: -<x, n> u / r^2.
            return -(np.real(np.vdot(point, normal_vector)) / self._radius**2) * tangent_vector

        def retraction(self, point: np.ndarray, tangent_vector: np.ndarray) -> np.ndarray:
            y = point + tangent_vector
            return y * (self._radius / np.linalg.norm(y))

        def exp(self, point: np.ndarray, tangent_vector: np.ndarray) -> np.ndarray:
            t = np.linalg.norm(tangent_vector) / self._radius
            return point * np.cos(t) + tangent_vector * np.sinc(t / np.pi)

        def dist(self, point_a: np.ndarray, point_b: np.ndarray) -> float:
            c = np.real(np.vdot(point_a, point_b)) / self._radius**2
            return float(self._radius * np.arccos(np.clip(c, -1.0, 1.0)))

        def transport(self, point_a: np.ndarray, point_b: np.ndarray,
                      tangent_vector_a: np.ndarray) -> np.ndarray:
            return self.projection(point_b, tangent_vector_a)

        def zero_vector(self, point: np.ndarray) -> np.ndarray:
            return np.zeros(self._shape, dtype=np.complex128 if self._complex else np.float64)

        random_point = _no_random
        random_tangent_vector = _no_random

    class BlockSphere(RiemannianSubmanifold):
        """``{x : ||x_b||_F = radius_b for every block b}`` (blocks of indices along ``axis``), a product of
        spheres in ``C^shape`` (or ``R^shape``), metric ``Re <a, b>``; every operation is the sphere's,
        block by block."""

        def __init__(self, shape: tuple[int, ...], radii: Sequence[float], sizes: Sequence[int], axis: int,
                     complex_: bool = True) -> None:
            self._shape = tuple(shape)
            self._complex = complex_
            self._axis = axis % len(self._shape)
            index = np.repeat(np.arange(len(sizes)), sizes)
            view = [1] * len(self._shape)
            view[self._axis] = -1
            self._index = np.broadcast_to(index.reshape(view), self._shape)
            self._radii = np.asarray(radii, dtype=float)
            self._nb = len(sizes)
            n = int(np.prod(self._shape))
            kind = "C" if complex_ else "R"
            super().__init__(f"{self._nb} spheres on blocks of {kind}^{self._shape}",
                             (2 * n if complex_ else n) - self._nb)

        def _sums(self, values: np.ndarray) -> np.ndarray:
            return np.bincount(self._index.ravel(), weights=np.ravel(values), minlength=self._nb)

        def _spread(self, per_block: np.ndarray) -> np.ndarray:
            return per_block[self._index]

        @property
        def typical_dist(self) -> float:
            return float(np.pi * np.sqrt(np.sum(self._radii**2)))

        def inner_product(self, point: np.ndarray, tangent_vector_a: np.ndarray,
                          tangent_vector_b: np.ndarray) -> float:
            return float(np.real(np.vdot(tangent_vector_a, tangent_vector_b)))

        def norm(self, point: np.ndarray, tangent_vector: np.ndarray) -> float:
            return float(np.linalg.norm(tangent_vector))

        def projection(self, point: np.ndarray, vector: np.ndarray) -> np.ndarray:
            radial = self._sums(np.real(np.conj(point) * vector)) / self._radii**2
            return vector - self._spread(radial) * point

        to_tangent_space = projection

        def weingarten(self, point: np.ndarray, tangent_vector: np.ndarray,
                       normal_vector: np.ndarray) -> np.ndarray:
            radial = self._sums(np.real(np.conj(point) * normal_vector)) / self._radii**2
            return -self._spread(radial) * tangent_vector

        def retraction(self, point: np.ndarray, tangent_vector: np.ndarray) -> np.ndarray:
            y = point + tangent_vector
            norms = np.sqrt(self._sums(np.abs(y) ** 2))
            return y * self._spread(self._radii / norms)

        def exp(self, point: np.ndarray, tangent_vector: np.ndarray) -> np.ndarray:
            t = np.sqrt(self._sums(np.abs(tangent_vector) ** 2)) / self._radii
            return point * self._spread(np.cos(t)) + tangent_vector * self._spread(np.sinc(t / np.pi))

        def dist(self, point_a: np.ndarray, point_b: np.ndarray) -> float:
            c = self._sums(np.real(np.conj(point_a) * point_b)) / self._radii**2
            return float(np.linalg.norm(self._radii * np.arccos(np.clip(c, -1.0, 1.0))))

        def transport(self, point_a: np.ndarray, point_b: np.ndarray,
                      tangent_vector_a: np.ndarray) -> np.ndarray:
            return self.projection(point_b, tangent_vector_a)

        def zero_vector(self, point: np.ndarray) -> np.ndarray:
            return np.zeros(self._shape, dtype=np.complex128 if self._complex else np.float64)

        random_point = _no_random
        random_tangent_vector = _no_random

    class Flat(RiemannianSubmanifold):
        """The whole space ``C^shape`` (or ``R^shape``) with the metric ``Re <a, b>``."""

        def __init__(self, shape: tuple[int, ...], complex_: bool = True) -> None:
            self._shape = tuple(shape)
            self._complex = complex_
            n = int(np.prod(self._shape))
            super().__init__(f"{'C' if complex_ else 'R'}^{self._shape}", 2 * n if complex_ else n)

        @property
        def typical_dist(self) -> float:
            return float(np.sqrt(np.prod(self._shape)))

        def inner_product(self, point: np.ndarray, tangent_vector_a: np.ndarray,
                          tangent_vector_b: np.ndarray) -> float:
            return float(np.real(np.vdot(tangent_vector_a, tangent_vector_b)))

        def norm(self, point: np.ndarray, tangent_vector: np.ndarray) -> float:
            return float(np.linalg.norm(tangent_vector))

        def projection(self, point: np.ndarray, vector: np.ndarray) -> np.ndarray:
            return np.asarray(vector)

        to_tangent_space = projection

        def weingarten(self, point: np.ndarray, tangent_vector: np.ndarray,
                       normal_vector: np.ndarray) -> np.ndarray:
            return np.zeros_like(tangent_vector)

        def retraction(self, point: np.ndarray, tangent_vector: np.ndarray) -> np.ndarray:
            return point + tangent_vector

        exp = retraction

        def dist(self, point_a: np.ndarray, point_b: np.ndarray) -> float:
            return float(np.linalg.norm(point_a - point_b))

        def transport(self, point_a: np.ndarray, point_b: np.ndarray,
                      tangent_vector_a: np.ndarray) -> np.ndarray:
            return np.asarray(tangent_vector_a)

        def zero_vector(self, point: np.ndarray) -> np.ndarray:
            return np.zeros(self._shape, dtype=np.complex128 if self._complex else np.float64)

        random_point = _no_random
        random_tangent_vector = _no_random

    _UNITARY, _SPHERE = FixedUnitaryGroup, Sphere
    _EXTRA["block_sphere"], _EXTRA["flat"] = BlockSphere, Flat
    return _UNITARY, _SPHERE


_UNITARY: Any = None
_SPHERE: Any = None
_EXTRA: dict[str, Any] = {}
_PRODUCT: Any = None


def _product_class() -> type:
    """pymanopt's ``Product`` with a per-factor ``embedding``.

    pymanopt hands a Euclidean Hessian-vector product the tangent vector in its ambient form through
    ``manifold.embedding``; ``Product`` does not forward that call, so a unitary factor would pass its
    Lie-algebra coordinates ``Omega`` instead of ``X Omega`` and the ``tr`` Hessian would be wrong.
    """
    global _PRODUCT
    if _PRODUCT is None:
        from pymanopt.manifolds import Product

        class EmbeddingProduct(Product):
            def embedding(self, point: Sequence[np.ndarray], tangent_vector: Sequence[np.ndarray]) -> list:
                return [m.embedding(p, v) for m, p, v in zip(self.manifolds, point, tangent_vector)]

        _PRODUCT = EmbeddingProduct
    return _PRODUCT


def UnitaryGroup(n: int, *, k: int = 1) -> "Manifold":
    """The fixed unitary group ``U(n)^k`` (see the module docstring)."""
    return _classes()[0](n, k=k)


def Sphere(shape: Sequence[int], radius: float, complex_: bool = True) -> "Manifold":
    """The sphere of the given radius in ``C^shape`` (``R^shape`` with ``complex_=False``)."""
    return _classes()[1](tuple(shape), radius, complex_)


def BlockSphere(shape: Sequence[int], radii: Sequence[float], sizes: Sequence[int], axis: int = 0,
                complex_: bool = True) -> "Manifold":
    """One sphere per block of indices along ``axis`` (the full-power set of :class:`BlockPowerBall`)."""
    _classes()
    return _EXTRA["block_sphere"](tuple(shape), radii, sizes, axis, complex_)


def Flat(shape: Sequence[int], complex_: bool = True) -> "Manifold":
    """The whole space (an :class:`~wbench.problem.Unconstrained` variable)."""
    _classes()
    return _EXTRA["flat"](tuple(shape), complex_)


# -- mapping constraint sets to manifold factors -----------------------------------------------------
@dataclass(frozen=True)
class Factor:
    """One variable as a manifold factor: ``embed`` maps a manifold point to the variable, ``chart`` back.

    Both maps are linear isometries (a reshape, or the block-diagonal assembly and extraction), so
    ``chart`` is the adjoint of ``embed`` and also pulls a Euclidean gradient back onto the factor.
    """

    name: str
    kind: str  # "sphere", "blocksphere", "flat", "circle", "unitary" or "block"
    shape: tuple[int, ...]
    size: float = 0.0  # sphere radius, or block size for "block"
    complex: bool = True
    blocks: Any = None  # the BlockPowerBall of a "blocksphere"

    def manifold(self) -> "Manifold":
        if self.kind == "sphere":
            return Sphere(self.shape, self.size, self.complex)
        if self.kind == "blocksphere":
            c = self.blocks
            return BlockSphere(self.shape, np.sqrt(c.budgets), c.sizes, c.axis, self.complex)
        if self.kind == "flat":
            return Flat(self.shape, self.complex)
        if self.kind == "circle":
            from pymanopt.manifolds import ComplexCircle

            return ComplexCircle(int(np.prod(self.shape)))
        if self.kind == "unitary":
            return UnitaryGroup(self.shape[0])
        g = int(self.size)
        return UnitaryGroup(g, k=self.shape[0] // g)

    def chart(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.complex128 if self.complex else np.float64)
        if self.kind == "circle":
            return x.ravel().copy()
        if self.kind == "block":
            g = int(self.size)
            k = self.shape[0] // g
            return np.stack([x[i * g:(i + 1) * g, i * g:(i + 1) * g] for i in range(k)])
        return x.copy()

    def embed(self, p: np.ndarray) -> np.ndarray:
        if self.kind == "circle":
            return np.asarray(p).reshape(self.shape)
        if self.kind == "block":
            g = int(self.size)
            out = np.zeros(self.shape, dtype=np.complex128)
            for i, blk in enumerate(np.asarray(p)):
                out[i * g:(i + 1) * g, i * g:(i + 1) * g] = blk
            return out
        return np.asarray(p)


def _factor(name: str, var: Variable) -> Factor | str:
    """The factor of one variable, or the reason it has none."""
    c = var.constraint
    shape = tuple(var.shape)
    if isinstance(c, PowerBall):
        budget = np.asarray(c.budget, dtype=float)
        if budget.ndim != 0:
            return f"{name}: per-group power budgets are not a sphere"
        if not c.full:
            return f"{name}: power ball with full=False (optima need not be on the sphere)"
        if not float(budget) > 0:
            return f"{name}: power budget must be positive"
        return Factor(name, "sphere", shape, float(np.sqrt(float(budget))), var.complex)
    if isinstance(c, BlockPowerBall):
        if not c.full:
            return f"{name}: block power budgets with full=False (optima need not be on the spheres)"
        try:
            c._check(shape)
        except ValueError as exc:
            return f"{name}: {exc}"
        return Factor(name, "blocksphere", shape, 0.0, var.complex, c)
    if isinstance(c, Unconstrained):
        return Factor(name, "flat", shape, 0.0, var.complex)
    if isinstance(c, UnitModulus):
        if not var.complex:
            return f"{name}: real unit-modulus entries (+-1) are not a manifold to descend on"
        return Factor(name, "circle", shape)
    if isinstance(c, (Unitary, BlockUnitary)):
        if c.symmetric:
            return f"{name}: symmetric unitary sets have no manifold here"
        if not var.complex:
            return f"{name}: real (orthogonal) matrices are not mapped"
        if len(shape) != 2 or shape[0] != shape[1]:
            return f"{name}: unitary variable must be square, has shape {shape}"
        if isinstance(c, BlockUnitary):
            if c.group_size < 1 or shape[0] % c.group_size:
                return f"{name}: size {shape[0]} is not a multiple of group_size {c.group_size}"
            return Factor(name, "block", shape, float(c.group_size))
        return Factor(name, "unitary", shape)
    return f"{name}: {c.describe()} has no manifold"


def _has_scenario_constraints(problem: Problem) -> bool:
    if type(problem).constraints is Problem.constraints:
        return False
    probe = problem.random_feasible(np.random.default_rng(0))
    return bool(problem.constraints(probe))


def unsupported_reason(problem: Problem) -> str | None:
    """Why the problem has no product-manifold formulation, or ``None`` when it has one."""
    if not problem.variables:
        return "problem has no variables"
    for name, var in problem.variables.items():
        f = _factor(name, var)
        if isinstance(f, str):
            return f
    if problem.joint:
        return (f"joint constraint {problem.joint[0].describe()} couples variables: its set is not a product "
                f"of the variables' manifolds")
    if _has_scenario_constraints(problem):
        return "scenario constraints beyond the variable sets"
    return None


class ProductMap:
    """The product manifold of a problem's variables, with maps between its points and the variables."""

    def __init__(self, problem: Problem) -> None:
        reason = unsupported_reason(problem)
        if reason is not None:
            raise ValueError(f"no manifold formulation: {reason}")
        self.factors = [_factor(n, v) for n, v in problem.variables.items()]
        self.manifold = _product_class()([f.manifold() for f in self.factors])  # type: ignore[union-attr]

    def to_points(self, x: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Variables (on their sets) as a point of the product manifold."""
        return [f.chart(x[f.name]) for f in self.factors]  # type: ignore[union-attr]

    def to_vars(self, points: Sequence[np.ndarray]) -> Vars:
        return {f.name: f.embed(p) for f, p in zip(self.factors, points)}  # type: ignore[union-attr]

    def pull_back(self, grads: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Euclidean gradients (or Hessian-vector products) w.r.t. the variables, on the factors."""
        return self.to_points(grads)

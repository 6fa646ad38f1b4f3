"""Fractional programming (FP) for weighted sum rate: the Lagrangian dual and quadratic transforms.

K. Shen, W. Yu, "Fractional programming for communication systems -- Part I: power control and
beamforming" and "Part II: uplink scheduling via matching", IEEE Trans. Signal Process. 66(10), 2018.
For the MU-MISO downlink (SCENARIOS.md section 1) with ``g_kj = h_k^H v_j``, ``T_k = sum_j |g_kj|^2 +
sigma2_k`` and ``SINR_k = |g_kk|^2 / (T_k - |g_kk|^2)``, the Lagrangian dual transform (Part II, Theorem 3)
takes the logarithms out of the ratios,

    f(V, gamma) = sum_k alpha_k log(1 + gamma_k) - sum_k alpha_k gamma_k
                  + sum_k alpha_k (1 + gamma_k) |g_kk|^2 / T_k,

which equals ``ln 2 * WSR(V)`` at ``gamma_k = SINR_k`` (its maximiser), and the multidimensional
quadratic transform (Part I, Theorem 2, one auxiliary ``y_k`` per ratio) makes it concave in ``V``:

    f_q(V, gamma, y) = sum_k alpha_k log(1 + gamma_k) - sum_k alpha_k gamma_k
                       + sum_k 2 sqrt(alpha_k (1 + gamma_k)) Re(conj(y_k) g_kk) - sum_k |y_k|^2 T_k.

One iteration maximises ``f_q`` over each block in closed form, from the current ``V``:

    gamma_k = SINR_k(V)
    y_k     = sqrt(alpha_k (1 + gamma_k)) g_kk / T_k
    V       = argmin_{||V||_F^2 <= P} tr(V^H A V) - 2 Re tr(B^H V),
              A = sum_k |y_k|^2 h_k h_k^H,   b_k = sqrt(alpha_k (1 + gamma_k)) y_k h_k,

i.e. ``v_k = (A + mu I)^{-1} b_k`` with the power multiplier ``mu >= 0`` set so that the budget holds
(``mu = 0`` when the unconstrained minimiser fits). Since ``f_q <= f <= ln 2 * WSR`` with equality at the
block optima, the weighted sum rate never decreases (Part I, Section IV; Part II, Algorithm 3).

Substituting shows ``|y_k|^2 = alpha_k w_k |u_k|^2`` and ``sqrt(alpha_k (1 + gamma_k)) y_k = alpha_k w_k u_k``
with WMMSE's receiver ``u_k = g_kk / T_k`` and weight ``w_k = 1 + SINR_k``: the ``V`` sub-problem is WMMSE's
(Shen & Yu, Part II, Section IV-C, show this equivalence). So ``fp`` and ``wmmse`` follow the same iterates
from the same start, which the tests check as an oracle for both; the ``V`` step is solved by the same
exact routine (:func:`wbench.solvers.wmmse.wmmse._ball_step`: eigendecomposition of ``A``, the multiplier
by Newton's method safeguarded by bisection on a bracket, then a rescale onto the power sphere).

Only a single total power budget is implemented (per-block budgets are declined); per-user noise (fixed
streams' interference) is handled. Starts and stopping rule as :mod:`wbench.solvers.wmmse.wmmse`.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ...hookspecs import hookimpl
from ...params import Param
from ...rates import sinr_parts
from .wmmse import Wmmse, _ball_step, sweep_stack


def fp_surrogate(H: np.ndarray, alpha: np.ndarray, sigma2: np.ndarray, G: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The gamma and y steps at gains ``G`` (n, K, K): ``(gamma, y, A, B)`` of the V sub-problem."""
    signal, noise_int = sinr_parts(G, sigma2)
    total = signal + noise_int
    gamma = signal / noise_int
    root = np.sqrt(alpha * (1.0 + gamma))
    y = root * np.diagonal(G, axis1=1, axis2=2) / total
    Ht = H.transpose(0, 2, 1)  # column k is h_k
    A = (Ht * (y.real**2 + y.imag**2)[:, None, :]) @ H.conj()
    B = Ht * (root * y)[:, None, :]
    return gamma, y, A, B


def fp_stack(
    H: np.ndarray,
    alpha: np.ndarray,
    power: np.ndarray,
    sigma2: np.ndarray,
    V0: np.ndarray,
    max_iter: int,
    tol: float,
    on_sweep: Callable[[int, np.ndarray, np.ndarray, np.ndarray], None] | None = None,
    stop: Callable[[], bool] | None = None,
    budgets: np.ndarray | None = None,
    block_index: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FP on each of ``n`` instances; the signature and results of :func:`~.wmmse.wmmse_stack`.

    ``budgets`` must be ``None`` (one total budget ``power`` per instance)."""
    if budgets is not None and np.shape(budgets)[-1] > 1:
        raise ValueError("fp: per-block budgets are not implemented")
    V = np.array(V0, dtype=np.complex128)

    def step(i: np.ndarray, V: np.ndarray, G: np.ndarray) -> np.ndarray:
        _, _, A, B = fp_surrogate(H[i], alpha[i], sigma2[i], G[i])
        return _ball_step(A, B, power[i])

    return sweep_stack(V, H.conj() @ V, alpha, sigma2, step, lambda i, Vn: H[i].conj() @ Vn, max_iter, tol,
                       on_sweep, stop)


class Fp(Wmmse):
    """FP with the quadratic transform (Shen & Yu 2018), best of ``starts`` runs, batched like ``wmmse``."""

    name = "fp"
    version = "1"
    description = "fractional programming, Lagrangian dual + quadratic transform (Shen & Yu 2018), best of n starts"
    tags = frozenset({"conventional"})
    options = {
        "max_iter": Param(100, "FP iterations per start", min=1),
        "tol": Param(1e-4, "stop a start when its WSR changes by <= tol (bit/s/Hz)", min=0),
        "starts": Param(10, "number of starts; the best final WSR is kept", min=1),
        "init": Param(
            "random",
            "first start: a named initial point of the scenario (miso: random, mrt, zf, rzf; bdris: random, "
            "mrt); the other starts are random feasible points",
        ),
    }
    budget_options = ("max_iter", "tol", "starts", "init")
    _run = staticmethod(fp_stack)
    per_block_budgets = False


@hookimpl
def wbench_register_solvers(register) -> None:
    register(Fp())

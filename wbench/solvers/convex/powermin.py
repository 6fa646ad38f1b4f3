"""Is an SINR point achievable under the power budget? Downlink power minimisation with SINR targets.

For channels ``h_k`` (rows of ``H``, ``y_k = h_k^H x``), noise ``sigma2`` and targets ``gamma_k >= 0``:

    P_min(gamma) = min_V  sum_k ||v_k||^2
                   s.t.   |h_k^H v_k|^2 / (sum_{j != k} |h_k^H v_j|^2 + sigma2) >= gamma_k   for all k,

and ``gamma`` is achievable under the budget ``P`` iff ``P_min(gamma) <= P`` (``P_min = inf`` where no power
achieves the targets). Two exact methods answer it:

* :func:`fixed_point` (the default of ``brb``): uplink-downlink duality. The problem is convex in disguise
  and strong duality holds (M. Bengtsson, B. Ottersten, "Optimal and suboptimal transmit beamforming", in
  *Handbook of Antennas in Wireless Communications*, 2001; A. Wiesel, Y. C. Eldar, S. Shamai, "Linear
  precoding via conic optimization for fixed MIMO receivers", IEEE Trans. Signal Process. 54(1), 2006,
  Section III). The dual variables ``lambda`` (the virtual uplink powers) are the least fixed point of

      lambda_k = I_k(lambda) = gamma_k / (h_k^H S_{-k}(lambda)^{-1} h_k),   S_{-k} = I + sum_{j != k} lambda_j h_j h_j^H,

  with ``P_min = sigma2 sum_k lambda_k`` (Wiesel et al. eq. (23)-(25); the iteration is that of
  F. Rashid-Farrokhi, K. J. R. Liu, L. Tassiulas, "Transmit beamforming and power control for cellular
  wireless systems", IEEE J. Sel. Areas Commun. 16(8), 1998, and M. Schubert, H. Boche, "Solution of the
  multiuser downlink beamforming problem with individual SINR constraints", IEEE Trans. Veh. Technol. 53(1),
  2004). ``I_k`` is a standard interference function (R. D. Yates, "A framework for uplink power control in
  cellular radio systems", IEEE J. Sel. Areas Commun. 13(7), 1995): positive, monotone, and concave (a
  minimum over receive filters of functions affine in ``lambda``), so the iteration from ``lambda = 0``
  increases monotonically to the least fixed point when one exists and diverges otherwise. Hence every
  iterate is a *lower* bound on the dual optimum: once ``sigma2 sum lambda > P`` the point is certified
  infeasible. Feasibility is certified constructively: the beam directions ``S(lambda)^{-1} h_k`` of the
  current iterate with the downlink powers that meet every target with equality (a ``K x K`` linear system,
  Wiesel et al. eq. (26)) form a precoder; if those powers are positive and sum to at most ``P`` the precoder
  proves the point feasible (its SINRs are then checked directly; a power above ``P`` by rounding only,
  ``1e-9`` relative, is scaled onto the budget first, which a point exactly on the boundary needs). Neither certificate rests on the
  iteration having converged; where neither comes within the iteration cap (a point on the boundary itself,
  to rounding) the answer is ``undecided``, which ``brb`` treats conservatively either way.
  ``S_{-k}^{-1}`` comes from the full ``S`` by Sherman-Morrison: ``h_k^H S_{-k}^{-1} h_k = x_k / (1 - lambda_k
  x_k)`` with ``x_k = h_k^H S^{-1} h_k``, so ``I_k = gamma_k (1 / x_k - lambda_k)``.
* :class:`SocpPowerMin` (``brb[method=socp]``, and the reference in the tests): the second-order cone
  programme of Wiesel et al. (Section III, eq. (13)), with the phase of ``h_k^H v_k`` fixed to real:

      min ||V||_F  s.t.  Re(h_k^H v_k) >= sqrt(gamma_k / (1 + gamma_k)) || [h_k^H V, sigma] ||,  Im(h_k^H v_k) = 0,

  written once with cvxpy and a nonnegative :class:`cvxpy.Parameter` for the coefficients (a DPP problem, so
  re-solving for new targets reuses the compiled problem), solved by Clarabel (SCS if Clarabel fails).
  Its verdict holds to the solver's tolerance, not exactly; the precoder it returns is checked like the fixed
  point's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ...rates import sinr_parts

Verdict = Literal["feasible", "infeasible", "undecided"]

#: Relative slack on a constructed precoder's SINRs (rounding in the power solve) before it counts as meeting
#: its targets; the rates ``brb`` reports come from the precoder itself, never from the targets.
SINR_RTOL = 1e-9


@dataclass
class PowerMinResult:
    """``verdict`` on the targets; ``V`` (``Nt x K``) a precoder meeting them within the budget when
    feasible; ``power`` the minimum power where it was computed (``inf`` if the targets are unachievable,
    a lower bound when certified infeasible by the fixed point); ``iterations``."""

    verdict: Verdict
    V: np.ndarray | None
    power: float
    iterations: int


def sinr_targets(rates: np.ndarray) -> np.ndarray:
    """``gamma_k = 2^{r_k} - 1`` (exact for small rates)."""
    return np.expm1(np.asarray(rates, dtype=np.float64) * np.log(2.0))


#: The same for the SOCP's precoder, which meets its constraints to the interior-point solver's accuracy.
SOCP_SINR_RTOL = 1e-6


def _meets(H: np.ndarray, V: np.ndarray, gamma: np.ndarray, sigma2: float, power: float,
           rtol: float = SINR_RTOL) -> bool:
    """Whether ``V`` meets the targets within the budget (up to ``rtol`` on the SINRs)."""
    signal, rest = sinr_parts(H.conj() @ V, sigma2)
    within = float(np.sum(np.abs(V) ** 2)) <= power * (1.0 + 1e-12)
    return within and bool(np.all(signal >= gamma * rest * (1.0 - rtol)))


def downlink_precoder(H: np.ndarray, lam: np.ndarray, gamma: np.ndarray, sigma2: float
                      ) -> tuple[np.ndarray, float] | None:
    """The precoder with directions ``S(lam)^{-1} h_k`` and the powers meeting every target with equality
    (``None`` when those powers are not all positive: these directions cannot meet the targets)."""
    K, Nt = H.shape
    S = np.eye(Nt) + (H.T * lam) @ H.conj()
    U = np.linalg.solve(S, H.T)  # column k: S^{-1} h_k
    U /= np.linalg.norm(U, axis=0, keepdims=True)
    act = np.flatnonzero(gamma > 0)
    V = np.zeros((Nt, K), dtype=np.complex128)
    if act.size == 0:
        return V, 0.0
    G = np.abs(H[act].conj() @ U[:, act]) ** 2  # G[k, j] = |h_k^H u_j|^2
    M = -G
    M[np.diag_indices_from(M)] = np.diagonal(G) / gamma[act]
    try:
        p = np.linalg.solve(M, np.full(act.size, float(sigma2)))
    except np.linalg.LinAlgError:
        return None
    if not np.all(np.isfinite(p)) or np.any(p <= 0):
        return None
    V[:, act] = U[:, act] * np.sqrt(p)
    return V, float(p.sum())


def fixed_point(H: np.ndarray, gamma: np.ndarray, sigma2: float, power: float, max_iter: int = 3000,
                tol: float = 1e-13) -> PowerMinResult:
    """Decide ``P_min(gamma) <= power`` by the monotone fixed-point iteration (module docstring).

    ``infeasible`` is certified by an iterate (a lower bound on the dual optimum) above the budget;
    ``feasible`` by a precoder built from an iterate that meets the targets within the budget. The
    construction is tried once the iteration has nearly settled (relative step below ``1e-4``) and every
    few iterations after; ``undecided`` if neither certificate appears within ``max_iter`` iterations or the
    iteration stalls (relative step below ``tol``) without one.
    """
    H = np.asarray(H, dtype=np.complex128)
    gamma = np.asarray(gamma, dtype=np.float64)
    K, Nt = H.shape
    if not np.any(gamma > 0):
        return PowerMinResult("feasible", np.zeros((Nt, K), dtype=np.complex128), 0.0, 0)
    lam = np.zeros(K)
    budget = float(power) / float(sigma2) * (1.0 + 1e-12)
    last_try = -10
    for it in range(1, max_iter + 1):
        S = np.eye(Nt) + (H.T * lam) @ H.conj()
        x = np.einsum("kn,nk->k", H.conj(), np.linalg.solve(S, H.T)).real
        new = np.where(gamma > 0, gamma * (1.0 / x - lam), 0.0)
        new = np.maximum(new, lam)  # monotone in exact arithmetic; keep rounding from undoing it
        step = float(np.max(new - lam)) / max(float(np.max(new)), 1e-300)
        lam = new
        if lam.sum() > budget:
            return PowerMinResult("infeasible", None, float(sigma2) * float(lam.sum()), it)
        if step < 1e-4 and (it - last_try >= 5 or step < tol):
            last_try = it
            built = downlink_precoder(H, lam, gamma, sigma2)
            if built is not None and built[1] <= power * (1.0 + 1e-9):
                V = built[0] * min(1.0, np.sqrt(power / built[1]))  # a rounding excess off the budget
                if _meets(H, V, gamma, sigma2, power):
                    return PowerMinResult("feasible", V, min(built[1], float(power)), it)
            if step < tol:
                break
    return PowerMinResult("undecided", None, float(sigma2) * float(lam.sum()), it)


class SocpPowerMin:
    """The power-minimisation SOCP for one channel, compiled once (cvxpy, DPP) and re-solved per target."""

    def __init__(self, H: np.ndarray, sigma2: float, power: float) -> None:
        import cvxpy as cp

        self.H = np.asarray(H, dtype=np.complex128)
        self.sigma2, self.power = float(sigma2), float(power)
        K, Nt = self.H.shape
        self.coef = cp.Parameter(K, nonneg=True)
        self.V = cp.Variable((Nt, K), complex=True)
        G = self.H.conj() @ self.V  # G[k, j] = h_k^H v_j
        sigma = np.sqrt(self.sigma2)
        cons = []
        for k in range(K):
            cons.append(cp.real(G[k, k]) >= self.coef[k] * cp.norm(cp.hstack([G[k, :], np.array([sigma])]), 2))
            cons.append(cp.imag(G[k, k]) == 0)
        self.problem = cp.Problem(cp.Minimize(cp.norm(cp.vec(self.V, order="F"), 2)), cons)
        self.solves = 0

    def solve(self, gamma: np.ndarray) -> PowerMinResult:
        """Minimum power for ``gamma``: ``feasible`` when the optimal precoder meets the targets within the
        budget (:data:`SOCP_SINR_RTOL`), ``infeasible`` when the minimum exceeds it (or no power achieves the
        targets), ``undecided`` when the solvers fail or the verdict sits within their tolerance."""
        import cvxpy as cp

        gamma = np.asarray(gamma, dtype=np.float64)
        self.coef.value = np.sqrt(gamma / (1.0 + gamma))
        status = None
        for solver in ("CLARABEL", "SCS"):
            try:
                self.problem.solve(solver=solver)
                status = self.problem.status
            except cp.error.SolverError:
                status = None
            if status in (cp.OPTIMAL, cp.INFEASIBLE):
                break
        self.solves += 1
        if status == cp.INFEASIBLE:
            return PowerMinResult("infeasible", None, np.inf, 1)
        if status != cp.OPTIMAL or self.V.value is None:
            return PowerMinResult("undecided", None, np.nan, 1)
        V = np.asarray(self.V.value, dtype=np.complex128)
        pmin = float(np.sum(np.abs(V) ** 2))
        if pmin > self.power * (1.0 + 1e-6):
            return PowerMinResult("infeasible", None, pmin, 1)
        if pmin <= self.power and _meets(self.H, V, gamma, self.sigma2, self.power, SOCP_SINR_RTOL):
            return PowerMinResult("feasible", V, pmin, 1)
        return PowerMinResult("undecided", None, pmin, 1)

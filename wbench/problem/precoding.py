"""The linear-precoding view (:class:`PrecodingView`): the sub-problem the WMMSE family solves, and the
linear precoders on it (:func:`linear_precoder`: MRT, ZF, RZF)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

import numpy as np

from .sets import BlockPowerBall, PowerBall
from .variables import Vars

if TYPE_CHECKING:  # annotations only: interface.py imports this module
    from .interface import Problem


@dataclass
class PrecodingView:
    """A linear-precoding sub-problem inside a problem, with every other variable held fixed.

    Users ``k = 0..K-1`` each decode one stream, column ``streams[k]`` of the precoder ``x[variable]``
    (``Nt x S``; all columns in order when ``streams`` is ``None``, then ``S = K``):

        max_V  sum_k weights_k log2(1 + |h_k^H v_k|^2 / (sum_{j != k} |h_k^H v_j|^2 + sigma2_k))
        s.t.   ||V_b||_F^2 <= budgets_b  for every block b of rows (one block: ||V||_F^2 <= power)

    with ``H`` of shape ``(K, Nt)`` (row ``k`` = the effective channel ``h_k``, so ``y_k = h_k^H x``: the
    channel itself for ``miso``, ``h_k^H Phi G`` for ``bdris``, ``H F_RF`` for a hybrid's digital part).
    ``sigma2`` is a scalar or one value per user: the noise plus the interference of precoder columns the
    view holds fixed, whose power is already taken off the budgets (see :meth:`build`). Precoder
    algorithms (WMMSE, MRT/ZF/RZF, the DPC bound ...) use it on any problem that offers it, without
    reading the scenario's class.
    """

    H: np.ndarray
    weights: np.ndarray
    power: float
    sigma2: float | np.ndarray
    variable: str
    streams: tuple[int, ...] | None = None
    #: Per-block budgets of the view's columns (``None``: one block with budget ``power``).
    budgets: np.ndarray | None = None
    #: Row-block sizes (``sum = Nt``) of the budgets.
    blocks: tuple[int, ...] | None = None

    @property
    def users(self) -> int:
        return int(np.shape(self.H)[0])

    @property
    def antennas(self) -> int:
        return int(np.shape(self.H)[1])

    @property
    def n_blocks(self) -> int:
        return 1 if self.blocks is None else len(self.blocks)

    def block_index(self) -> np.ndarray:
        """The block of every precoder row (all zero for one block)."""
        if self.blocks is None:
            return np.zeros(self.antennas, dtype=np.int64)
        return np.repeat(np.arange(len(self.blocks)), self.blocks)

    def block_budgets(self) -> np.ndarray:
        return np.array([float(self.power)]) if self.budgets is None else np.asarray(self.budgets, float)

    def noise(self) -> np.ndarray:
        """Noise plus fixed interference per user, shape ``(K,)``."""
        return np.broadcast_to(np.asarray(self.sigma2, dtype=np.float64), (self.users,)).copy()

    @property
    def simple(self) -> bool:
        """One power budget, every precoder column, one noise level: the plain MU-MISO problem."""
        return self.blocks is None and self.streams is None and np.ndim(self.sigma2) == 0

    def start(self, x: Mapping[str, np.ndarray]) -> np.ndarray:
        """The view's precoder (``Nt x K``) at ``x``."""
        X = np.asarray(x[self.variable])
        return X if self.streams is None else X[:, list(self.streams)]

    def embed(self, x: Mapping[str, np.ndarray], V: np.ndarray) -> Vars:
        """``x`` with the view's columns of the precoder replaced by ``V``."""
        out = dict(x)
        if self.streams is None:
            out[self.variable] = V
        else:
            X = np.array(x[self.variable], dtype=np.complex128, copy=True)
            X[:, list(self.streams)] = V
            out[self.variable] = X
        return out

    def wsr(self, V: np.ndarray) -> float:
        """The view's weighted sum rate (bit/s/Hz) at precoder ``V`` (``Nt x K``)."""
        from ..rates import weighted_sum_rate

        return weighted_sum_rate(np.asarray(self.H).conj() @ V, self.weights, self.noise())

    def full_power(self, V: np.ndarray) -> np.ndarray:
        """``V`` scaled by the largest common factor that keeps every block within its budget."""
        if self.blocks is None:
            return V * np.sqrt(self.power / np.sum(np.abs(V) ** 2))
        per_row = np.sum(np.abs(V) ** 2, axis=1)
        powers = np.bincount(self.block_index(), weights=per_row, minlength=self.n_blocks)
        budgets = self.block_budgets()
        used = powers > 0
        return V * np.sqrt(np.min(budgets[used] / powers[used]))

    @classmethod
    def build(cls, problem: "Problem", x: Mapping[str, np.ndarray], H: np.ndarray, weights: np.ndarray,
              sigma2: float, streams: tuple[int, ...] | None = None,
              interferers: tuple[int, ...] | None = None) -> "PrecodingView":
        """The view of ``problem``'s precoder (the variable with role ``precoder``) at ``x``.

        ``streams``: the precoder columns optimised (user ``k`` decodes ``streams[k]``; default all).
        ``interferers``: the fixed columns every user hears as noise (default: every column not in
        ``streams``; a scenario with successive decoding passes the ones not yet cancelled). The budgets of
        its set (:class:`PowerBall`, or :class:`BlockPowerBall` on the rows) less the power of the fixed
        columns are the view's budgets.
        """
        name = problem.role_variable("precoder")
        if name is None:
            raise ValueError(f"scenario {problem.scenario!r}: no variable has the role 'precoder'")
        c = problem.variables[name].constraint
        X = np.asarray(x[name])
        ncol = X.shape[1]
        chosen = tuple(range(ncol)) if streams is None else tuple(int(j) for j in streams)
        if np.shape(H)[0] != len(chosen):
            raise ValueError(f"precoding view: {np.shape(H)[0]} users for {len(chosen)} streams")
        fixed = [j for j in range(ncol) if j not in chosen]
        hearing = fixed if interferers is None else list(interferers)
        noise: float | np.ndarray = float(sigma2)
        if hearing:
            noise = float(sigma2) + np.sum(np.abs(np.asarray(H).conj() @ X[:, hearing]) ** 2, axis=1)
        fixed_rows = np.sum(np.abs(X[:, fixed]) ** 2, axis=1) if fixed else np.zeros(X.shape[0])
        if isinstance(c, PowerBall) and np.ndim(c.budget) == 0:
            power = max(float(c.budget) - float(fixed_rows.sum()), 0.0)
            budgets, blocks = None, None
        elif isinstance(c, BlockPowerBall) and c.axis % X.ndim == 0:
            used = np.bincount(c.block_index(), weights=fixed_rows, minlength=len(c.sizes))
            budgets = np.maximum(np.asarray(c.budgets) - used, 0.0)
            blocks = tuple(c.sizes)
            power = float(budgets.sum())
        else:
            raise ValueError(f"precoding view: the precoder's set {c.describe()} is not a power ball")
        return cls(np.asarray(H), np.asarray(weights, dtype=np.float64), power, noise, name,
                   None if streams is None else chosen, budgets, blocks)


#: The name of :class:`PrecodingView` before it had blocks and streams.
MisoView = PrecodingView


def linear_precoder(view: PrecodingView, method: str) -> np.ndarray:
    """MRT, ZF or RZF on the view's channel, scaled to full power (``Nt x K``).

    With ``A`` the rows ``h_k^H``: MRT ``A^H``, ZF ``A^H (A A^H)^{-1}`` (needs ``K <= Nt``), RZF
    ``A^H (A A^H + K sigma2 / P I)^{-1}`` (the regulariser uses the mean noise over users); then the largest
    common scale within every block budget (:meth:`PrecodingView.full_power`; one block: full power).
    """
    A = np.asarray(view.H).conj()  # rows h_k^H: received signal y = A V s + n
    k = A.shape[0]
    if method == "mrt":
        V = A.conj().T
    elif method == "zf":
        if k > A.shape[1]:
            raise ValueError(f"zf needs K <= Nt, has K={k}, Nt={A.shape[1]}")
        V = A.conj().T @ np.linalg.inv(A @ A.conj().T)
    elif method == "rzf":
        reg = k * float(np.mean(view.sigma2)) / view.power
        V = A.conj().T @ np.linalg.inv(A @ A.conj().T + reg * np.eye(k))
    else:
        raise ValueError(f"unknown linear precoder {method!r}; valid: mrt, zf, rzf")
    return view.full_power(V)

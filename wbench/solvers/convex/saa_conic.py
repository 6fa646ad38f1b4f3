"""The SAA-WMMSE QCQP of one iteration written out in conic form and handed to Clarabel (SCS as fallback)
without cvxpy.

The QCQP is the one of :mod:`wbench.solvers.convex.saa_wmmse` (its module docstring: the surrogate of Joudeh &
Clerckx, "Sum-rate maximization for linearly precoded downlink multiuser MISO systems with partial CSIT: a
rate-splitting approach", IEEE Trans. Commun. 2016, with the H-RSMA group commons of Cerna Loli & Clerckx,
section IV). It is small (``2 Nt S`` real precoder entries, ``stages K`` cones) but cvxpy's DPP compilation of its
``stages K`` parametrised products ``B_ks X`` costs seconds and gigabytes, and its per-solve parameter mapping
about 0.3 s at ``Nt, K = 8, 6``; the conic form below is a few numpy assignments per iteration.

**Variables** (real vector ``z``): the precoder ``X`` (``P = sqrt(P_t) X``) column by column as
``[Re x_j; Im x_j]``; one epigraph variable ``q_ks >= ||B_ks X_{A_ks}||_F^2`` per stage and user; the common
rates ``C^c``, ``C^g`` and the QoS slacks ``s`` where the scheme and ``R_th`` have them.

**Problem** (Clarabel's ``min q^T z  s.t.  b - A z in K``; ``xi_ks = q_ks - 2 Re(f_ks^H x_d) + c_ks``):

    minimise   sum_k (xi_kp - 1) - sum C^c - sum C^g + rho sum s
    s.t.       1 - xi_kc - sum_j C_j^c >= 0,   1 - xi_kcg - sum_{j in g(k)} C_j^g >= 0,
               1 - xi_kp + C_k^c + C_k^g + s_k - R_th ln 2 >= 0,   C, s >= 0          (nonnegative cone)
               (1, x) in SOC                                         (||X||_F <= 1)
               (1 + q_ks, 2 vec_R(B_ks X_{A_ks}), q_ks - 1) in SOC   (||B X_A||^2 <= q, rotated cone)

with ``vec_R`` stacking real and imaginary parts (``B x = [Re B, -Im B; Im B, Re B] [Re x; Im x]``). At the
optimum every ``q_ks`` is tight wherever it matters; its value is read back through ``X`` only, so a slack
epigraph changes nothing downstream. The sparsity pattern of ``A`` is fixed per layout and built once; each solve
fills the values.
"""

from __future__ import annotations

import math
from typing import Any

import clarabel
import numpy as np
import scipy.sparse as sp

from ...rsma import RsmaLayout

LN2 = math.log(2.0)


def _real_block(B: np.ndarray) -> np.ndarray:
    """``[Re B, -Im B; Im B, Re B]``: the real form of ``x -> B x``."""
    return np.block([[B.real, -B.imag], [B.imag, B.real]])


class ConicQcqp:
    """The SAA-WMMSE QCQP of one layout in Clarabel's conic form (module docstring).

    ``solve(B, f, c, attempts)`` takes, per stage, the factors ``B`` (K, Nt, Nt) with ``B^H B = P_t Psi``, the
    linear terms ``f`` (Nt, K; already times ``sqrt(P_t)``) and the constants ``c`` (K,), and returns the optimal
    ``X`` (Nt, S) with the attempt's name and status, or ``None`` when every attempt fails."""

    def __init__(self, layout: RsmaLayout, rows: Any, Nt: int, R_th: float, qos_penalty: float) -> None:
        self.layout, self.rows, self.Nt = layout, rows, int(Nt)
        self.R_th, self.rho = float(R_th), float(qos_penalty)
        K, S, n2 = layout.K, layout.n_streams, 2 * self.Nt
        stages = rows.stages
        # variable offsets
        self.nx = n2 * S
        off = self.nx
        self.q_off = {}
        for s in stages:
            self.q_off[s] = off
            off += K
        self.cc_off = self.cg_off = self.sl_off = None
        if "c" in stages:
            self.cc_off, off = off, off + K
        if "cg" in stages:
            self.cg_off, off = off, off + K
        if self.R_th > 0:
            self.sl_off, off = off, off + K
        self.n = off
        self._build_pattern()

    # -- the fixed part ------------------------------------------------------------------------------------
    def _build_pattern(self) -> None:
        layout, rows, K, n2 = self.layout, self.rows, self.layout.K, 2 * self.Nt
        r_lin, c_lin, v_lin, b_lin = [], [], [], []  # fixed entries of the nonnegative rows
        self._lin_rows: list[tuple[str, int, int]] = []  # (stage, user, row) of rows with a "+2 f" term
        self._const_rows: list[tuple[str, int, int]] = []  # rows whose b carries "- c_ks"
        row = 0

        def add(r: int, col: int, val: float) -> None:
            r_lin.append(r), c_lin.append(col), v_lin.append(val)

        if "c" in rows.stages:
            for k in range(K):
                add(row, self.q_off["c"] + k, 1.0)
                for j in range(K):
                    add(row, self.cc_off + j, 1.0)
                b_lin.append(1.0)
                self._lin_rows.append(("c", k, row)), self._const_rows.append(("c", k, row))
                row += 1
        if "cg" in rows.stages:
            for k in range(K):
                add(row, self.q_off["cg"] + k, 1.0)
                for j in np.flatnonzero(layout.groups == layout.groups[k]):
                    add(row, self.cg_off + int(j), 1.0)
                b_lin.append(1.0)
                self._lin_rows.append(("cg", k, row)), self._const_rows.append(("cg", k, row))
                row += 1
        if self.R_th > 0:
            for k in range(K):
                add(row, self.q_off["p"] + k, 1.0)
                for o in (self.cc_off, self.cg_off, self.sl_off):
                    if o is not None:
                        add(row, o + k, -1.0)
                b_lin.append(1.0 - self.R_th * LN2)
                self._lin_rows.append(("p", k, row)), self._const_rows.append(("p", k, row))
                row += 1
        for o in (self.cc_off, self.cg_off, self.sl_off):
            if o is not None:
                for k in range(K):
                    add(row, o + k, -1.0)
                    b_lin.append(0.0)
                    row += 1
        self.m_lin = row
        cones: list[Any] = [clarabel.NonnegativeConeT(row)] if row else []
        soc_dims: list[int] = []
        # ||X||_F <= 1
        b_soc = [1.0]
        for i in range(self.nx):
            add(row + 1 + i, i, -1.0)
            b_soc.append(0.0)
        soc_dims.append(1 + self.nx)
        row += 1 + self.nx
        # the epigraph cones: fixed entries now, B-block positions recorded for the fills
        rB, cB = [], []
        self._blocks: list[tuple[str, int, int]] = []  # (stage, user, number of columns in A_ks)
        for s in rows.stages:
            for k in range(K):
                cols = np.flatnonzero(rows.mask[s][k])
                q = self.q_off[s] + k
                add(row, q, -1.0)
                b_soc.append(1.0)
                base = row + 1
                for i, j in enumerate(cols):
                    rr = base + i * n2 + np.arange(n2)
                    cc = int(j) * n2 + np.arange(n2)
                    rB.append(np.repeat(rr, n2)), cB.append(np.tile(cc, n2))
                    b_soc.extend([0.0] * n2)
                last = base + len(cols) * n2
                add(last, q, -1.0)
                b_soc.append(-1.0)
                self._blocks.append((s, k, len(cols)))
                soc_dims.append(len(cols) * n2 + 2)
                row = last + 1
        self.m = row
        cones += [clarabel.SecondOrderConeT(d) for d in soc_dims]
        self.cones, self.soc_dims = cones, soc_dims
        self._rows = np.concatenate([np.asarray(r_lin, dtype=np.int64)] + rB)
        self._cols = np.concatenate([np.asarray(c_lin, dtype=np.int64)] + cB)
        self._fixed_vals = np.asarray(v_lin, dtype=float)
        self._b0 = np.asarray(b_lin + b_soc, dtype=float)
        # the "+2 f" entries: for each (stage, user, row) the 2 Nt columns of its desired stream
        self._f_rows = np.array([r for _, _, r in self._lin_rows], dtype=np.int64)
        # A's CSC layout from the pattern (f entries appended last), fixed per layout
        f_r = np.repeat(self._f_rows, n2)
        f_c = np.concatenate([self._desired_cols(s, k) for s, k, _ in self._lin_rows]) if self._lin_rows \
            else np.zeros(0, dtype=np.int64)
        rows_all = np.concatenate([self._rows, f_r])
        cols_all = np.concatenate([self._cols, f_c])
        probe = sp.csc_matrix((np.arange(1, rows_all.size + 1, dtype=float), (rows_all, cols_all)),
                              shape=(self.m, self.n))
        probe.sum_duplicates()
        if probe.nnz != rows_all.size:
            raise AssertionError("conic QCQP pattern has duplicate entries")
        self._perm = probe.data.astype(np.int64) - 1  # CSC slot -> index into the unsorted value vector
        self._indices, self._indptr = probe.indices.copy(), probe.indptr.copy()
        self._P = sp.csc_matrix((self.n, self.n))
        c = np.zeros(self.n)
        c[self.q_off["p"]:self.q_off["p"] + K] = 1.0
        for o in (self.cc_off, self.cg_off):
            if o is not None:
                c[o:o + K] = -1.0
        if self.sl_off is not None:
            c[self.sl_off:self.sl_off + K] = self.rho
        self._c_fixed = c

    def _desired_cols(self, s: str, k: int) -> np.ndarray:
        n2 = 2 * self.Nt
        return int(self.rows.desired[s][k]) * n2 + np.arange(n2)

    # -- one solve -----------------------------------------------------------------------------------------
    def data(self, B: dict[str, np.ndarray], f: dict[str, np.ndarray], c: dict[str, np.ndarray]
             ) -> tuple[sp.csc_matrix, np.ndarray, np.ndarray, float]:
        """``A``, ``b``, the linear objective and its constant for one surrogate."""
        blocks = {s: np.stack([-2.0 * _real_block(B[s][k]) for k in range(self.layout.K)]) for s in self.rows.stages}
        bvals = [np.broadcast_to(blocks[s][k].ravel(), (ncol, blocks[s][k].size)).ravel()
                 for s, k, ncol in self._blocks]
        fvals = [-2.0 * np.concatenate([f[s][:, k].real, f[s][:, k].imag]) for s, k, _ in self._lin_rows]
        vals = np.concatenate([self._fixed_vals] + bvals + fvals)
        A = sp.csc_matrix((vals[self._perm], self._indices, self._indptr), shape=(self.m, self.n))
        b = self._b0.copy()
        for s, k, r in self._const_rows:
            b[r] -= c[s][k]
        obj = self._c_fixed.copy()
        fp = f["p"]
        for k in range(self.layout.K):  # - 2 Re(f_kp^H x_d) in sum_k xi_kp
            obj[self._desired_cols("p", k)] -= 2.0 * np.concatenate([fp[:, k].real, fp[:, k].imag])
        const = float(np.sum(c["p"]) - self.layout.K)
        return A, b, obj, const

    def solve(self, B: dict[str, np.ndarray], f: dict[str, np.ndarray], c: dict[str, np.ndarray],
              attempts: tuple[tuple[str, dict[str, Any]], ...], lin: np.ndarray | None = None
              ) -> tuple[np.ndarray, str, str] | None:
        """The optimal ``X`` (Nt, S), the attempt's solver and status; ``None`` when every attempt fails.
        ``lin`` (Nt, S), optional: ``Re tr(lin^H X)`` is added to the maximised objective (``isac``'s linearised
        probing term), i.e. ``-[Re lin_j; Im lin_j]`` to the minimised one, column by column as ``X`` is stored."""
        A, b, obj, _ = self.data(B, f, c)
        if lin is not None:
            obj = obj.copy()
            obj[:self.nx] -= np.concatenate([np.concatenate([lin[:, j].real, lin[:, j].imag])
                                             for j in range(self.layout.n_streams)])
        for name, kwargs in attempts:
            z, status = self._run(name, kwargs, A, b, obj)
            if z is not None and np.all(np.isfinite(z)):
                return self._unpack(z), name, status
        return None

    def _run(self, name: str, kwargs: dict[str, Any], A: sp.csc_matrix, b: np.ndarray, obj: np.ndarray
             ) -> tuple[np.ndarray | None, str]:
        if name == "CLARABEL":
            settings = clarabel.DefaultSettings()
            settings.verbose = False
            for key, val in kwargs.items():
                setattr(settings, key, val)
            sol = clarabel.DefaultSolver(self._P, obj, A, b, self.cones, settings).solve()
            status = str(sol.status)
            if status in ("Solved", "AlmostSolved"):
                return np.asarray(sol.x, dtype=float), "optimal" if status == "Solved" else "optimal_inaccurate"
            return None, status
        if name == "SCS":
            import scs

            data = {"A": A, "b": b, "c": obj}
            cone = {"l": self.m_lin, "q": list(self.soc_dims)}
            out = scs.SCS(data, cone, verbose=False, **kwargs).solve()
            code = out["info"]["status_val"]  # 1 solved, 2 solved inaccurate
            if code in (1, 2):
                return np.asarray(out["x"], dtype=float), "optimal" if code == 1 else "optimal_inaccurate"
            return None, str(out["info"]["status"])
        raise ValueError(f"unknown conic solver {name!r} (CLARABEL or SCS)")

    def _unpack(self, z: np.ndarray) -> np.ndarray:
        n, S = self.Nt, self.layout.n_streams
        x = z[:self.nx].reshape(S, 2 * n)
        return (x[:, :n] + 1j * x[:, n:]).T

"""Symmetric unitary matrices as ``U U^T``, and the Takagi factor that inverts the map.

Every complex symmetric matrix has a Takagi factorisation ``A = Q S Q^T`` with ``Q`` unitary and ``S``
real non-negative diagonal (Takagi 1925; Horn & Johnson, *Matrix Analysis*, 2nd ed., Cor. 4.4.4). For a
symmetric *unitary* ``Phi`` the singular values are all one, so ``Phi = U U^T`` with ``U`` unitary; conversely
``U U^T`` is symmetric and unitary for every unitary ``U``. This gives the exact parametrisation of the
reciprocal BD-RIS used by the ``ao`` solver (SCENARIOS.md section 2): optimise ``U`` on the unitary group,
evaluate the loss at ``Phi = U U^T``.

:func:`takagi_factor` uses the structure of the unitary case instead of a general Takagi algorithm. Writing
``Phi = X + iY`` with ``X, Y`` real symmetric, ``Phi^H Phi = I`` splits into ``X^2 + Y^2 = I`` and
``XY = YX``: two commuting real symmetric matrices, hence one real orthogonal ``Q`` diagonalises both and
``Phi = Q diag(exp(i theta)) Q^T``; then ``U = Q diag(exp(i theta / 2))``. ``Q`` comes from the
eigenvectors of ``X + c Y`` for an irrational ``c``; where that combination has (nearly) repeated
eigenvalues, the cluster's block ``Q_c^T Phi Q_c`` is again symmetric unitary and is split the same way
with another ``c`` (a cluster on which ``Phi`` is a multiple of the identity needs nothing more).

NumPy only: importing this module stays light.
"""

from __future__ import annotations

import numpy as np

# Mixing constants for X + c Y: irrational, so that distinct points exp(i theta) of the unit circle collide
# (cos a + c sin a = cos b + c sin b) only on a set of measure zero, and a different one per level.
_MIX = (0.6180339887498949, -1.4142135623730951, 2.718281828459045, -0.5772156649015329)
_GAP = 1e-6  # eigenvalues of X + c Y closer than this (relative) form one cluster, split at the next level


def symmetric_unitary(U: np.ndarray) -> np.ndarray:
    """``U U^T`` for a unitary ``U`` (or a stack ``(..., n, n)``): symmetric and unitary.

    The product is symmetrised (``(M + M^T) / 2``, exact in floating point), so the result is symmetric to
    the last bit whatever order the matrix product sums in.
    """
    U = np.asarray(U)
    M = U @ np.swapaxes(U, -1, -2)
    return 0.5 * (M + np.swapaxes(M, -1, -2))


def _real_basis(Phi: np.ndarray, level: int) -> np.ndarray:
    """A real orthogonal ``Q`` with ``Q^T Phi Q`` diagonal, for a symmetric unitary ``Phi``."""
    n = Phi.shape[0]
    if n == 1:
        return np.ones((1, 1))
    c = _MIX[level % len(_MIX)]
    w, Q = np.linalg.eigh(Phi.real + c * Phi.imag)
    if level >= 3 * len(_MIX):  # give up refining: what is left is (numerically) a multiple of I
        return Q
    scale = 1.0 + abs(c)  # |eigenvalues| <= ||X|| + |c| ||Y|| <= 1 + |c|
    out = Q.copy()
    start = 0
    for i in range(1, n + 1):
        if i == n or w[i] - w[i - 1] > _GAP * scale:
            if i - start > 1:
                Qc = Q[:, start:i]
                block = Qc.T @ Phi @ Qc
                block = 0.5 * (block + block.T)
                # A cluster on which Phi is a scalar is diagonal in any basis: stop there.
                if np.linalg.norm(block - np.diag(np.diag(block))) > _GAP * np.sqrt(i - start):
                    out[:, start:i] = Qc @ _real_basis(block, level + 1)
            start = i
    return out


def takagi_factor(Phi: np.ndarray) -> np.ndarray:
    """A unitary ``U`` with ``U U^T = Phi``, for a symmetric unitary ``Phi``.

    Raises ``ValueError`` for a non-square input; the result is meaningful only when ``Phi`` is symmetric
    and unitary (to round-off), which is not checked here.
    """
    Phi = np.asarray(Phi, dtype=np.complex128)
    if Phi.ndim != 2 or Phi.shape[0] != Phi.shape[1]:
        raise ValueError(f"takagi_factor needs a square matrix, got shape {Phi.shape}")
    S = 0.5 * (Phi + Phi.T)
    Q = _real_basis(S, 0)
    d = np.diag(Q.T @ S @ Q)
    return Q * np.exp(0.5j * np.angle(d))[None, :]

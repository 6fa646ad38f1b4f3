"""Symmetric unitary matrices as ``U U^T``, and the Takagi factor that inverts the map.

Every complex symmetric matrix has a Takagi factorisation ``A = Q S Q^T`` with ``Q`` unitary and ``S``
real non-negative diagonal (Takagi 1925; Horn & Johnson, *Matrix Analysis*, 2nd ed., Cor. 4.4.4). For a
symmetric *unitary* ``Phi`` the singular values are all one, so ``Phi = U U^T`` with ``U`` unitary; conversely
``U U^T`` is symmetric and unitary for every unitary ``U``. This gives the exact parametrisation of the
reciprocal BD-RIS used by the ``ao`` solver (SCENARIOS.md section 2): optimise ``U`` on the unitary group,
evaluate the loss at ``Phi = U U^T``.

:func:`takagi_factor` returns the square root ``U = Phi^(1/2)``: ``Phi`` is normal, so a function applied to
its eigenvalues (complex Schur form ``Phi = Z T Z^H``, ``T`` diagonal up to round-off) is a polynomial in
``Phi``, hence symmetric, and ``U U^T = U^2 = Phi`` (Higham, *Functions of Matrices*, SIAM 2008, ch. 1 and
6). The branch cut of the root is put in the widest gap between the eigenvalue phases, so that the root is
Lipschitz on the spectrum with a constant of about 1/2: the Schur vectors of a cluster of nearly equal
eigenvalues are ill-determined, but the root is nearly constant on such a cluster, so the result is
accurate to a few ulps of ``n`` whatever the eigenvalue gaps (a real-orthogonal diagonalisation of the
commuting real and imaginary parts, used before, lost ``eps / gap`` on clustered eigenvalues and about
``1e-12`` at ``n = 64``).

NumPy only at import: SciPy's Schur form is imported inside :func:`takagi_factor`.
"""

from __future__ import annotations

import numpy as np


def symmetric_unitary(U: np.ndarray) -> np.ndarray:
    """``U U^T`` for a unitary ``U`` (or a stack ``(..., n, n)``): symmetric and unitary.

    The product is symmetrised (``(M + M^T) / 2``, exact in floating point), so the result is symmetric to
    the last bit whatever order the matrix product sums in.
    """
    U = np.asarray(U)
    M = U @ np.swapaxes(U, -1, -2)
    return 0.5 * (M + np.swapaxes(M, -1, -2))


def takagi_factor(Phi: np.ndarray) -> np.ndarray:
    """A unitary ``U`` with ``U U^T = Phi``, for a symmetric unitary ``Phi``: the square root ``Phi^(1/2)``.

    Raises ``ValueError`` for a non-square input. ``Phi`` is symmetrised first; only the phases of its
    eigenvalues are used, so ``U`` is unitary to round-off even when ``Phi`` is unitary only roughly (and
    then ``U U^T`` is the unitary matrix with ``Phi``'s eigenvectors and eigenvalue phases).
    """
    from scipy.linalg import schur

    Phi = np.asarray(Phi, dtype=np.complex128)
    if Phi.ndim != 2 or Phi.shape[0] != Phi.shape[1]:
        raise ValueError(f"takagi_factor needs a square matrix, got shape {Phi.shape}")
    T, Z = schur(0.5 * (Phi + Phi.T), output="complex")
    phase = np.angle(np.diag(T))
    ordered = np.sort(phase)
    gaps = np.diff(np.concatenate([ordered, ordered[:1] + 2 * np.pi]))
    i = int(np.argmax(gaps))
    cut = ordered[i] + 0.5 * gaps[i]  # the middle of the widest gap: no eigenvalue near the branch cut
    theta = cut - np.mod(cut - phase, 2 * np.pi)  # phases in (cut - 2 pi, cut]
    return (Z * np.exp(0.5j * theta)) @ Z.conj().T

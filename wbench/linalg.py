"""Unitary and symmetric unitary matrices: the polar factor, the nearest symmetric unitary matrix, ``U U^T``
and the Takagi factor that inverts it (NumPy; torch versions where a solver differentiates through them).

The unitary group ``U(n)`` is the set of the fully-connected BD-RIS, the symmetric unitary matrices
``{Phi : Phi^H Phi = I, Phi = Phi^T}`` that of the reciprocal (lossless, reciprocal) one (H. Li, S. Shen,
B. Clerckx, "Beyond diagonal reconfigurable intelligent surfaces: from transmitting and reflecting modes to
single-, group-, and fully-connected architectures", IEEE TWC 22(4), 2023; SCENARIOS.md section 2).

* :func:`polar`: the nearest unitary matrix in Frobenius norm is the unitary polar factor ``U V^H`` of the
  SVD ``x = U S V^H`` (Fan & Hoffman 1955; Higham, *Functions of Matrices*, SIAM 2008, Thm. 8.4).
* :func:`project_symmetric_unitary`: for symmetric ``Y``, ``||x - Y||^2 = ||S - Y||^2 + ||K||^2`` with
  ``S, K`` the symmetric and skew parts of ``x``, so the nearest symmetric unitary matrix is the nearest
  unitary matrix to ``S``, its polar factor, which is symmetric: ``S = Q D Q^T`` (Takagi) gives ``Q Q^T``.
  Numerically the SVD's ``U V^H`` is symmetric only to about ``eps / sigma_min(S)``, and not at all where
  ``S`` is singular (the SVD pairs arbitrary bases of the two null spaces). So (1) on the null space of
  ``S`` the left singular vectors are replaced by ``conj(V_0)`` (the left null space of a symmetric
  matrix is the conjugate of the right one), which makes that part ``conj(V_0) V_0^H``, symmetric; (2) the
  result is symmetrised exactly and made unitary again by Newton-Schulz steps
  ``q <- q - (q q^H - I) q / 2`` (Higham, *Functions of Matrices*, section 8.3), which map symmetric
  matrices to symmetric matrices (``q q^H q = q conj(q) q``) and square the unitarity residual, each
  followed by an exact symmetrisation.
* :func:`symmetric_unitary` and :func:`takagi_factor`: every complex symmetric matrix has a Takagi
  factorisation ``A = Q S Q^T``, ``Q`` unitary, ``S`` real non-negative diagonal (Takagi 1925; Horn &
  Johnson, *Matrix Analysis*, 2nd ed., Cor. 4.4.4). For a symmetric *unitary* ``Phi``, ``S = I``, so
  ``Phi = U U^T`` with ``U`` unitary; conversely ``U U^T`` is symmetric and unitary for every unitary
  ``U``: an exact parametrisation of the reciprocal BD-RIS by the unitary group. :func:`takagi_factor`
  returns the square root ``U = Phi^(1/2)``: ``Phi`` is normal, so a function applied to its eigenvalues
  (complex Schur form ``Phi = Z T Z^H``, ``T`` diagonal up to round-off) is a polynomial in ``Phi``, hence
  symmetric, and ``U U^T = U^2 = Phi`` (Higham, ch. 1 and 6). The branch cut of the root is put in the
  widest gap between the eigenvalue phases, so that the root is Lipschitz on the spectrum with a constant
  of about 1/2: the Schur vectors of a cluster of nearly equal eigenvalues are ill-determined, but the root
  is nearly constant on such a cluster, so the factor is accurate to a few ulps of ``n`` whatever the
  eigenvalue gaps (a real-orthogonal diagonalisation of the commuting real and imaginary parts, used
  before, lost ``eps / gap`` on clustered eigenvalues and about ``1e-12`` at ``n = 64``).

NumPy only at import: SciPy (Schur form) and torch are imported inside the functions that need them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

_EPS = np.finfo(np.float64).eps
#: Newton-Schulz steps that restore unitarity after symmetrising (each squares the residual).
_NS_STEPS = 3

__all__ = ["polar", "polar_torch", "project_symmetric_unitary", "project_symmetric_unitary_torch",
           "symmetric_unitary", "takagi_factor", "unitary_residual"]


def polar(x: np.ndarray) -> np.ndarray:
    """The nearest unitary matrix to ``x`` (or to each of a stack ``(..., n, n)``): ``U V^H``."""
    u, _, vh = np.linalg.svd(x)
    return u @ vh


def polar_torch(x: "torch.Tensor") -> "torch.Tensor":
    """:func:`polar` on a torch tensor (differentiable where the singular values are distinct)."""
    import torch

    u, _, vh = torch.linalg.svd(x)
    return u @ vh


def stacked_matmul(a: "torch.Tensor", b: "torch.Tensor") -> "torch.Tensor":
    """``a[i] @ b[i]`` for stacks of matrices (leading batch dimension), bitwise equal to the
    per-matrix products on the CPU, gradients included.

    On the CPU each product is its own ``@`` and its backward is torch's own ``mm`` backward (whose
    formula depends on the operands' memory layout), the row gradients stacked in their own layout
    (:func:`stack_rows`): torch's batched product sums small matrices (and matrix-vector shapes) in another
    order than its single product, and a chaotic iteration (Adam next to a projection's kink) amplifies
    such rounding differences, while a batched solver must give the unbatched results. On other devices
    (GPUs) one batched product.
    """
    if a.device.type != "cpu":
        return a @ b
    return _row_products().apply(a, b)


def stack_rows(rows: "list[torch.Tensor]") -> "torch.Tensor":
    """``torch.stack(rows)`` in which every row keeps the memory layout (strides) of ``rows[0]`` (e.g. a
    transposed array from NumPy): reductions follow the memory order, so a row of the stack is then reduced
    exactly as the single tensor is."""
    import torch

    v = rows[0]
    if v.dim() < 2 or v.is_contiguous():
        return torch.stack(rows)
    order = sorted(range(v.dim()), key=lambda d: -v.stride(d))  # outermost dimension first
    base = torch.stack([r.permute(order) for r in rows])
    return base.permute(0, *[order.index(d) + 1 for d in range(v.dim())])


def _column_major(m: "torch.Tensor") -> bool:
    return m.stride(0) == 1 and m.stride(1) == m.shape[0]


_ROW_PRODUCTS = None


def _row_products():
    """The autograd function of :func:`stacked_matmul` on the CPU (built on first use: torch is optional)."""
    global _ROW_PRODUCTS
    if _ROW_PRODUCTS is None:
        import torch

        class RowProducts(torch.autograd.Function):
            @staticmethod
            def forward(ctx, a, b):  # type: ignore[override]
                ctx.save_for_backward(a, b)
                return torch.stack([x @ y for x, y in zip(a.unbind(0), b.unbind(0))])

            @staticmethod
            def backward(ctx, grad):  # type: ignore[override]
                a, b = ctx.saved_tensors
                rows = list(zip(a.unbind(0), b.unbind(0), grad.unbind(0)))
                ga = gb = None
                # torch's mm_mat1_backward / mm_mat2_backward, row by row
                if ctx.needs_input_grad[0]:
                    ga = stack_rows([y.conj().mm(g.t()).t() if _column_major(x) else g.mm(y.t().conj())
                                     for x, y, g in rows])
                if ctx.needs_input_grad[1]:
                    gb = stack_rows([g.t().mm(x.conj()).t() if _column_major(y) else x.t().conj().mm(g)
                                     for x, y, g in rows])
                return ga, gb

        _ROW_PRODUCTS = RowProducts
    return _ROW_PRODUCTS


def unitary_residual(x: np.ndarray) -> float:
    """``||x^H x - I||_F`` of a square matrix."""
    return float(np.linalg.norm(x.conj().T @ x - np.eye(x.shape[-1])))


def project_symmetric_unitary(x: np.ndarray) -> np.ndarray:
    """The nearest symmetric unitary matrix to a square ``x`` in Frobenius norm (module docstring).

    The result is symmetric exactly and unitary to round-off, also for singular ``x``.
    """
    s = 0.5 * (x + x.T)
    n = s.shape[-1]
    u, sv, vh = np.linalg.svd(s)
    null = sv <= n * _EPS * sv[0] if sv[0] > 0 else np.ones(n, dtype=bool)
    if null.any():
        u = u.copy()
        u[:, null] = vh[null].T
    q = u @ vh
    q = 0.5 * (q + q.T)
    eye = np.eye(n)
    for _ in range(_NS_STEPS):
        r = q @ q.conj().T - eye
        if np.linalg.norm(r) <= 4 * n * _EPS:
            break
        q = q - 0.5 * (r @ q)
        q = 0.5 * (q + q.T)
    return q


def project_symmetric_unitary_torch(x: "torch.Tensor") -> "torch.Tensor":
    """:func:`project_symmetric_unitary` on a torch tensor (a fixed number of Newton-Schulz steps)."""
    import torch

    s = 0.5 * (x + x.T)
    n = s.shape[-1]
    u, sv, vh = torch.linalg.svd(s)
    if bool(sv[0] > 0):
        null = sv <= n * torch.finfo(sv.dtype).eps * sv[0]
    else:
        null = torch.ones_like(sv, dtype=torch.bool)
    # Range part from the singular pairs (u_j, v_j), invariant to each pair's common phase as autograd's SVD
    # requires; the null part conj(V_0) V_0^H depends on the basis' phases and is not differentiable there.
    q = (u * (~null).to(u.dtype)) @ vh
    if bool(null.any()):
        q = q + ((vh.T * null.to(vh.dtype)) @ vh).detach()
    q = 0.5 * (q + q.T)
    eye = torch.eye(n, dtype=q.dtype, device=q.device)
    for _ in range(_NS_STEPS):
        q = q - 0.5 * ((q @ q.conj().T - eye) @ q)
        q = 0.5 * (q + q.T)
    return q


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

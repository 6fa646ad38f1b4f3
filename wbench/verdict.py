"""Verdict statistics for claims: paired effects on shared channels, their intervals, and the verdict rule.

Pure functions of arrays; running solvers is :mod:`wbench.claims`' business. ``a[i]`` and ``b[i]`` are the
utilities of the two arms of a claim on the same channel realisation ``i`` (paired data).

Effects and their two-sided ``level`` intervals:

* **difference** ``mean(A - B)``: Student-t interval of the mean paired difference, ``n - 1`` degrees of
  freedom.
* **ratio** ``mean(A) / mean(B)`` (a ratio of means, not a mean of ratios): Fieller's interval for paired
  data, the set of ``r`` for which the t-test of ``mean(A - r B) = 0`` does not reject. So
  ``mean(A) / mean(B) > r0`` is supported exactly when the t-interval of ``mean(A - r0 B)`` lies above 0.
  When ``mean(B)`` is not significantly away from 0 the set is unbounded (reported as ``-inf, inf``).
* **slope** of an effect over a swept parameter ``x`` (a trend: "the gain grows with K"): the least-squares
  slope ``sum_x w_x e_x``, ``w_x = (x - xbar) / sum (x - xbar)^2``, of the per-point effects ``e_x`` (a
  difference, or ``mean(A_x) / mean(B_x) - 1``). Its standard error comes from the per-realisation
  influence values ``psi_i = sum_x w_x phi_{x,i}`` with ``phi = (a - b)`` for a difference and the delta-method
  ``phi = (a - R_x b) / mean(b_x)`` for a ratio: the same realisation index at every ``x`` is one unit, so
  a correlation between the points (shared seeds) is accounted for. t-interval, ``n - 1`` degrees of freedom.

The verdict compares an interval with the region the claim says the effect lies in (``> t``, ``< t`` or
``in [lo, hi]``): ``supported`` when the interval lies inside the region, ``refuted`` when it lies wholly
outside, ``inconclusive`` when it straddles a boundary (or is undefined, e.g. fewer than two pairs). A claim
that must hold at each of ``m`` points ("at 20-40 dB") uses ``level`` intervals Bonferroni-adjusted to
``1 - (1 - level) / m`` per point: supported when every point is, refuted when any point is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

SUPPORTED, REFUTED, INCONCLUSIVE = "supported", "refuted", "inconclusive"
VERDICTS = (SUPPORTED, REFUTED, INCONCLUSIVE)


@dataclass(frozen=True)
class Region:
    """Where the claim puts the effect: the open interval ``(low, high)`` (one side may be infinite)."""

    low: float = -math.inf
    high: float = math.inf

    def text(self) -> str:
        if math.isinf(self.high):
            return f"> {self.low:g}"
        if math.isinf(self.low):
            return f"< {self.high:g}"
        return f"in [{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class Estimate:
    """An effect, its interval at ``level``, and the number of paired realisations behind it."""

    effect: float
    low: float
    high: float
    n: int
    level: float


def _t(level: float, df: int) -> float:
    return float(stats.t.ppf(0.5 + level / 2, df))


def _pairs(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired data must be two 1-d arrays of one length, got {a.shape} and {b.shape}")
    return a, b


def difference(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> Estimate:
    """``mean(a - b)`` with its Student-t interval (undefined, ``nan``, below two pairs)."""
    a, b = _pairs(a, b)
    d = a - b
    n = d.size
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0, level)
    mean = float(d.mean())
    if n < 2:
        return Estimate(mean, -math.inf, math.inf, n, level)
    half = _t(level, n - 1) * float(d.std(ddof=1)) / math.sqrt(n)
    return Estimate(mean, mean - half, mean + half, n, level)


def ratio(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> Estimate:
    """``mean(a) / mean(b)`` with Fieller's interval for paired data (see the module docstring)."""
    a, b = _pairs(a, b)
    n = a.size
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0, level)
    ma, mb = float(a.mean()), float(b.mean())
    r = ma / mb if mb != 0 else math.nan
    if n < 2:
        return Estimate(r, -math.inf, math.inf, n, level)
    cov = np.cov(np.vstack([a, b]), ddof=1) / n  # covariance of the two means
    vaa, vbb, vab = float(cov[0, 0]), float(cov[1, 1]), float(cov[0, 1])
    q2 = _t(level, n - 1) ** 2
    # (ma - r mb)^2 <= q2 (vaa - 2 r vab + r^2 vbb)  <=>  A r^2 - 2 B r + C <= 0
    A, B, C = mb * mb - q2 * vbb, ma * mb - q2 * vab, ma * ma - q2 * vaa
    if A <= 0:  # mean(b) not significantly away from 0: the set is unbounded
        return Estimate(r, -math.inf, math.inf, n, level)
    # With A > 0 the quadratic is <= 0 at r = ma / mb, so disc >= 0 up to rounding (a = c b exactly gives 0).
    root = math.sqrt(max(B * B - A * C, 0.0))
    return Estimate(r, (B - root) / A, (B + root) / A, n, level)


def slope(xs: Sequence[float], a: Sequence[Sequence[float]], b: Sequence[Sequence[float]], of: str = "difference",
          level: float = 0.95) -> Estimate:
    """Least-squares slope over ``xs`` of the per-point effect (``difference`` or ``ratio``: mean(A)/mean(B) - 1).

    ``a[j][i]``, ``b[j][i]``: arm utilities at point ``xs[j]`` on realisation ``i`` (the same realisations at
    every point). Interval from per-realisation influence values (see the module docstring).
    """
    x = np.asarray(xs, dtype=float)
    A, B = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if A.shape != B.shape or A.ndim != 2 or A.shape[0] != x.size:
        raise ValueError(f"slope needs arrays of shape (points, realisations), got {A.shape} and {B.shape}")
    if of not in ("difference", "ratio"):
        raise ValueError(f"slope of {of!r}: expected difference or ratio")
    n = A.shape[1]
    if x.size < 2 or np.ptp(x) == 0:
        raise ValueError("a slope needs at least two distinct values of the swept parameter")
    w = (x - x.mean()) / float(((x - x.mean()) ** 2).sum())
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0, level)
    if of == "difference":
        phi = A - B
        effects = phi.mean(axis=1)
    else:
        ma, mb = A.mean(axis=1), B.mean(axis=1)
        effects = ma / mb - 1.0
        phi = (A - (ma / mb)[:, None] * B) / mb[:, None]
    value = float(w @ effects)
    if n < 2:
        return Estimate(value, -math.inf, math.inf, n, level)
    psi = w @ phi  # one influence value per realisation
    half = _t(level, n - 1) * float(psi.std(ddof=1)) / math.sqrt(n)
    return Estimate(value, value - half, value + half, n, level)


def decide(est: Estimate, region: Region) -> str:
    """``supported`` (interval inside the region), ``refuted`` (wholly outside) or ``inconclusive``."""
    lo, hi = est.low, est.high
    if est.n < 2 or not (math.isfinite(lo) and math.isfinite(hi)):
        return INCONCLUSIVE
    if lo > region.low and hi < region.high:
        return SUPPORTED
    if hi <= region.low or lo >= region.high:
        return REFUTED
    return INCONCLUSIVE


def combine(verdicts: Sequence[str]) -> str:
    """A claim over several points: supported if every point is, refuted if any point is."""
    if not verdicts:
        return INCONCLUSIVE
    if any(v == REFUTED for v in verdicts):
        return REFUTED
    if all(v == SUPPORTED for v in verdicts):
        return SUPPORTED
    return INCONCLUSIVE


def point_level(level: float, points: int) -> float:
    """Per-point confidence level for a claim over ``points`` points (Bonferroni)."""
    return 1.0 - (1.0 - level) / max(1, points)


def margin(est: Estimate, region: Region) -> float:
    """Distance from the interval to the nearest boundary of the region, in half-widths of the interval.

    0 for an inconclusive verdict (a boundary lies inside the interval); large for a verdict far from
    flipping (a stable one). ``inf`` for a zero-width interval off the boundaries.
    """
    half = (est.high - est.low) / 2
    if est.n < 2 or not math.isfinite(half):
        return 0.0
    dist = math.inf
    for edge in (region.low, region.high):
        if math.isfinite(edge):
            dist = min(dist, 0.0 if est.low <= edge <= est.high else min(abs(est.low - edge), abs(est.high - edge)))
    if half == 0:
        return math.inf if dist > 0 else 0.0
    return dist / half

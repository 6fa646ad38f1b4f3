"""Figures and reports for papers: the data of each figure apart from its drawing.

One module per figure kind; each has a pure ``*_data`` function returning a pandas DataFrame (what the
tests check) and a ``draw_*`` function turning that frame into a matplotlib Figure (Agg backend):

* :mod:`.sweep`: utility against a swept parameter, leaderboard means with 95% Student-t bands;
* :mod:`.anytime`: best-so-far utility (or gap to a reference) against wall time, median and 25-75% band;
* :mod:`.profile`: Dolan-More performance profiles and the fixed-target ECDF of the time to a target;
* :mod:`.scaling`: wall time against problem size on log-log axes with fitted slopes;
* :mod:`.report`: a self-contained HTML page with the leaderboards, figures and provenance;
* :mod:`.data`: loading runs from a results database, traces, labels and captions shared by all;
* :mod:`.cli`: the ``wbench plot`` and ``wbench report`` commands.

matplotlib and seaborn are imported inside the drawing functions only, so ``import wbench`` stays light.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

KINDS = ("sweep", "anytime", "profile", "scaling")

__all__ = ["KINDS", "figure_data", "draw"]


def figure_data(kind: str, rows: Sequence[Mapping[str, Any]], x: str | None = None, target: float = 0.99,
                reference: str | None = None, gap: bool = False) -> Any:
    """The data frame of figure ``kind`` (one of :data:`KINDS`) for one scenario's stored rows."""
    from ..params import ParamError

    if kind == "sweep":
        from .sweep import sweep_data

        return sweep_data(rows, x)
    if kind == "anytime":
        from .anytime import anytime_data

        return anytime_data(rows, gap=gap, reference=reference)
    if kind == "profile":
        from .profile import profile_data

        return profile_data(rows, target, reference)
    if kind == "scaling":
        from .scaling import scaling_data

        return scaling_data(rows, x)
    raise ParamError(f"unknown figure kind {kind!r}; valid: {', '.join(KINDS)}")


def draw(kind: str, data: Any) -> Any:
    """The matplotlib Figure of ``kind`` drawn from its :func:`figure_data`."""
    from . import anytime, profile, scaling, sweep

    return {"sweep": sweep.draw_sweep, "anytime": anytime.draw_anytime, "profile": profile.draw_profile,
            "scaling": scaling.draw_scaling}[kind](data)

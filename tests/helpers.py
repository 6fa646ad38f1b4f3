"""Small helpers shared by the tests: run the CLI in-process and read what it stored."""

from __future__ import annotations

from pathlib import Path

from wbench.cli import main
from wbench.store import Store


def compare(db: Path, *args: str, scenario: str = "miso") -> int:
    return main(["compare", "--scenario", scenario, "--db", str(db), "--format", "csv", *args])


def stored(db: Path) -> list[dict]:
    with Store(db) as s:
        return s.rows()


def by_key(rows: list[dict], *fields: str) -> dict:
    return {(r["label"], r["params"], r["instance"]): tuple(r[f] for f in fields) for r in rows}


def miso_problem(nt: int, k: int, snr: float, i: int, seed: int):
    """Realisation ``i`` of ``miso`` (seed ``seed``) as a Problem."""
    from wbench.channels.channelset import realisation_rng
    from wbench.scenarios.miso import Miso

    sc = Miso()
    params = sc.resolve_params({"Nt": nt, "K": k, "snr_db": snr})
    return sc.problem(params, sc.draw(params, realisation_rng(seed, "miso", i)))


def toy_problem(arch: str, nt: int, i: int, seed: int, snr: float = 10.0):
    """Realisation ``i`` of the toy single-user RIS scenario (``tests/toy_plugin.py``) with B = 4."""
    from tests.toy_plugin import ToyRis
    from wbench.channels.channelset import realisation_rng

    sc = ToyRis()
    params = sc.resolve_params({"Nt": nt, "B": 4, "architecture": arch, "snr_db": snr})
    return sc.problem(params, sc.draw(params, realisation_rng(seed, "toy-ris", i)))


def bdris_problem(seed: int, **given):
    """A ``bdris`` problem with parameters ``given`` (the rest default), channels from ``default_rng(seed)``."""
    import numpy as np

    from wbench.scenarios.bdris import Bdris

    sc = Bdris()
    params = sc.resolve_params(given)
    return sc.problem(params, sc.draw(params, np.random.default_rng(seed)))


def solve_with(solver, problem, seed: int = 0, **options):
    """``solver.solve`` with a fresh ``RunContext`` seeded ``seed``; returns (solution, context)."""
    import numpy as np

    from wbench.solver import RunContext

    ctx = RunContext(np.random.default_rng(seed))
    return solver.solve(problem, options, ctx), ctx

"""Claims: a seed paper's headline results as checked, re-runnable verdicts (``wbench claims``).

A claim file (``claims/<paper>.toml``, read with :mod:`tomllib`) holds a ``[paper]`` table and one
``[[claim]]`` table per claim::

    [paper]
    key = "seed001"                       # the claim ids are "seed001/<id>"
    title = "Meta-learning based beamforming design for MISO downlink"
    authors = "J. Xia, D. Gunduz"
    scenario = "miso"                     # default scenario of the claims

    [[claim]]
    id = "mlbf-beats-wmmse-high-snr/paper-wmmse"
    where = "Sec. V, Figs. 2-3"
    statement = "the MLBF algorithm clearly surpasses the WMMSE performance in the high SNR regime ..."
    assert = "mean(A - B) > 0"            # the testable form (see below)
    for_each = "snr_db"                   # the assertion must hold at each value of this swept parameter
    A = "mlbf"                            # arm A: a solver (with options); or {solver = "...", set = {...}}
    B = "wmmse"
    note = "what the numbers mean, choices made"
    value = "metric:esr"                  # optional: compare a recorded run metric instead of the utility

    [claim.small]                         # minutes on 2 cores; also [claim.paper]: the paper's sizes
    set = { Nt = 4, K = 4 }
    sweep = { snr_db = [20, 30] }
    instances = 6                         # channel realisations per point (seed: 0 unless given)
    A = "mlbf[outer=100]"                 # an arm may be overridden per scale (e.g. a smaller budget)
    note = "why this budget"

Arms A and B run on the same seeded channels (a claim whose arms differ in a parameter, e.g.
``architecture``, is checked to pair realisations with equal channel fingerprints); only pairs where both
runs have status ``ok`` enter the statistics (the others are counted in the notes). ``assert`` is one of::

    mean(A - B) > t                # or <, >=, <=; a paired difference (bit/s/Hz)
    mean(A) / mean(B) >= r         # a ratio of means on the shared channels ("A >= 0.97 B")
    mean(A) / mean(B) in [lo, hi]  # equivalence: "approximately equal" as a band (also for mean(A - B))
    slope(mean(A) / mean(B) - 1, K) > 0   # a trend: the least-squares slope over the swept K
    slope(mean(A - B), snr_db) > 0

Statistics and the verdict rule are :mod:`wbench.verdict`'s (95% intervals; Bonferroni over the points of a
``for_each`` claim). Running goes through the engine exactly as ``wbench compare`` does: one plan over every
(configuration, solver) the selected claims need, each run stored as it completes, so an interrupted
``wbench claims`` resumes and claims that share runs share them. A malformed file is one line naming the
file, the claim and the field.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import math
import re
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from . import verdict as vd
from .params import ParamError, format_value

SCALES = ("small", "paper")
DEFAULT_DIR = "claims"
LEVEL = 0.95

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_EFFECT = r"mean\(A-B\)|mean\(A\)/mean\(B\)(?:-1)?"
_ASSERT = re.compile(
    rf"(?:slope\((?P<teff>{_EFFECT}),(?P<x>[A-Za-z_]\w*)\)|(?P<eff>{_EFFECT}))"
    rf"(?:(?P<rel>>=|<=|>|<)(?P<t>{_NUM})|in\[(?P<lo>{_NUM}),(?P<hi>{_NUM})\])"
)
ASSERT_FORMS = ("mean(A - B) > t", "mean(A) / mean(B) >= r", "mean(A) / mean(B) in [lo, hi]",
                "slope(mean(A) / mean(B) - 1, PARAM) > 0", "slope(mean(A - B), PARAM) > 0")


# -- the claim files --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Paper:
    key: str
    title: str
    authors: str
    path: str


@dataclass(frozen=True)
class Arm:
    """One side of a comparison: a solver selection item and parameters set on top of the scale's."""

    solver: str
    set: tuple[tuple[str, str], ...] = ()

    def text(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in self.set)
        return f"{self.solver} on {extra}" if extra else self.solver


@dataclass(frozen=True)
class Assertion:
    text: str
    effect: str  # "difference" or "ratio"
    region: vd.Region
    trend: str | None = None  # the swept parameter of a slope

    @property
    def kind(self) -> str:
        return "trend" if self.trend else self.effect


@dataclass(frozen=True)
class Scale:
    set: tuple[tuple[str, str], ...]
    sweep: tuple[tuple[str, tuple[str, ...]], ...]
    instances: int
    seed: int
    A: Arm
    B: Arm
    note: str = ""


@dataclass(frozen=True)
class Claim:
    paper: Paper
    id: str
    where: str
    statement: str
    assertion: Assertion
    scenario: str
    scales: Mapping[str, Scale]
    for_each: str | None = None
    note: str = ""
    #: What is compared: ``utility`` (default) or ``metric:NAME``, a run metric (``extra_metrics``).
    value: str = "utility"

    @property
    def full_id(self) -> str:
        return f"{self.paper.key}/{self.id}"


def _bad(path: Path | str, where: str, fld: str, msg: str) -> ParamError:
    return ParamError(f"{path}: {where}: field '{fld}': {msg}")


def _text(v: Any) -> str:
    return format_value(v) if not isinstance(v, bool) else str(v).lower()


def _str(tbl: Mapping[str, Any], key: str, path: Path, where: str, required: bool = True, default: str = "") -> str:
    if key not in tbl:
        if required:
            raise _bad(path, where, key, "missing")
        return default
    v = tbl[key]
    if not isinstance(v, str) or (required and not v.strip()):
        raise _bad(path, where, key, f"expected a non-empty string, got {v!r}")
    return v.strip()


def _params(v: Any, path: Path, where: str, fld: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(v, dict) or not all(isinstance(x, (str, int, float, bool)) for x in v.values()):
        raise _bad(path, where, fld, f"expected a table of name = value, got {v!r}")
    return tuple(sorted((str(k), _text(x)) for k, x in v.items()))


def _arm(v: Any, path: Path, where: str, fld: str) -> Arm:
    from .selection import parse_item, split_items

    if isinstance(v, str):
        solver, extra = v, ()
    elif isinstance(v, dict) and isinstance(v.get("solver"), str) and set(v) <= {"solver", "set"}:
        solver, extra = v["solver"], _params(v.get("set", {}), path, where, f"{fld}.set")
    else:
        raise _bad(path, where, fld, 'expected "solver[options]" or {solver = "...", set = {...}}')
    try:
        items = split_items(solver)
        if len(items) != 1:
            raise ParamError(f"names {len(items)} solvers; an arm is one solver")
        parse_item(items[0])
    except ParamError as exc:
        raise _bad(path, where, fld, str(exc)) from None
    return Arm(solver.strip(), extra)


def parse_assertion(text: str) -> Assertion:
    """The ``assert`` field (see the module docstring); :class:`ParamError` naming the valid forms."""
    s = re.sub(r"\s+", "", text)
    m = _ASSERT.fullmatch(s)
    if not m:
        raise ParamError(f"cannot read {text!r}; expected one of: {'; '.join(ASSERT_FORMS)}")
    eff = m["teff"] or m["eff"]
    if m["eff"] and eff.endswith("-1"):
        raise ParamError(f"{text!r}: write the ratio as mean(A) / mean(B) (the '- 1' form is for slopes)")
    effect = "difference" if eff == "mean(A-B)" else "ratio"
    if m["rel"]:
        t = float(m["t"])
        region = vd.Region(low=t) if m["rel"].startswith(">") else vd.Region(high=t)
    else:
        lo, hi = float(m["lo"]), float(m["hi"])
        if not lo < hi:
            raise ParamError(f"{text!r}: the band [lo, hi] needs lo < hi")
        region = vd.Region(lo, hi)
    return Assertion(text.strip(), effect, region, m["x"])


def _scale(tbl: Any, claim: Mapping[str, Any], path: Path, where: str, for_each: str | None,
           assertion: Assertion) -> Scale:
    if not isinstance(tbl, dict):
        raise _bad(path, where, "", "expected a table")
    known = {"set", "sweep", "instances", "seed", "A", "B", "note"}
    unknown = sorted(set(tbl) - known)
    if unknown:
        raise _bad(path, where, unknown[0], f"unknown; valid: {', '.join(sorted(known))}")
    base = dict(_params(claim.get("set", {}), path, where, "set"))
    base.update(_params(tbl.get("set", {}), path, where, "set"))
    sweep_raw = tbl.get("sweep", {})
    if not isinstance(sweep_raw, dict):
        raise _bad(path, where, "sweep", "expected a table of name = [values]")
    sweep = []
    for k, vals in sweep_raw.items():
        if not isinstance(vals, list) or not vals or not all(isinstance(x, (str, int, float)) for x in vals):
            raise _bad(path, where, f"sweep.{k}", f"expected a non-empty list of values, got {vals!r}")
        sweep.append((str(k), tuple(_text(x) for x in vals)))
    over = assertion.trend or for_each
    names = [k for k, _ in sweep]
    if len(names) > 1 or (names and names[0] != over):
        raise _bad(path, where, "sweep", f"may only sweep the parameter the assertion is over "
                   f"({'for_each = ' + repr(for_each) if for_each else assertion.trend or 'none: set for_each'}), "
                   f"got {', '.join(names)}")
    if over and not names:
        raise _bad(path, where, "sweep", f"the assertion is over {over!r}: sweep it")
    if assertion.trend and len(set(sweep[0][1])) < 2:
        raise _bad(path, where, "sweep", "a slope needs at least two values")
    if names and names[0] in base:
        raise _bad(path, where, "set", f"{names[0]} is both set and swept")
    instances = tbl.get("instances", claim.get("instances"))
    if not isinstance(instances, int) or isinstance(instances, bool) or instances < 2:
        raise _bad(path, where, "instances", f"expected an integer >= 2, got {instances!r}")
    seed = tbl.get("seed", claim.get("seed", 0))
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise _bad(path, where, "seed", f"expected a non-negative integer, got {seed!r}")
    arms = {}
    for name in ("A", "B"):
        raw = tbl.get(name, claim.get(name))
        if raw is None:
            raise _bad(path, where, name, "missing (give it in the claim or in this scale)")
        arms[name] = _arm(raw, path, where, name)
        clash = sorted(set(dict(arms[name].set)) & ({over} if over else set()))
        if clash:
            raise _bad(path, where, f"{name}.set", f"sets the swept parameter {clash[0]}")
    note = tbl.get("note", "")
    if not isinstance(note, str):
        raise _bad(path, where, "note", "expected a string")
    return Scale(tuple(sorted(base.items())), tuple(sweep), instances, seed, arms["A"], arms["B"], note.strip())


def load_file(path: str | Path) -> list[Claim]:
    """The claims of one file; a malformed file raises one-line :class:`ParamError` naming file and field."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ParamError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ParamError(f"{path}: cannot read: {exc.strerror}") from None
    unknown = sorted(set(data) - {"paper", "claim"})
    if unknown:
        raise _bad(path, "top level", unknown[0], "unknown; expected [paper] and [[claim]] tables")
    ptbl = data.get("paper")
    if not isinstance(ptbl, dict):
        raise _bad(path, "[paper]", "paper", "missing table")
    key = _str(ptbl, "key", path, "[paper]")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", key):
        raise _bad(path, "[paper]", "key", f"letters, digits, '-', '_' or '.' only, got {key!r}")
    paper = Paper(key, _str(ptbl, "title", path, "[paper]"), _str(ptbl, "authors", path, "[paper]"), str(path))
    default_scenario = _str(ptbl, "scenario", path, "[paper]", required=False)
    claims_raw = data.get("claim")
    if not isinstance(claims_raw, list) or not claims_raw:
        raise _bad(path, "top level", "claim", "expected one or more [[claim]] tables")
    out: list[Claim] = []
    seen: set[str] = set()
    known = {"id", "where", "statement", "assert", "for_each", "scenario", "A", "B", "set", "instances", "seed",
             "note", "value", *SCALES}
    for i, c in enumerate(claims_raw, start=1):
        where = f"claim #{i}"
        cid = _str(c, "id", path, where)
        where = f"claim {cid!r}"
        if not re.fullmatch(r"[A-Za-z0-9_.\-/]+", cid):
            raise _bad(path, where, "id", "letters, digits, '-', '_', '.' or '/' only")
        if cid in seen:
            raise _bad(path, where, "id", "duplicate id")
        seen.add(cid)
        bad = sorted(set(c) - known)
        if bad:
            raise _bad(path, where, bad[0], f"unknown; valid: {', '.join(sorted(known))}")
        text = _str(c, "assert", path, where)
        try:
            assertion = parse_assertion(text)
        except ParamError as exc:
            raise _bad(path, where, "assert", str(exc)) from None
        for_each = c.get("for_each")
        if for_each is not None and (not isinstance(for_each, str) or not for_each.strip()):
            raise _bad(path, where, "for_each", f"expected a parameter name, got {for_each!r}")
        if for_each and assertion.trend:
            raise _bad(path, where, "for_each", "a slope is over its own parameter; drop for_each")
        scenario = _str(c, "scenario", path, where, required=not default_scenario, default=default_scenario)
        scales = {}
        for s in SCALES:
            if s not in c:
                raise _bad(path, where, s, f"missing [claim.{s}] table (every claim has {' and '.join(SCALES)})")
            scales[s] = _scale(c[s], c, path, f"{where} [{s}]", for_each, assertion)
        note = c.get("note", "")
        if not isinstance(note, str):
            raise _bad(path, where, "note", "expected a string")
        value = c.get("value", "utility")
        if not isinstance(value, str) or not re.fullmatch(r"utility|metric:\w+", value):
            raise _bad(path, where, "value", f"expected 'utility' or 'metric:NAME', got {value!r}")
        out.append(Claim(paper, cid, _str(c, "where", path, where), _str(c, "statement", path, where),
                         assertion, scenario, scales, for_each, note.strip(), value))
    return out


def load(directory: str | Path = DEFAULT_DIR) -> list[Claim]:
    """Every ``*.toml`` claim file of ``directory``, in file-name order."""
    d = Path(directory)
    if not d.is_dir():
        raise ParamError(f"no claims directory {directory}")
    files = sorted(d.glob("*.toml"))
    if not files:
        raise ParamError(f"no claim files (*.toml) in {directory}")
    claims: list[Claim] = []
    for f in files:
        claims.extend(load_file(f))
    ids = [c.full_id for c in claims]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ParamError(f"claim id {dup[0]} appears in two files of {directory}")
    return claims


def select_claims(claims: Sequence[Claim], pattern: str | None) -> list[Claim]:
    """Claims whose full id matches ``pattern`` (a glob if it has ``*?[``, else a substring)."""
    if not pattern:
        return list(claims)
    glob = any(ch in pattern for ch in "*?[")
    out = [c for c in claims if (fnmatch.fnmatchcase(c.full_id, pattern) if glob else pattern in c.full_id)]
    if not out:
        raise ParamError(f"no claim matches {pattern!r}; claims: {', '.join(c.full_id for c in claims)}")
    return out


# -- what to run --------------------------------------------------------------------------------------
@dataclass
class ArmRuns:
    """An arm at one scale resolved against the registry: its configurations (one per point) and spec."""

    configs: list[Any]
    spec: Any
    instances: int


def resolve(claim: Claim, scale: str) -> dict[str, ArmRuns]:
    """Both arms' configurations and solver specs (one-line errors name the file, claim and field)."""
    from .engine import build_configs
    from .registry import get_registry
    from .selection import select

    sc = claim.scales[scale]
    where = f"{claim.paper.path}: claim {claim.id!r} [{scale}]"
    out = {}
    for name, arm in (("A", sc.A), ("B", sc.B)):
        try:
            specs, _ = select(get_registry(), arm.solver, claim.scenario)
            if len(specs) != 1:
                raise ParamError(f"{arm.solver!r} selects {len(specs)} solvers; an arm is one solver")
            params = dict(sc.set)
            params.update(arm.set)
            configs = build_configs(claim.scenario, params, {k: list(v) for k, v in sc.sweep}, sc.seed)
        except ParamError as exc:
            raise ParamError(f"{where}: field '{name}': {exc}") from None
        out[name] = ArmRuns(configs, specs[0], sc.instances)
    return out


def points(claim: Claim, scale: str) -> list[tuple[str, Any]]:
    """(label, value) per point: the values of the swept parameter, or one unnamed point."""
    sweep = claim.scales[scale].sweep
    if not sweep:
        return [("", None)]
    name, values = sweep[0]
    return [(f"{name}={v}", v) for v in values]


def plan_claims(store: Any, claims: Sequence[Claim], scale: str, jobs: int = 1, threads: int = 1,
                device: str = "cpu") -> tuple[Any, dict[str, dict[str, ArmRuns]]]:
    """One engine plan for everything the claims need (each (configuration, solver) once, at the largest
    instance count asked for), and the resolved arms per claim."""
    from .engine import Plan, plan

    resolved = {c.full_id: resolve(c, scale) for c in claims}
    need: dict[tuple[str, str], tuple[Any, Any, int]] = {}
    for arms in resolved.values():
        for arm in arms.values():
            for cfg in arm.configs:
                key = (cfg.key, arm.spec.label)
                n = max(arm.instances, need.get(key, (None, None, 0))[2])
                need[key] = (cfg, arm.spec, n)
    merged = Plan([], [], [])
    for cfg, spec, n in need.values():
        p = plan(store, [cfg], [spec], n, None, False, jobs, threads, device)
        if cfg not in merged.configs:
            merged.configs.append(cfg)
        if spec not in merged.specs:
            merged.specs.append(spec)
        merged.tasks.extend(p.tasks)
        merged.run_keys.update(p.run_keys)
        merged.total += p.total
        merged.done += p.done
        merged.notes.extend(n_ for n_ in p.notes if n_ not in merged.notes)
    return merged, resolved


# -- verdicts ------------------------------------------------------------------------------------------
@dataclass
class PointResult:
    label: str
    estimate: vd.Estimate
    verdict: str  # "-" for the per-point effects of a trend claim (informational)


@dataclass
class ClaimResult:
    claim: Claim
    scale: str
    verdict: str
    estimate: vd.Estimate
    at: str  # the deciding point ("" for one point or a trend)
    points: list[PointResult]
    budgets: dict[str, str]
    notes: list[str] = field(default_factory=list)
    #: Solver CPU seconds of each run behind the verdict, by run key (claims share runs).
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def cpu_s(self) -> float:
        return sum(self.cpu.values())

    @property
    def margin(self) -> float:
        return vd.margin(self.estimate, self.claim.assertion.region)


def _value(row: Mapping[str, Any], value: str) -> float:
    """The compared number of a run: its utility, or the run metric ``metric:NAME`` (NaN when not recorded)."""
    if value == "utility":
        return float(row["utility"])
    import json

    m = row.get("metrics")
    m = json.loads(m) if isinstance(m, str) else (m or {})
    return float(m.get(value.split(":", 1)[1], float("nan")))


def _point_pairs(a_rows: Sequence[Mapping[str, Any]], b_rows: Sequence[Mapping[str, Any]], where: str,
                 notes: list[str], value: str = "utility") -> dict[int, tuple[float, float]]:
    """Instance -> (u_A, u_B) where both runs are ``ok``; raises if an instance's channels differ."""
    a = {int(r["instance"]): r for r in a_rows}
    b = {int(r["instance"]): r for r in b_rows}
    for i in sorted(set(a) & set(b)):
        if a[i]["fingerprint"] != b[i]["fingerprint"]:
            raise ParamError(f"{where}: arms A and B are not on the same channels (realisation {i} has two "
                             "fingerprints); a claim compares two solvers, or two settings on equal channels")
    out = {}
    for name, runs, other in (("A", a, b), ("B", b, a)):
        bad: dict[str, int] = {}
        for i, r in runs.items():
            if r["status"] != "ok":
                bad[r["status"]] = bad.get(r["status"], 0) + 1
        if bad:
            what = ", ".join(f"{k} {v}" for k, v in sorted(bad.items()))
            notes.append(f"{where}: {name} runs not ok, left out of the pairs: {what}")
        missing = len(set(other) - set(runs))
        if missing:
            notes.append(f"{where}: {name} has no run on {missing} realisation(s) (declined?)")
    for i in sorted(set(a) & set(b)):
        if a[i]["status"] == "ok" and b[i]["status"] == "ok":
            out[i] = (_value(a[i], value), _value(b[i], value))
    return out


def evaluate(claim: Claim, scale: str, runs: Mapping[str, Mapping[str, Sequence[Mapping[str, Any]]]],
             budgets: Mapping[str, str] | None = None, level: float = LEVEL) -> ClaimResult:
    """The verdict of ``claim`` from its runs: ``runs[point_label]["A" | "B"]`` are store rows (instance,
    status, utility, fingerprint) of each arm at each point of :func:`points`."""
    notes: list[str] = []
    pts = points(claim, scale)
    pairs = {label: _point_pairs(runs.get(label, {}).get("A", []), runs.get(label, {}).get("B", []),
                                 f"{claim.full_id} {label}".strip(), notes, claim.value) for label, _ in pts}
    a = claim.assertion
    results: list[PointResult] = []
    if a.trend:
        common = sorted(set.intersection(*(set(p) for p in pairs.values())))
        for label, _ in pts:
            au = [pairs[label][i][0] for i in common]
            bu = [pairs[label][i][1] for i in common]
            est = vd.difference(au, bu, level) if a.effect == "difference" else vd.ratio(au, bu, level)
            if a.effect == "ratio":  # shown as the relative gain mean(A)/mean(B) - 1 the slope is of
                est = vd.Estimate(est.effect - 1, est.low - 1, est.high - 1, est.n, est.level)
            results.append(PointResult(label, est, "-"))
        xs = [float(v) for _, v in pts]
        A = [[pairs[label][i][0] for i in common] for label, _ in pts]
        B = [[pairs[label][i][1] for i in common] for label, _ in pts]
        overall = vd.slope(xs, A, B, a.effect, level)
        verdict, at = vd.decide(overall, a.region), ""
    else:
        lvl = vd.point_level(level, len(pts))
        for label, _ in pts:
            au = [u for u, _ in pairs[label].values()]
            bu = [u for _, u in pairs[label].values()]
            est = vd.difference(au, bu, lvl) if a.effect == "difference" else vd.ratio(au, bu, lvl)
            results.append(PointResult(label, est, vd.decide(est, a.region)))
            if len(au) > 1 and len(set(au)) == 1 and len(set(bu)) == 1:
                notes.append(f"{claim.full_id} {label}".strip() + f": {claim.value} is the same on every "
                             "realisation of each arm (one measurement per arm, e.g. a training cost): the "
                             "interval has zero width and no sampling meaning")
        verdict = vd.combine([p.verdict for p in results])
        deciding = _deciding(results, verdict, a.region)
        overall, at = deciding.estimate, deciding.label
    return ClaimResult(claim, scale, verdict, overall, at, results, dict(budgets or {}), notes)


def _deciding(results: Sequence[PointResult], verdict: str, region: vd.Region) -> PointResult:
    """The point that decides: the clearest refutation, the weakest support, the first open point."""
    if verdict == vd.REFUTED:
        return max((p for p in results if p.verdict == vd.REFUTED), key=lambda p: vd.margin(p.estimate, region))
    if verdict == vd.SUPPORTED:
        return min(results, key=lambda p: vd.margin(p.estimate, region))
    return next(p for p in results if p.verdict != vd.SUPPORTED)


def run(claims: Sequence[Claim], scale: str, db: str | Path, jobs: int = 1,
        execute: Callable[[Any, Any], None] | None = None, threads: int = 1,
        echo: Callable[[str], None] = lambda m: None) -> list[ClaimResult]:
    """Plan, execute (resumable, through the engine) and evaluate the claims at ``scale``."""
    from .engine import execute as engine_execute
    from .store import Store

    if scale not in SCALES:
        raise ParamError(f"unknown scale {scale!r}; valid: {', '.join(SCALES)}")
    with Store(db) as store:
        plan_, resolved = plan_claims(store, claims, scale, jobs, threads)
        for note in plan_.notes:
            echo(f"wbench: note: {note}")
        echo(f"wbench: {len(claims)} claim(s) at scale {scale}: {plan_.total} runs, "
             f"{plan_.done} already in {db}")
        if execute is None:
            engine_execute(plan_, store, jobs)
        else:
            execute(plan_, store)
        keys = set(plan_.run_keys.values())
        scenarios = sorted({c.scenario for c in claims})
        by_key = {r["run_key"]: r for s in scenarios for r in store.rows(s, [c.key for c in plan_.configs])
                  if r["run_key"] in keys}
    results = []
    for claim in claims:
        arms = resolved[claim.full_id]
        runs: dict[str, dict[str, list]] = {}
        cpu: dict[str, float] = {}
        for j, (label, _) in enumerate(points(claim, scale)):
            runs[label] = {}
            for name, arm in arms.items():
                cfg = arm.configs[j]
                rows = []
                for i in range(arm.instances):
                    r = by_key.get(plan_.run_keys.get((cfg.key, arm.spec.label, i)))
                    if r is not None:
                        rows.append(r)
                        cpu[r["run_key"]] = float(r["cpu_s"] or 0.0)
                runs[label][name] = rows
        budgets = {name: arm_text(arm.spec) for name, arm in arms.items()}
        res = evaluate(claim, scale, runs, budgets)
        res.cpu = cpu
        results.append(res)
    return results


def arm_text(spec: Any) -> str:
    """``label (budget)``: the solver as the leaderboard names it, and the budget it ran with."""
    return f"{spec.label} ({spec.budget})" if spec.budget else spec.label


# -- reports -------------------------------------------------------------------------------------------
def _decimals(est: vd.Estimate) -> int:
    """Decimals that show the interval's half-width to two significant digits (3 to 6 decimals otherwise)."""
    half = (est.high - est.low) / 2
    if not (math.isfinite(half) and half > 0):
        return 3
    return int(min(6, max(0, 1 - math.floor(math.log10(half)))))


def _num(x: float, signed: bool = False, decimals: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:+.{decimals}f}" if signed else f"{x:.{decimals}f}"


def effect_text(est: vd.Estimate, signed: bool = True) -> str:
    """``effect [low, high]`` with as many decimals as the interval's width warrants."""
    d = _decimals(est)
    return f"{_num(est.effect, signed, d)} [{_num(est.low, signed, d)}, {_num(est.high, signed, d)}]"


def _effect_name(claim: Claim) -> str:
    a = claim.assertion
    base = "mean(A - B)" if a.effect == "difference" else "mean(A) / mean(B)"
    if a.trend:
        base = f"slope of {'mean(A - B)' if a.effect == 'difference' else 'mean(A) / mean(B) - 1'} per {a.trend}"
    return base


def _signed(claim: Claim) -> bool:
    return claim.assertion.effect == "difference" or bool(claim.assertion.trend)


def config_text(claim: Claim, scale: str) -> str:
    sc = claim.scales[scale]
    parts = [f"{k}={v}" for k, v in sc.set]
    parts += [f"{k}={','.join(v)}" for k, v in sc.sweep]
    return f"{claim.scenario} {' '.join(parts)}, seed {sc.seed}, {sc.instances} channels per point"


def _interval_text(res: ClaimResult) -> str:
    m = len(res.points)
    if res.claim.assertion.trend or m == 1:
        return f"{res.estimate.level:.0%} interval"
    return f"{LEVEL:.0%} simultaneous ({res.estimate.level:.2%} per point, Bonferroni over {m})"


def print_results(results: Sequence[ClaimResult], console: Any = None) -> None:
    """A terminal summary that fits 120 columns: one row per claim, then the assertion, arms and notes of
    each claim with the solvers' budgets in a numbered legend."""
    from rich.table import Table
    from rich.text import Text

    from .render import make_console

    console = console or make_console()
    style = {vd.SUPPORTED: "green", vd.REFUTED: "red", vd.INCONCLUSIVE: "yellow"}
    for paper in dict.fromkeys(r.claim.paper for r in results):
        rows = [r for r in results if r.claim.paper == paper]
        table = Table(title=f"{paper.key}: {paper.authors}, \"{paper.title}\" ({rows[0].scale} scale)",
                      title_justify="left")
        for col in ("claim", "verdict", "effect [95% CI]", "at", "n"):
            table.add_column(col, justify="right" if col == "n" else "left", overflow="fold",
                             no_wrap=col in ("claim", "verdict", "effect [95% CI]"))
        legend: list[str] = []
        lines: list[str] = []
        for r in rows:
            table.add_row(Text(r.claim.id), Text(r.verdict, style=style[r.verdict]),
                          Text(effect_text(r.estimate, _signed(r.claim))), Text(r.at or "-"), str(r.estimate.n))
            arms = []
            for name in ("A", "B"):
                text = r.budgets.get(name, "")
                if text not in legend:
                    legend.append(text)
                extra = " ".join(f"{k}={v}" for k, v in getattr(r.claim.scales[r.scale], name).set)
                arms.append(f"{name} = [{legend.index(text) + 1}]" + (f" on {extra}" if extra else ""))
            lines.append(f"  {r.claim.id}: {r.claim.assertion.text}"
                         + (f" for each {r.claim.for_each}" if r.claim.for_each else "")
                         + f", {', '.join(arms)}; effect {_effect_name(r.claim)}, {_interval_text(r)}")
            lines += [f"    note: {note}" for note in r.notes]
        console.print(table)
        for line in lines:
            console.print(line, highlight=False, markup=False)
        for i, text in enumerate(legend, start=1):
            console.print(f"  [{i}] {text}", highlight=False, markup=False)
        console.print()


def to_markdown(results: Sequence[ClaimResult], command: str, versions: Mapping[str, str],
                made: str | None = None) -> str:
    """``claims/RESULTS.md``: the verdict table per paper, then each claim's statement, setup and points."""
    made = made or datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    scales = sorted({r.scale for r in results})
    cpu = sum({k: v for r in results for k, v in r.cpu.items()}.values())  # each shared run once
    out = ["# Claims of the seed papers: verdicts", "",
           f"Made with `{command}` ({', '.join(scales)} scale) on {made}; "
           + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".", "",
           "A claim is tested on paired runs: arm A and arm B on the same seeded channels, pairs where both runs "
           "are `ok`. **supported**: the 95% interval of the tested effect lies inside the region the claim "
           "states; **refuted**: wholly outside; **inconclusive**: it straddles a boundary. Claims over several "
           "points (\"at 20-40 dB\") use simultaneous intervals (Bonferroni) and must hold at each point; the "
           "`at` column names the deciding point. Intervals: Student-t for differences, Fieller for ratios of "
           "means, influence values over realisations for slopes (`wbench/verdict.py`). Small-scale runs are "
           "smaller than the papers' (stated per claim): a verdict is about the configuration and budgets shown, "
           f"nothing more. Solver CPU time of these runs (each shared run counted once): {cpu / 60:.1f} min.", ""]
    for paper in dict.fromkeys(r.claim.paper for r in results):
        rows = [r for r in results if r.claim.paper == paper]
        out += [f"## {paper.key}: {paper.authors}, \"{paper.title}\"", "",
                f"Claim file: `{Path(paper.path).as_posix()}`.", "",
                "| claim | paper | assertion | verdict | effect [95% CI] | at | n | A | B |",
                "|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            a = r.claim.assertion.text + (f" for each {r.claim.for_each}" if r.claim.for_each else "")
            sc = r.claim.scales[r.scale]
            arms = [r.budgets.get(n, "") + "".join(f" on {k}={v}" for k, v in getattr(sc, n).set) for n in "AB"]
            cells = [f"`{r.claim.id}`", r.claim.where, f"`{a}`", f"**{r.verdict}**",
                     effect_text(r.estimate, _signed(r.claim)), r.at or "-", str(r.estimate.n), *arms]
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        out.append("")
        for r in rows:
            c, sc = r.claim, r.claim.scales[r.scale]
            out += [f"### `{c.id}`: {r.verdict}", "",
                    f"> {c.statement}", f"> — {c.where}", "",
                    f"- tested: `{c.assertion.text}`" + (f" for each `{c.for_each}`" if c.for_each else "")
                    + f"; effect: {_effect_name(c)}, {_interval_text(r)}",
                    f"- configuration ({r.scale}): {config_text(c, r.scale)}",
                    f"- A: {c.scales[r.scale].A.text()} — {r.budgets.get('A', '')}",
                    f"- B: {c.scales[r.scale].B.text()} — {r.budgets.get('B', '')}",
                    f"- solver CPU time: {r.cpu_s:.0f} s"]
            if sc.note:
                out.append(f"- budgets: {sc.note}")
            if c.note:
                out.append(f"- note: {c.note}")
            for note in r.notes:
                out.append(f"- run note: {note}")
            if len(r.points) > 1 or c.assertion.trend:
                head = "effect" if not c.assertion.trend else (
                    "mean(A - B)" if c.assertion.effect == "difference" else "mean(A) / mean(B) - 1")
                out += ["", f"| point | {head} [interval] | n | verdict |", "|---|---|---|---|"]
                for p in r.points:
                    out.append(f"| {p.label} | {effect_text(p.estimate, _signed(c) or c.assertion.trend is not None)} "
                               f"| {p.estimate.n} | {p.verdict} |")
            out.append("")
    return "\n".join(out).rstrip() + "\n"


CSV_FIELDS = ("id", "scale", "verdict", "effect", "low", "high", "level", "n", "at", "margin", "assertion", "A",
              "B", "cpu_s")


def to_csv(results: Sequence[ClaimResult]) -> str:
    """The verdicts as CSV (what ``wbench check`` compares against)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in results:
        w.writerow({"id": r.claim.full_id, "scale": r.scale, "verdict": r.verdict,
                    "effect": f"{r.estimate.effect:.10g}", "low": f"{r.estimate.low:.10g}",
                    "high": f"{r.estimate.high:.10g}", "level": f"{r.estimate.level:.6g}", "n": r.estimate.n,
                    "at": r.at, "margin": f"{r.margin:.4g}", "assertion": r.claim.assertion.text,
                    "A": r.budgets.get("A", ""), "B": r.budgets.get("B", ""), "cpu_s": f"{r.cpu_s:.1f}"})
    return buf.getvalue()


def write(path: str | Path, results: Sequence[ClaimResult], command: str, versions: Mapping[str, str]) -> list[Path]:
    """Write the Markdown report at ``path`` and the verdict CSV beside it (same name, ``.csv``)."""
    md = Path(path)
    files = {md: to_markdown(results, command, versions), md.with_suffix(".csv"): to_csv(results)}
    for p, text in files.items():
        tmp = p.with_suffix(p.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(p)
    return list(files)


def read_verdicts(path: str | Path) -> dict[tuple[str, str], dict[str, str]]:
    """A committed verdict CSV: (claim id, scale) -> its row."""
    p = Path(path)
    if not p.is_file():
        raise ParamError(f"no committed verdicts at {p} (make them with wbench claims --write)")
    with p.open(newline="") as f:
        return {(r["id"], r["scale"]): r for r in csv.DictReader(f)}


# -- the CI re-check -------------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckSpec:
    """``[claims]`` of a leaderboard directory's ``suites.toml``: which claims ``wbench check`` re-derives."""

    directory: Path
    verdicts: Path
    ids: tuple[str, ...]
    scale: str = "small"


def load_check(directory: str | Path, data: Mapping[str, Any] | None = None) -> CheckSpec | None:
    """The ``[claims]`` table of ``DIR/suites.toml`` (``None`` if absent); paths relative to ``DIR``."""
    d = Path(directory)
    path = d / "suites.toml"
    if data is None:
        if not path.is_file():
            return None
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ParamError(f"{path}: {exc}") from None
    tbl = data.get("claims")
    if tbl is None:
        return None
    if not isinstance(tbl, dict):
        raise _bad(path, "[claims]", "claims", "expected a table")
    bad = sorted(set(tbl) - {"directory", "verdicts", "check"})
    if bad:
        raise _bad(path, "[claims]", bad[0], "unknown; valid: check, directory, verdicts")
    ids = tbl.get("check")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise _bad(path, "[claims]", "check", "expected a non-empty list of claim ids")
    cdir = d / _str(tbl, "directory", path, "[claims]")
    verdicts = d / _str(tbl, "verdicts", path, "[claims]")
    return CheckSpec(cdir, verdicts, tuple(ids))


def check(spec: CheckSpec, run_claims: Callable[[Sequence[Claim], str], list[ClaimResult]]) -> list[Any]:
    """Re-derive the listed claims' verdicts and compare with the committed ones (regression findings)."""
    from .regression import Finding

    claims = {c.full_id: c for c in load(spec.directory)}
    unknown = [i for i in spec.ids if i not in claims]
    if unknown:
        raise ParamError(f"[claims] check: unknown claim id {unknown[0]}; known: {', '.join(claims)}")
    committed = read_verdicts(spec.verdicts)
    findings = []
    todo = []
    for i in spec.ids:
        if (i, spec.scale) not in committed:
            findings.append(Finding("fail", "claims", i, "", f"no committed {spec.scale}-scale verdict in "
                                    f"{spec.verdicts.name}: wbench claims --scale {spec.scale} --write"))
        else:
            todo.append(claims[i])
    for r in run_claims(todo, spec.scale) if todo else []:
        old = committed[(r.claim.full_id, spec.scale)]
        now = f"{r.verdict}, effect {effect_text(r.estimate, _signed(r.claim))}" + (f" at {r.at}" if r.at else "")
        was = f"{old['verdict']}, effect {_num(float(old['effect']), _signed(r.claim))}"
        if old["verdict"] != r.verdict:
            findings.append(Finding("fail", "claims", r.claim.full_id, "",
                                    f"verdict changed: committed {was}; now {now}"))
        else:
            findings.append(Finding("note", "claims", r.claim.full_id, "", f"verdict unchanged: {now}"))
    return findings

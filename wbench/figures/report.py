"""``wbench report``: one self-contained HTML page per results database.

``DIR/index.html`` opens offline: inline CSS, no script, no remote reference; the figures are PNG files
written next to it (``SCENARIO-KIND.png``) with their data as CSV (``SCENARIO-KIND.csv``), all referenced
by relative paths. Per scenario it holds the leaderboard (the columns of ``wbench leaderboard``), the
figures of :mod:`wbench.figures` that apply (a kind that does not, e.g. a scaling plot without a swept
size, says why), the command that reproduces the runs, the channel fingerprints per configuration and the
versions of wbench, the solvers and the libraries.

The store does not record command lines, so the commands are reconstructed from the stored runs: the
solver labels (``name[options]``, the selection syntax), the swept and fixed parameters, the channel seed
or file, the number of realisations, the time budget and threads. The report then plans them on an empty
store (nothing is run) and says whether they give exactly the stored run identities.
"""

from __future__ import annotations

import html
import math
import shlex
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from ..params import ParamError, format_value
from . import KINDS, data as D, draw, figure_data

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:2em auto;max-width:1250px;
color:#222;padding:0 1em;line-height:1.4}
h1{font-size:1.6em}h2{font-size:1.3em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
h3{font-size:1.05em;margin-top:1.4em}
table{border-collapse:collapse;font-size:.82em;margin:.6em 0}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:right;white-space:nowrap}
th{background:#f3f3f3}td.l,th.l{text-align:left}tr.bound td{color:#666;font-style:italic}tr.opt td{font-weight:600}
tr.sep td{border-top:2px solid #999}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:.85em}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#444}.note{color:#666;font-size:.9em}
"""

_LEFT = {"solver", "budget", "failures"}


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def leaderboard_html(rows: Sequence[Mapping[str, Any]]) -> str:
    """The leaderboard of ``rows`` as an HTML table (same cells as the terminal table and Markdown)."""
    from ..ranking import leaderboard
    from ..render import caption, display_rows

    lb = leaderboard(rows)
    if lb.empty:
        return "<p>no results</p>"
    header, cells = display_rows(lb)
    out = [f"<table><caption>{esc(caption(lb))}</caption><thead><tr>"]
    out += [f'<th class="{"l" if h in _LEFT else ""}">{esc(h)}</th>' for h in header]
    out.append("</tr></thead><tbody>")
    prev = None
    rank = header.index("#")
    for key, row in zip(lb["config_key"], cells):
        cls = []
        if row[rank] in ("bound", "ref", "opt"):
            cls.append("opt" if row[rank] == "opt" else "bound")
        if prev is not None and key != prev:
            cls.append("sep")
        prev = key
        out.append(f'<tr class="{" ".join(cls)}">')
        out += [f'<td class="{"l" if h in _LEFT else ""}">{esc(c)}</td>' for h, c in zip(header, row)]
        out.append("</tr>")
    out.append("</tbody></table>")
    out.append('<p class="note">mean over runs with status ok; CI: 95% Student-t; win/gap: paired on the same '
               "channels against the rank-1 solver; ranking: feasible rate, then mean"
               + ("; opt: a certified global optimum (unranked); gap to opt / bound: mean over the same channels "
                  "of the reference minus the utility" if {"gap to opt", "gap to bound"} & set(header) else "")
               + ".</p>")
    return "".join(out)


# -- provenance -------------------------------------------------------------------------------------
@dataclass
class Command:
    """One ``wbench compare`` command, as parts (for checking) and as text (for people)."""

    scenario: str
    solvers: list[str]
    sets: dict[str, str]
    sweeps: dict[str, list[str]]
    instances: int
    seed: int = 0
    channel_digest: str | None = None  # a channel file, known only by its digest
    budget_seconds: float | None = None
    threads: int = 1

    def text(self) -> str:
        args = ["wbench", "compare", "--scenario", self.scenario, "--solvers", ",".join(self.solvers)]
        for k, v in self.sets.items():
            args += ["--set", f"{k}={v}"]
        for k, vs in self.sweeps.items():
            args += ["--sweep", f"{k}={','.join(vs)}"]
        args += ["--instances", str(self.instances)]
        if self.channel_digest is None and self.seed != 0:
            args += ["--seed", str(self.seed)]
        if self.channel_digest is not None:
            args += ["--channels", "FILE.npz"]
        if self.budget_seconds is not None:
            args += ["--budget-seconds", format_value(self.budget_seconds)]
        if self.threads != 1:
            args += ["--threads", str(self.threads)]
        note = f"  # FILE.npz: the channel file with digest {self.channel_digest}" if self.channel_digest else ""
        return shlex.join(args) + note

    def run_keys(self) -> set[str]:
        """The identities of the runs this command plans (planned on an empty store, nothing is run)."""
        import tempfile

        from .. import engine
        from ..registry import get_registry
        from ..selection import select
        from ..store import Store

        if self.channel_digest is not None:
            raise ParamError("runs on a channel file cannot be re-planned without the file")
        specs, _ = select(get_registry(), ",".join(self.solvers), self.scenario)
        configs = engine.build_configs(self.scenario, self.sets, self.sweeps, self.seed)
        with tempfile.TemporaryDirectory(prefix="wbench-report-") as tmp, Store(Path(tmp) / "plan.db") as store:
            plan = engine.plan(store, configs, specs, self.instances, self.budget_seconds, False, 1, self.threads)
        return set(plan.run_keys.values())


def commands(rows: Sequence[Mapping[str, Any]]) -> list[Command]:
    """``wbench compare`` commands that reproduce the stored runs (see the module docstring).

    Runs are grouped by channel source, seed, time budget and threads; within that, solvers that ran on
    the same configurations with the same number of realisations share a command, whose configurations
    become ``--sweep`` (when they form a full grid) or one command per configuration."""
    runs = D.runs_table(rows)
    scenario = str(runs["scenario"].iloc[0])
    defaults, default_sweep = _defaults(scenario)
    order = {k: i for i, k in enumerate(D.config_order(runs))}
    out: list[Command] = []
    group_cols = ["channels", "seed", "budget_seconds", "threads"]
    g_runs = runs.assign(**{c: runs[c].map(lambda v: "-" if v is None or v != v else str(v)) for c in group_cols})
    for _, g in g_runs.groupby(group_cols, sort=False, dropna=False):
        sub = runs.loc[g.index]
        n_of = sub.groupby(["config_key", "label"], sort=False)["instance"].max() + 1
        combos: dict[tuple[str, int], set[str]] = {}
        for (key, label), n in n_of.items():
            combos.setdefault((str(label), int(n)), set()).add(str(key))
        groups: dict[tuple[frozenset, int], list[str]] = {}
        for (label, n), keys in combos.items():
            groups.setdefault((frozenset(keys), n), []).append(label)
        ordered = sorted(groups.items(), key=lambda kv: (min(order[k] for k in kv[0][0]), -len(kv[1])))
        r0 = sub.iloc[0]
        src = str(r0["channels"])
        common = dict(seed=int(r0["seed"] or 0), channel_digest=None if src.startswith("gen:") else src,
                      budget_seconds=D.finite_or_none(r0["budget_seconds"]), threads=int(r0["threads"] or 1))
        for (keys, n), labels in ordered:
            part = sub[sub["config_key"].isin(keys)]
            firsts = part.drop_duplicates("config_key")
            params = [p for _, p in sorted(((order[k], p) for k, p in zip(firsts["config_key"], firsts["p"])),
                                           key=lambda t: t[0])]
            varying, constant = D.varying_params(part)
            values = {k: list(dict.fromkeys(format_value(p.get(k)) for p in params)) for k in varying}
            full_grid = math.prod(len(v) for v in values.values()) == len(params)
            per_config = [values] if full_grid else [{k: [format_value(p.get(k))] for k in varying} for p in params]
            sets = {k: format_value(v) for k, v in constant.items()
                    if defaults is None or k in default_sweep or format_value(defaults.get(k)) != format_value(v)}
            for sweep in per_config:
                one = {k: v[0] for k, v in sweep.items() if len(v) == 1}
                out.append(Command(scenario, list(labels), {**sets, **one},
                                   {k: v for k, v in sweep.items() if len(v) > 1}, n, **common))
    return out


def verified(cmds: Sequence[Command], rows: Sequence[Mapping[str, Any]]) -> str:
    """Whether the commands plan exactly the stored runs: a sentence for the report."""
    stored = {str(r["run_key"]) for r in rows}
    try:
        planned: set[str] = set()
        for c in cmds:
            planned |= c.run_keys()
    except Exception as exc:  # e.g. a solver or scenario from a plugin that is not installed here
        return f"not checked ({' '.join(str(exc).split())[:200]})"
    if planned == stored:
        return f"checked: they plan exactly the {len(stored)} stored runs (same run identities)"
    return (f"they plan {len(planned)} runs, {len(planned & stored)} of the {len(stored)} stored ones; the others "
            "were made by commands that cannot be recovered from the store")


def _defaults(scenario: str) -> tuple[dict[str, Any] | None, set[str]]:
    """(parameter defaults, parameters of the default sweep) of a registered scenario; (None, {}) if the
    scenario's plugin is not installed here (then every parameter is written out)."""
    try:
        from ..registry import get_registry

        sc = get_registry().scenario(scenario)
        return {k: p.default for k, p in sc.params.items()}, set(sc.default_sweep)
    except Exception:
        return None, set()


def fingerprints(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Per configuration: parameters, channel source, realisations, set fingerprint (as the leaderboard)."""
    from ..channels.channelset import set_fingerprint

    runs = D.runs_table(rows)
    varying, _ = D.varying_params(runs)
    out = []
    for key in D.config_order(runs):
        g = runs[runs["config_key"] == key]
        fps = g.drop_duplicates("instance").sort_values("instance")["fingerprint"]
        out.append({"configuration": D.config_label(g["p"].iloc[0], varying), "channels": g["channels"].iloc[0],
                    "seed": g["seed"].iloc[0], "realisations": len(fps),
                    "set fingerprint": set_fingerprint(list(fps)), "config key": key})
    return pd.DataFrame(out)


def versions(rows: Sequence[Mapping[str, Any]] | None = None) -> dict[str, str]:
    """Python, wbench and result-shaping libraries (as the committed leaderboards record), plus the
    plotting libraries and the wbench versions recorded in the runs."""
    from importlib import metadata

    from ..regression import versions as lib_versions

    out = lib_versions()
    for dist in ("matplotlib", "seaborn"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    if rows:
        recorded = sorted({str(r.get("wbench_version")) for r in rows})
        out["wbench (recorded in the runs)"] = ", ".join(recorded)
    return out


def _table(df: pd.DataFrame) -> str:
    head = "".join(f'<th class="l">{esc(c)}</th>' for c in df.columns)
    body = "".join("<tr>" + "".join(f'<td class="l">{esc(v)}</td>' for v in r) + "</tr>"
                   for r in df.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_FIGURE_TEXT = {
    "sweep": "Mean utility over ok runs against the swept parameter, 95% Student-t band (the leaderboard's "
             "mean and CI); bounds dashed.",
    "anytime": "Best-so-far utility against wall time from the solvers' checkpoint traces: median over "
               "channels and 25-75% band, a curve appearing once enough runs have an answer.",
    "profile": "Dolan-Moré performance profile (left) and fixed-target ECDF (right) of the time to {target:.0%} "
               "of the best utility any solver reached on each instance; failures count as not solved.",
    "scaling": "Median wall time per run (10-90% band) against the problem size on log-log axes; the legend "
               "gives the least-squares slope.",
}


def write_report(db: str | Path, out_dir: str | Path, scenarios: Sequence[str] | None = None,
                 kinds: Sequence[str] = KINDS, target: float = 0.99) -> Path:
    """Write ``out_dir/index.html`` with its PNG and CSV files; returns the page's path."""
    names = D.scenarios_in(db)
    if scenarios:
        unknown = [s for s in scenarios if s not in names]
        if unknown:
            raise ParamError(f"{db} holds no results for scenario {unknown[0]!r}; it holds: {', '.join(names)}")
        names = [s for s in names if s in scenarios]
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ParamError(f"--out {out_dir} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [f"<h1>wbench report</h1><p>results database <code>{esc(Path(db).name)}</code>, made {esc(made)}; "
             f"scenarios: {esc(', '.join(names))}.</p>"]
    all_rows: list[dict] = []
    for scen in names:
        _, rows = D.load_rows(db, scen)
        all_rows += rows
        parts.append(f'<h2 id="{esc(scen)}">{esc(scen)}</h2>')
        parts.append("<h3>Leaderboard</h3>" + leaderboard_html(rows))
        parts.append("<h3>Figures</h3>")
        for kind in kinds:
            try:
                fd = figure_data(kind, rows, target=target)
            except ParamError as exc:
                parts.append(f'<p class="note">{esc(kind)}: not drawn: {esc(exc)}</p>')
                continue
            stem = f"{_safe(scen)}-{kind}"
            D.save_figure(draw(kind, fd), out / f"{stem}.png")
            fd.to_csv(out / f"{stem}.csv", index=False, float_format="%.10g")
            text = _FIGURE_TEXT[kind].format(target=target)
            parts.append(f'<figure><img src="{esc(stem)}.png" alt="{esc(scen)} {esc(kind)}">'
                         f"<figcaption><b>{esc(kind)}.</b> {esc(text)} Data: "
                         f'<a href="{esc(stem)}.csv">{esc(stem)}.csv</a>.</figcaption></figure>')
        parts += _plugin_figures(db, scen, rows, out)
        cmds = commands(rows)
        parts.append("<h3>Command</h3><p class=\"note\">Reconstructed from the stored runs (the store does not "
                     f"record command lines; solvers selected by tag are spelled out by name; options the "
                     f"store does not keep, such as --jobs or --device, are left out); "
                     f"{esc(verified(cmds, rows))}:</p>")
        parts.append("<pre>" + esc("\n".join(c.text() for c in cmds)) + "</pre>")
        parts.append("<h3>Channels</h3>" + _table(fingerprints(rows)))
        sv = (pd.DataFrame(rows)[["label", "solver", "solver_version", "tags"]].drop_duplicates()
              .rename(columns={"solver_version": "version"}))
        parts.append("<h3>Solvers</h3>" + _table(sv))
    vers = versions(all_rows)
    parts.append("<h2>Versions</h2>" + _table(pd.DataFrame({"package": list(vers), "version": list(vers.values())})))
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>wbench report</title>"
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def _plugin_figures(db: str | Path, scen: str, rows: Sequence[Mapping[str, Any]], out: Path) -> list[str]:
    """The figure kinds plugins registered for ``scen`` (hook ``wbench_register_figures``), default options."""
    from .plugin import plugin_kinds

    parts = []
    for name, fk in plugin_kinds().items():
        if not fk.applies(scen):
            continue
        try:
            fd = fk.figure_data(rows, db)
        except ParamError as exc:
            parts.append(f'<p class="note">{esc(name)}: not drawn: {esc(exc)}</p>')
            continue
        stem = f"{_safe(scen)}-{_safe(name)}"
        D.save_figure(fk.draw(fd), out / f"{stem}.png")
        fd.to_csv(out / f"{stem}.csv", index=False, float_format="%.10g")
        parts.append(f'<figure><img src="{esc(stem)}.png" alt="{esc(scen)} {esc(name)}">'
                     f"<figcaption><b>{esc(name)}.</b> {esc(fk.description)} Data: "
                     f'<a href="{esc(stem)}.csv">{esc(stem)}.csv</a>.</figcaption></figure>')
    return parts


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


__all__ = ["write_report", "leaderboard_html", "commands", "Command", "verified", "fingerprints", "versions"]

"""Claims (``wbench/claims.py``, ``wbench/verdict.py``): the verdict logic on synthetic paired data whose
answer is known by construction, interval coverage against independent computations, the claim-file
parser's one-line errors, and an end-to-end ``wbench claims`` run and ``wbench check`` re-check on a tiny
claim with cheap solvers.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from wbench import claims as cl
from wbench import verdict as vd
from wbench.cli import main
from wbench.params import ParamError

REPO = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(12345)


# -- the statistics -----------------------------------------------------------------------------------
def paired(n: int, gain: float, noise: float, base: float = 20.0, spread: float = 3.0, seed: int = 0):
    """``b`` varies a lot between channels, ``a = b + gain + small noise``: a paired test sees the gain."""
    rng = np.random.default_rng(seed)
    b = base + spread * rng.standard_normal(n)
    return b + gain + noise * rng.standard_normal(n), b


def test_difference_is_the_student_t_interval_of_the_paired_differences():
    a, b = paired(12, 0.4, 0.3)
    est = vd.difference(a, b)
    lo, hi = stats.t.interval(0.95, 11, loc=np.mean(a - b), scale=stats.sem(a - b))
    assert (est.effect, est.low, est.high, est.n) == pytest.approx((np.mean(a - b), lo, hi, 12))


def test_clear_win_supported_clear_loss_refuted_noise_inconclusive():
    gt = vd.Region(low=0.0)
    win = vd.difference(*paired(20, 1.0, 0.2))
    loss = vd.difference(*paired(20, -1.0, 0.2))
    noise = vd.difference(*paired(20, 0.0, 0.5, seed=3))
    assert vd.decide(win, gt) == vd.SUPPORTED
    assert vd.decide(loss, gt) == vd.REFUTED
    assert noise.low < 0 < noise.high  # noise around the threshold: the interval straddles it
    assert vd.decide(noise, gt) == vd.INCONCLUSIVE
    # the pairing matters: the unpaired spread (3.0) would hide a gain of 1.0 at n = 20
    assert stats.ttest_ind(*paired(20, 1.0, 0.2)).pvalue > 0.05


def test_equal_arms_do_not_support_a_strict_improvement():
    b = 10 + RNG.standard_normal(8)
    est = vd.difference(b, b)
    assert (est.effect, est.low, est.high) == (0.0, 0.0, 0.0)
    assert vd.decide(est, vd.Region(low=0.0)) == vd.REFUTED  # "A > B" is false when A == B everywhere
    assert vd.decide(est, vd.Region(-0.1, 0.1)) == vd.SUPPORTED  # "A == B within 0.1" holds


def test_fewer_than_two_pairs_is_inconclusive():
    assert vd.decide(vd.difference([3.0], [1.0]), vd.Region(low=0.0)) == vd.INCONCLUSIVE
    assert vd.decide(vd.difference([], []), vd.Region(low=0.0)) == vd.INCONCLUSIVE
    assert vd.decide(vd.ratio([3.0], [1.0]), vd.Region(low=1.0)) == vd.INCONCLUSIVE


def test_ratio_both_ways_and_fieller_agrees_with_the_paired_difference_test():
    b = 20 + 3 * RNG.standard_normal(15)
    a_hi = 1.05 * b + 0.1 * RNG.standard_normal(15)  # clearly above 0.97 B
    a_lo = 0.90 * b + 0.1 * RNG.standard_normal(15)  # clearly below 0.97 B
    at_least = vd.Region(low=0.97)
    hi, lo = vd.ratio(a_hi, b), vd.ratio(a_lo, b)
    assert hi.effect == pytest.approx(a_hi.mean() / b.mean())
    assert vd.decide(hi, at_least) == vd.SUPPORTED
    assert vd.decide(lo, at_least) == vd.REFUTED
    # Fieller's bounds are the ratios r at which the t-test of mean(A - r B) = 0 is exactly at the edge
    q = stats.t.ppf(0.975, 14)
    for r in (hi.low, hi.high):
        d = a_hi - r * b
        assert abs(d.mean()) == pytest.approx(q * d.std(ddof=1) / math.sqrt(15), rel=1e-9)
    # ... so "mean(A) >= r0 mean(B)" is supported exactly when the interval of mean(A - r0 B) is above 0
    for r0 in (0.97, hi.low - 1e-6, hi.low + 1e-6, 1.06):
        by_ratio = vd.decide(hi, vd.Region(low=r0)) == vd.SUPPORTED
        by_diff = vd.decide(vd.difference(a_hi, r0 * b), vd.Region(low=0.0)) == vd.SUPPORTED
        assert by_ratio == by_diff


def test_ratio_interval_covers_the_true_ratio_about_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    hits = 0
    trials = 400
    for _ in range(trials):
        b = 10 + 2 * rng.standard_normal(10)
        a = 0.8 * b + 0.5 * rng.standard_normal(10)  # E[a] / E[b] = 0.8
        est = vd.ratio(a, b)
        hits += est.low <= 0.8 <= est.high
    assert 0.91 <= hits / trials <= 0.99


def test_ratio_with_a_denominator_near_zero_is_unbounded():
    rng = np.random.default_rng(1)
    est = vd.ratio(1 + rng.standard_normal(6), 0.01 * rng.standard_normal(6) + rng.standard_normal(6))
    assert (est.low, est.high) == (-math.inf, math.inf)
    assert vd.decide(est, vd.Region(low=1.0)) == vd.INCONCLUSIVE


def test_equivalence_band_both_ways():
    b = 10 + RNG.standard_normal(30)
    same = b * (1 + 0.002 * RNG.standard_normal(30))
    band = vd.Region(0.97, 1.03)
    assert vd.decide(vd.ratio(same, b), band) == vd.SUPPORTED
    assert vd.decide(vd.ratio(0.8 * b, b), band) == vd.REFUTED
    wide = b * (1 + 0.2 * RNG.standard_normal(30))  # centred in the band but far too noisy
    assert vd.decide(vd.ratio(wide, b), band) == vd.INCONCLUSIVE


def trend_data(gains: list[float], n: int = 10, noise: float = 0.02, seed: int = 0):
    """Points with relative gains ``gains`` (mean(A)/mean(B) - 1) on realisations shared across points."""
    rng = np.random.default_rng(seed)
    common = 10 + 2 * rng.standard_normal(n)  # the same realisation is good or bad at every point
    B = [common * (1 + 0.1 * j) + 0.3 * rng.standard_normal(n) for j in range(len(gains))]
    A = [b * (1 + g) + noise * rng.standard_normal(n) for b, g in zip(B, gains)]
    return A, B


def test_trend_slope_both_ways_and_its_value():
    xs = [2, 3, 4]
    up = vd.slope(xs, *trend_data([0.05, 0.10, 0.15]), of="ratio")
    down = vd.slope(xs, *trend_data([0.15, 0.10, 0.05]), of="ratio")
    flat = vd.slope(xs, *trend_data([0.10, 0.10, 0.10], noise=0.5, seed=4), of="ratio")
    assert up.effect == pytest.approx(0.05, abs=0.005)
    assert down.effect == pytest.approx(-0.05, abs=0.005)
    grows = vd.Region(low=0.0)
    assert vd.decide(up, grows) == vd.SUPPORTED
    assert vd.decide(down, grows) == vd.REFUTED
    assert vd.decide(flat, grows) == vd.INCONCLUSIVE


def test_slope_of_differences_is_the_least_squares_slope_and_its_interval_is_the_per_realisation_t():
    xs = np.array([20.0, 25.0, 30.0, 40.0])
    A, B = trend_data([0.0, 0.0, 0.0, 0.0], n=9)
    A = [a + 0.1 * x for a, x in zip(A, xs)]  # the gain grows by 0.1 per unit of x
    est = vd.slope(xs, A, B, of="difference")
    D = np.array(A) - np.array(B)
    per_realisation = np.array([np.polyfit(xs, D[:, i], 1)[0] for i in range(9)])
    assert est.effect == pytest.approx(np.polyfit(xs, D.mean(axis=1), 1)[0])
    lo, hi = stats.t.interval(0.95, 8, loc=per_realisation.mean(), scale=stats.sem(per_realisation))
    assert (est.low, est.high) == pytest.approx((lo, hi))
    assert est.effect == pytest.approx(0.1, abs=0.02)


def test_trend_needs_two_distinct_points():
    with pytest.raises(ValueError, match="two distinct"):
        vd.slope([3, 3], [[1.0, 2.0], [1.0, 2.0]], [[1.0, 1.0], [1.0, 1.0]])


def test_combining_points_supported_only_if_all_refuted_if_any():
    S, R, I = vd.SUPPORTED, vd.REFUTED, vd.INCONCLUSIVE
    assert vd.combine([S, S]) == S
    assert vd.combine([S, I]) == I
    assert vd.combine([S, R]) == R
    assert vd.combine([I, R]) == R
    assert vd.point_level(0.95, 2) == pytest.approx(0.975)


def test_margin_is_the_distance_to_the_nearest_boundary_in_half_widths():
    est = vd.Estimate(2.0, 1.0, 3.0, 10, 0.95)  # half-width 1
    assert vd.margin(est, vd.Region(low=0.0)) == pytest.approx(1.0)
    assert vd.margin(est, vd.Region(low=5.0)) == pytest.approx(2.0)
    assert vd.margin(est, vd.Region(low=2.5)) == 0.0
    assert vd.margin(est, vd.Region(0.5, 3.5)) == pytest.approx(0.5)


# -- claim evaluation on synthetic rows ------------------------------------------------------------------
CLAIM = """
[paper]
key = "toy"
title = "A toy paper"
authors = "A. Author"
scenario = "miso"

[[claim]]
id = "a-beats-b"
where = "Fig. 1"
statement = "A beats B at every SNR"
assert = "mean(A - B) > 0"
for_each = "snr_db"
A = "wmmse"
B = "mrt"
[claim.small]
set = { Nt = 2, K = 2 }
sweep = { snr_db = [10, 30] }
instances = 6
[claim.paper]
set = { Nt = 4, K = 4 }
sweep = { snr_db = [0, 10, 20] }
instances = 100
"""


def rows(us, statuses=None, fp="f"):
    statuses = statuses or ["ok"] * len(us)
    return [{"instance": i, "utility": u, "status": s, "fingerprint": f"{fp}{i}", "cpu_s": 0.0}
            for i, (u, s) in enumerate(zip(us, statuses))]


def toy_claim(tmp_path: Path, text: str = CLAIM) -> cl.Claim:
    p = tmp_path / "toy.toml"
    p.write_text(text)
    return cl.load_file(p)[0]


def test_a_claim_over_points_is_refuted_by_one_point_and_names_it(tmp_path):
    claim = toy_claim(tmp_path)
    b = list(10 + RNG.standard_normal(6))
    runs = {"snr_db=10": {"A": rows([u + 1 for u in b]), "B": rows(b)},
            "snr_db=30": {"A": rows([u - 1 for u in b]), "B": rows(b)}}
    res = cl.evaluate(claim, "small", runs)
    assert res.verdict == vd.REFUTED and res.at == "snr_db=30"
    assert [p.verdict for p in res.points] == [vd.SUPPORTED, vd.REFUTED]
    assert res.estimate.level == pytest.approx(0.975)  # Bonferroni over two points
    runs["snr_db=30"]["A"] = rows([u + 2 for u in b])
    res = cl.evaluate(claim, "small", runs)
    assert res.verdict == vd.SUPPORTED and res.at == "snr_db=10"  # the weaker of the two supports


def test_failed_runs_leave_the_pairs_and_are_noted(tmp_path):
    claim = toy_claim(tmp_path)
    b = list(10 + RNG.standard_normal(6))
    a = [u + 1 for u in b]
    runs = {"snr_db=10": {"A": rows(a, ["ok"] * 4 + ["timeout", "error"]), "B": rows(b)},
            "snr_db=30": {"A": rows(a), "B": rows(b)}}
    res = cl.evaluate(claim, "small", runs)
    assert res.points[0].estimate.n == 4 and res.points[1].estimate.n == 6
    assert any("error 1, timeout 1" in n for n in res.notes)


def test_arms_on_different_channels_are_refused(tmp_path):
    claim = toy_claim(tmp_path)
    runs = {"snr_db=10": {"A": rows([1.0, 2.0], fp="x"), "B": rows([1.0, 2.0], fp="y")},
            "snr_db=30": {"A": rows([1.0, 2.0]), "B": rows([1.0, 2.0])}}
    with pytest.raises(ParamError, match="not on the same channels"):
        cl.evaluate(claim, "small", runs)


# -- claim files: one line naming the file and the field --------------------------------------------------
@pytest.mark.parametrize("old, new, field", [
    ('assert = "mean(A - B) > 0"', 'assert = "A beats B"', "assert"),
    ('assert = "mean(A - B) > 0"', 'assert = "mean(A) / mean(B) in [1.1, 0.9]"', "assert"),
    ("instances = 6", "instances = 1", "instances"),
    ("instances = 6", 'instances = "six"', "instances"),
    ('B = "mrt"', 'B = "mrt,zf"', "B"),
    ('B = "mrt"', "B = 3", "B"),
    ('B = "mrt"\n', "", "B"),
    ("sweep = { snr_db = [10, 30] }", "sweep = { Nt = [2, 4] }", "sweep"),
    ("sweep = { snr_db = [10, 30] }", "sweep = { snr_db = [] }", "sweep.snr_db"),
    ('where = "Fig. 1"\n', "", "where"),
    ('where = "Fig. 1"', 'where = "Fig. 1"\nwhen = "now"', "when"),
    ("[claim.paper]", "[claim.huge]", "huge"),
    ('key = "toy"', 'key = "toy paper"', "key"),
    ('B = "mrt"', 'B = "mrt"\nvalue = "metric:"', "value"),
])
def test_a_malformed_claim_file_is_one_line_naming_file_and_field(tmp_path, old, new, field):
    assert old in CLAIM
    p = tmp_path / "bad.toml"
    p.write_text(CLAIM.replace(old, new, 1))
    with pytest.raises(ParamError) as exc:
        cl.load_file(p)
    msg = str(exc.value)
    assert "\n" not in msg and str(p) in msg and f"field '{field}'" in msg


def test_malformed_files_through_the_cli_are_one_error_line(tmp_path, capsys, fresh_registry):
    d = tmp_path / "claims"
    d.mkdir()
    (d / "bad.toml").write_text(CLAIM.replace("instances = 6", "instances = 0"))
    assert main(["claims", "--dir", str(d), "--list"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("wbench: error:") and "bad.toml" in err[0] and "instances" in err[0]
    (d / "bad.toml").write_text("[paper\nkey = 1")
    assert main(["claims", "--dir", str(d)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.toml" in err[0] and "TOML" in err[0]
    (d / "bad.toml").write_text(CLAIM.replace('A = "wmmse"', 'A = "nosuchsolver"'))
    assert main(["claims", "--dir", str(d), "--db", str(tmp_path / "x.db")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.toml" in err[0] and "field 'A'" in err[0] and "nosuchsolver" in err[0]
    assert not (tmp_path / "x.db").exists() or cl_rows(tmp_path / "x.db") == 0


def cl_rows(db: Path) -> int:
    from wbench.store import Store

    with Store(db) as s:
        return len(s.rows())


def test_the_committed_claim_files_load_and_resolve_at_both_scales(fresh_registry):
    claims = cl.load(REPO / "claims")
    ids = {c.full_id for c in claims}
    assert {"seed001/mlbf-beats-wmmse-high-snr/authors-wmmse", "seed001/mlbf-beats-wmmse-high-snr/paper-wmmse",
            "seed001/mlbf-equals-wmmse-low-snr/authors-wmmse", "seed001/mlbf-equals-wmmse-low-snr/paper-wmmse",
            "seed000/bdris-beats-ris-high-power/alg3", "seed000/bdris-gain-grows-with-K/alg3",
            "seed000/bdris-gain-grows-with-B/alg3", "seed000/meta-beats-ao"} <= ids
    for c in claims:
        for scale in cl.SCALES:
            arms = cl.resolve(c, scale)  # solvers, options and parameters are valid
            assert len(arms["A"].configs) == len(cl.points(c, scale))
    # the paper scale uses the papers' channel counts
    paper = {Path(c.paper.path).stem: c.scales["paper"].instances for c in claims}
    assert paper == {"seed000-bdris": 50, "seed001-mlbf": 1000, "seed002-ggml": 50, "seed000-isac": 15, "seed004-gml": 150,
                     "seed000-hrsma": 15, "seed003-metaddpg": 50}


def test_the_committed_verdicts_cover_every_claim_at_small_scale():
    verdicts = cl.read_verdicts(REPO / "claims" / "RESULTS.csv")
    for c in cl.load(REPO / "claims"):
        row = verdicts[(c.full_id, "small")]
        assert row["verdict"] in vd.VERDICTS
        assert row["assertion"] == c.assertion.text


# -- end to end: wbench claims, --write, and the check -------------------------------------------------
E2E = CLAIM.replace('A = "wmmse"', 'A = "wmmse[max_iter=20,starts=2]"') + """
[[claim]]
id = "zf-near-wmmse"
where = "Fig. 2"
statement = "ZF gets close to WMMSE at high SNR"
assert = "mean(A) / mean(B) >= 0.5"
A = "zf"
B = "wmmse[max_iter=20,starts=2]"
[claim.small]
set = { Nt = 2, K = 2, snr_db = 30 }
instances = 6
[claim.paper]
set = { Nt = 4, K = 4, snr_db = 30 }
instances = 100
"""


def test_wbench_claims_runs_resumes_writes_and_the_check_catches_a_changed_verdict(tmp_path, capsys,
                                                                                   fresh_registry):
    d = tmp_path / "claims"
    d.mkdir()
    (d / "toy.toml").write_text(E2E)
    db = tmp_path / "c.db"
    out_md = d / "RESULTS.md"
    assert main(["claims", "--dir", str(d), "--db", str(db), "--write", str(out_md)]) == 0
    cap = capsys.readouterr()
    assert "toy/a-beats-b" not in cap.err
    assert "supported" in cap.out  # WMMSE beats MRT at 10 and 30 dB; ZF reaches half of WMMSE at 30 dB
    verdicts = cl.read_verdicts(d / "RESULTS.csv")
    assert verdicts[("toy/a-beats-b", "small")]["verdict"] == vd.SUPPORTED
    assert verdicts[("toy/zf-near-wmmse", "small")]["verdict"] == vd.SUPPORTED
    md = out_md.read_text()
    assert "wbench claims --scale small" in md and "A beats B at every SNR" in md and "numpy" in md
    n_rows = cl_rows(db)
    # wmmse and mrt at two SNRs, and zf at 30 dB: the wmmse runs at 30 dB serve both claims
    assert n_rows == 2 * 6 * 2 + 6
    # resumable: a second run does no new run
    assert main(["claims", "--dir", str(d), "--db", str(db)]) == 0
    assert f"{n_rows} runs, {n_rows} already in" in capsys.readouterr().err
    assert cl_rows(db) == n_rows

    lb = tmp_path / "lb"
    lb.mkdir()
    (lb / "suites.toml").write_text(
        '[suites]\nquick = "--scenario miso --solvers mrt --instances 2 --set snr_db=10"\n'
        '[settings]\nreference = "mrt"\n'
        f'[claims]\ndirectory = "{d}"\nverdicts = "{d / "RESULTS.csv"}"\n'
        'check = ["toy/a-beats-b", "toy/zf-near-wmmse"]\n')
    assert main(["leaderboard", "--update", str(lb)]) == 0
    capsys.readouterr()
    assert main(["check", str(lb), "--suite", "claims"]) == 0
    out = capsys.readouterr().out
    assert "verdict unchanged: supported" in out and "no regression" in out
    # a committed verdict that the re-run does not reproduce is a finding
    csv_path = d / "RESULTS.csv"
    csv_path.write_text(csv_path.read_text().replace("toy/zf-near-wmmse,small,supported",
                                                     "toy/zf-near-wmmse,small,refuted"))
    assert main(["check", str(lb), "--suite", "claims"]) == 1
    fails = [line for line in capsys.readouterr().out.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 1 and "toy/zf-near-wmmse" in fails[0] and "refuted" in fails[0] and "now supported" in fails[0]


def test_the_ci_recheck_lists_committed_claims_with_a_committed_small_verdict():
    spec = cl.load_check(REPO / "leaderboards")
    assert spec is not None and spec.scale == "small"
    known = {c.full_id: c for c in cl.load(spec.directory)}
    verdicts = cl.read_verdicts(spec.verdicts)
    for cid in spec.ids:
        assert cid in known
        row = verdicts[(cid, "small")]
        assert row["verdict"] in (vd.SUPPORTED, vd.REFUTED)  # an inconclusive verdict is no regression test
        assert float(row["margin"]) >= 0.5  # stable: the interval is half a width or more from the threshold


@pytest.mark.parametrize("table, field", [
    ('[claims]\ndirectory = "c"\nverdicts = "c/R.csv"\n', "check"),
    ('[claims]\ndirectory = "c"\nverdicts = "c/R.csv"\ncheck = []\n', "check"),
    ('[claims]\nverdicts = "c/R.csv"\ncheck = ["x/y"]\n', "directory"),
    ('[claims]\ndirectory = "c"\nverdicts = "c/R.csv"\ncheck = ["x/y"]\nscale = "paper"\n', "scale"),
])
def test_a_malformed_claims_table_in_suites_toml_is_one_line(tmp_path, table, field):
    (tmp_path / "suites.toml").write_text('[suites]\nq = "--scenario miso --solvers mrt"\n' + table)
    with pytest.raises(ParamError) as exc:
        cl.load_check(tmp_path)
    assert "\n" not in str(exc.value) and "suites.toml" in str(exc.value) and f"field '{field}'" in str(exc.value)


def test_the_readme_shows_the_committed_verdicts():
    readme = (REPO / "README.md").read_text()
    verdicts = cl.read_verdicts(REPO / "claims" / "RESULTS.csv")
    shown = {}
    for line in readme.splitlines():
        if line.startswith("| `seed"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            shown[cells[0].split("`")[1]] = cells[2].strip("*")
    assert shown == {cid: row["verdict"] for (cid, scale), row in verdicts.items() if scale == "small"}
    assert "claims/RESULTS.md" in "\n".join(readme.splitlines()[:20])  # linked on the first screen


def test_a_claim_on_a_run_metric_compares_that_metric():
    claim = cl.load_file(REPO / "claims" / "seed000-isac.toml")[0]
    assert claim.value == "metric:esr"
    row = {"status": "ok", "utility": 99.0, "metrics": '{"esr": 3.5, "probing": 7.0}', "instance": 0,
           "fingerprint": "f"}
    assert cl._value(row, "metric:esr") == 3.5 and cl._value(row, "utility") == 99.0
    pairs = cl._point_pairs([row], [{**row, "metrics": '{"esr": 1.0}'}], "w", [], "metric:esr")
    assert pairs == {0: (3.5, 1.0)}


def test_a_metric_equal_on_every_realisation_is_noted_as_one_measurement(tmp_path):
    claim = toy_claim(tmp_path, CLAIM.replace('sweep = { snr_db = [10, 30] }', 'sweep = { snr_db = [10] }'))
    const = [dict(r, metrics='{"train_cpu_s": 2.0}') for r in rows([1.0, 2.0, 3.0])]
    base = [dict(r, metrics='{"train_cpu_s": 1.0}') for r in rows([1.0, 2.0, 3.0])]
    claim = dataclasses.replace(claim, value="metric:train_cpu_s")
    res = cl.evaluate(claim, "small", {"snr_db=10": {"A": const, "B": base}})
    assert res.estimate.effect == pytest.approx(1.0) and res.estimate.low == res.estimate.high  # 2 - 1
    assert any("one measurement per arm" in n for n in res.notes)
    varied = [dict(r, metrics=f'{{"train_cpu_s": {2.0 + i}}}') for i, r in enumerate(rows([1.0, 2.0, 3.0]))]
    res = cl.evaluate(claim, "small", {"snr_db=10": {"A": varied, "B": base}})
    assert not any("one measurement per arm" in n for n in res.notes)

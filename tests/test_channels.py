"""Channel sets: npz export/import round trip, and clear errors for bad files."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import compare, stored
from wbench.channels.channelset import FileChannels, GeneratedChannels, export_npz
from wbench.params import ParamError


def test_npz_round_trip_gives_identical_results(tmp_path, fresh_registry, capsys):
    sc = fresh_registry.scenario("miso")
    params = sc.resolve_params({"Nt": 3, "K": 2})
    path = tmp_path / "ch.npz"
    fps = export_npz(path, sc, params, seed=5, n=6)
    src = FileChannels(path, sc, params)
    gen = GeneratedChannels(sc, params, 5)
    for i in range(6):
        np.testing.assert_array_equal(src.get(i)[0]["H"], gen.get(i)[0]["H"])
        assert src.get(i)[1] == gen.get(i)[1] == fps[i]
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    assert compare(a, "--solvers", "mrt,rzf", "--set", "Nt=3", "--set", "K=2", "--set", "snr_db=10",
                   "--seed", "5", "--instances", "6") == 0
    assert compare(b, "--solvers", "mrt,rzf", "--set", "Nt=3", "--set", "K=2", "--set", "snr_db=10",
                   "--channels", str(path), "--instances", "6") == 0
    ua = {(r["label"], r["instance"]): (r["utility"], r["fingerprint"]) for r in stored(a)}
    ub = {(r["label"], r["instance"]): (r["utility"], r["fingerprint"]) for r in stored(b)}
    assert ua == ub


def test_external_channels_in_the_documented_layout(tmp_path, fresh_registry):
    """A file written by someone else (no metadata) with the documented layout is accepted."""
    rng = np.random.default_rng(0)
    H = rng.normal(size=(4, 2, 3)) + 1j * rng.normal(size=(4, 2, 3))
    np.savez(tmp_path / "ext.npz", H=H)
    sc = fresh_registry.scenario("miso")
    src = FileChannels(tmp_path / "ext.npz", sc, sc.resolve_params({"Nt": 3, "K": 2}))
    assert len(src) == 4
    np.testing.assert_array_equal(src.get(2)[0]["H"], H[2])


@pytest.mark.parametrize(
    "arrays,message",
    [
        ({"H": np.zeros((4, 2, 5), complex)}, "shape"),
        ({"G": np.zeros((4, 2, 3), complex)}, "lacks arrays H"),
        ({"H": np.zeros((4, 2, 3))}, "dtype"),
        ({"H": np.full((4, 2, 3), np.nan + 0j)}, "NaN"),
    ],
)
def test_bad_channel_files_are_refused_with_a_reason(tmp_path, fresh_registry, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    sc = fresh_registry.scenario("miso")
    with pytest.raises(ParamError, match=message):
        FileChannels(tmp_path / "bad.npz", sc, sc.resolve_params({"Nt": 3, "K": 2}))


def test_not_an_npz_file(tmp_path, fresh_registry):
    (tmp_path / "x.npz").write_text("hello")
    sc = fresh_registry.scenario("miso")
    with pytest.raises(ParamError, match="cannot read channel file"):
        FileChannels(tmp_path / "x.npz", sc, sc.resolve_params({}))

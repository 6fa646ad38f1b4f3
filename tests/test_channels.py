"""Channel sets: npz export/import round trip, and clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


# -- corrupted files: one clean error, whatever the bytes -------------------------------------------------
def _valid_npz_bytes(tmp: Path) -> bytes:
    from wbench.scenarios.miso import Miso

    sc = Miso()
    export_npz(tmp / "valid.npz", sc, sc.resolve_params({"Nt": 3, "K": 2}), seed=1, n=3)
    return (tmp / "valid.npz").read_bytes()


@pytest.fixture(scope="module")
def valid_npz(tmp_path_factory) -> bytes:
    return _valid_npz_bytes(tmp_path_factory.mktemp("valid"))


def _read(tmp: Path, data: bytes):
    from wbench.scenarios.miso import Miso

    path = tmp / "fuzz.npz"
    path.write_bytes(data)
    sc = Miso()
    return FileChannels(path, sc, sc.resolve_params({"Nt": 3, "K": 2}))


def _refused(tmp: Path, data: bytes) -> str:
    with pytest.raises(ParamError) as exc:  # any other exception type fails the test
        _read(tmp, data)
    msg = str(exc.value)
    assert "\n" not in msg and "fuzz.npz" in msg
    return msg


def test_the_fuzz_target_reads_the_intact_file(tmp_path, valid_npz):
    assert len(_read(tmp_path, valid_npz)) == 3  # so the refusals below are about the damage alone


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 10**6))
def test_a_truncated_file_is_refused_in_one_line(tmp_path, valid_npz, cut):
    _refused(tmp_path, valid_npz[: cut % len(valid_npz)])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(max_size=3000), st.binary(max_size=3000).map(lambda b: b"PK\x03\x04" + b),
                      st.binary(max_size=3000).map(lambda b: b"\x93NUMPY\x01\x00" + b)))
def test_random_bytes_are_refused_in_one_line(tmp_path, data):
    _refused(tmp_path, data)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=st.integers(0, 10**6), junk=st.binary(min_size=1, max_size=64))
def test_a_damaged_file_is_read_or_refused_in_one_line_never_a_traceback(tmp_path, valid_npz, start, junk):
    """Bytes overwritten somewhere: the reader either refuses the file with a ParamError or (damage in parts it
    does not use, e.g. the metadata entry, that still pass the zip CRC check) reads valid channels."""
    i = start % len(valid_npz)
    data = valid_npz[:i] + junk + valid_npz[i + len(junk):]
    try:
        src = _read(tmp_path, data)
    except ParamError as exc:
        assert "\n" not in str(exc)
    else:
        for k in range(len(src)):
            assert np.all(np.isfinite(src.get(k)[0]["H"]))


def test_an_npy_file_and_object_arrays_are_refused_with_the_reason(tmp_path):
    np.save(tmp_path / "plain.npy", np.zeros((3, 2, 3), complex))
    assert "not a .npz file" in _refused(tmp_path, (tmp_path / "plain.npy").read_bytes())
    np.savez(tmp_path / "obj.npz", H=np.array([{"a": 1}], dtype=object))
    assert "object arrays" in _refused(tmp_path, (tmp_path / "obj.npz").read_bytes())


def test_cli_with_a_corrupted_channel_file_prints_one_line_and_exits_2(tmp_path, valid_npz):
    import os
    import subprocess
    import sys

    bad = tmp_path / "bad.npz"
    bad.write_bytes(valid_npz[: len(valid_npz) // 2])
    env = dict(os.environ, WBENCH_LOAD_PLUGINS="")
    r = subprocess.run([sys.executable, "-m", "wbench.cli", "compare", "--scenario", "miso", "--solvers", "mrt",
                        "--set", "Nt=3", "--set", "K=2", "--channels", str(bad), "--instances", "2",
                        "--db", str(tmp_path / "x.db")], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wbench: error: cannot read channel file"), r.stderr
    assert "Traceback" not in r.stderr and str(bad) in lines[0]

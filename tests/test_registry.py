"""The plugin system: built-ins through the hooks, entry points, allow/block lists, selection by tag."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from wbench import registry
from wbench.params import ParamError
from wbench.registry import PluginError, Registry
from wbench.selection import parse_item, select, split_items


def test_builtins_are_registered_through_the_hooks(fresh_registry):
    hooks = {p.name: p.hooks for p in fresh_registry.plugins}
    assert hooks["wbench.scenarios.miso"] == ("wbench_register_scenarios",)
    assert hooks["wbench.solvers.wmmse.wmmse"] == ("wbench_register_solvers",)
    assert {"mrt", "zf", "rzf", "wmmse", "dpc-bound"} <= set(fresh_registry.solvers)
    assert all(s.origin == "built-in" for s in fresh_registry.solvers.values())


def _fake_entry_points(monkeypatch, module: str, name: str = "wbench-faulty"):
    eps = [EntryPoint(name=name, value=module, group="wbench")]
    monkeypatch.setattr(registry, "entry_points", lambda group: eps if group == "wbench" else [])


def test_entry_point_plugins_load_unless_not_allowed(monkeypatch):
    _fake_entry_points(monkeypatch, "tests.faulty_plugin")
    monkeypatch.delenv("WBENCH_LOAD_PLUGINS", raising=False)
    reg = Registry()
    reg.load_builtins()
    reg.load_entrypoints()
    assert reg.solvers["t-noop"].origin == "wbench-faulty"
    for env, present in [("", False), ("other", False), ("wbench-faulty", True)]:
        monkeypatch.setenv("WBENCH_LOAD_PLUGINS", env)
        reg = Registry()
        reg.load_entrypoints()
        assert ("t-noop" in reg.solvers) is present
    monkeypatch.delenv("WBENCH_LOAD_PLUGINS")
    monkeypatch.setenv("WBENCH_DISABLE_PLUGINS", "wbench-faulty")
    reg = Registry()
    reg.load_entrypoints()
    assert "t-noop" not in reg.solvers


def test_a_broken_plugin_is_reported_not_fatal(monkeypatch):
    _fake_entry_points(monkeypatch, "tests.no_such_module", "wbench-broken")
    monkeypatch.delenv("WBENCH_LOAD_PLUGINS", raising=False)
    reg = Registry()
    reg.load_builtins()
    reg.load_entrypoints()
    assert "miso" in reg.scenarios
    assert len(reg.warnings) == 1 and "wbench-broken" in reg.warnings[0]


def test_duplicate_names_are_refused():
    import types

    from wbench import hookimpl
    from wbench.solvers.baselines.linear import InitialPointBaseline

    reg = Registry()
    reg.load_builtins()
    with pytest.raises(PluginError, match="registered twice"):
        reg.load_builtins(["wbench.solvers.baselines.linear"])
    impostor = types.ModuleType("impostor")
    impostor.wbench_register_solvers = hookimpl(lambda register: register(InitialPointBaseline("mrt", "x")))
    with pytest.raises(PluginError, match="solver 'mrt' from elsewhere clashes with one from built-in"):
        reg.add_module(impostor, "elsewhere", "1")


def test_selection_by_tag_and_name(fresh_registry):
    specs, _ = select(fresh_registry, "baseline,bound", "miso")
    assert {s.name for s in specs} == {"mrt", "zf", "rzf", "dpc-bound", "closed-form"}
    specs, _ = select(fresh_registry, "wmmse[max_iter=10,init=mrt],mrt,mrt", "miso")
    assert [s.label for s in specs] == ["wmmse[init=mrt,max_iter=10]", "mrt"]
    assert "max_iter=10" in specs[0].budget


@pytest.mark.parametrize("text", ["wmmse[max_iter=10", "a]", "wmmse[max_iter]", "mrt,,zf", "wmmse[=3]"])
def test_malformed_selections_are_param_errors(text, fresh_registry):
    with pytest.raises(ParamError):
        select(fresh_registry, text, "miso")


def test_split_and_parse_items():
    assert split_items("a[x=1,y=2],b, c") == ["a[x=1,y=2]", "b", "c"]
    assert parse_item("a[x=1, y=z]") == ("a", {"x": "1", "y": "z"})


def test_every_hook_is_documented_in_the_readme():
    """Like datasette's test: a hook without a README section is a failing test."""
    from pathlib import Path

    from wbench import hookspecs

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    hooks = [n for n in dir(hookspecs) if n.startswith("wbench_")]
    assert hooks
    for name in hooks:
        assert f"`{name}(" in readme, f"hook {name} is not documented in README.md"


def test_readme_plugin_example_works(tmp_path, fresh_registry):
    """The 'Writing a plugin' example, taken verbatim from the README, registers and runs."""
    import re
    import types
    from pathlib import Path

    import numpy as np

    from tests.helpers import compare, stored

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    code = re.search(r"```python\n# my_package/wbench_plugin.py\n(.*?)```", readme, re.S).group(1)
    module = types.ModuleType("readme_plugin")
    exec(compile(code, "README.md", "exec"), module.__dict__)
    fresh_registry.add_module(module, "readme", "0")
    db = tmp_path / "p.db"
    assert compare(db, "--solvers", "half-mrt,mrt", "--set", "snr_db=10", "--set", "K=1", "--instances", "3") == 0
    rows = {(r["solver"], r["instance"]): r["utility"] for r in stored(db)}
    for i in range(3):
        full = rows[("mrt", i)]  # log2(1 + P g): half the power gives log2(1 + (2^full - 1) / 2)
        assert rows[("half-mrt", i)] == __import__("pytest").approx(np.log2(1 + (2**full - 1) / 2))


def test_the_word_none_is_a_value_unless_the_option_is_nullable():
    from wbench.params import Param

    assert Param("all", nullable=True).parse("project", "none") is None
    assert Param("none").parse("warm", "none") == "none"
    assert Param("none").parse("warm", "diagonal") == "diagonal"

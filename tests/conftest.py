"""Test configuration: only built-in plugins (whatever is installed on the machine must not leak in),
plus fixtures for faulty test solvers registered through the real hooks."""

from __future__ import annotations

import os

os.environ["WBENCH_LOAD_PLUGINS"] = ""  # allow-list of installed plugin distributions: none
os.environ["WBENCH_JOBS"] = "1"  # in-process runs unless a test asks for workers

import pytest

from wbench import registry


@pytest.fixture
def fresh_registry(monkeypatch):
    """A process-wide registry rebuilt from scratch, restored after the test."""
    monkeypatch.setattr(registry, "_REGISTRY", None)
    from wbench.engine import channel_source

    channel_source.cache_clear()
    reg = registry.get_registry()
    yield reg
    channel_source.cache_clear()


@pytest.fixture
def faulty_registry(fresh_registry):
    """The built-ins plus the faulty solvers of ``tests/faulty_plugin.py``, registered through the hooks."""
    from tests import faulty_plugin

    fresh_registry.add_module(faulty_plugin, "tests", "0")
    return fresh_registry


@pytest.fixture
def toy_registry(fresh_registry):
    """The built-ins plus the toy single-user RIS scenario of ``tests/toy_plugin.py``."""
    from tests import toy_plugin

    fresh_registry.add_module(toy_plugin, "tests", "0")
    return fresh_registry


@pytest.fixture
def one_torch_thread():
    """One torch thread, as the harness runs solvers (tiny ops are far slower with more on a busy machine)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

"""Shared set-up of the benchmarks: a module that sets ``TORCH_THREADS = n`` runs every benchmark with ``n`` torch
threads (restored afterwards), so that its timings and its same-run references use the same threads."""

from __future__ import annotations

from typing import Iterator

import pytest


@pytest.fixture(autouse=True)
def _torch_threads(request: pytest.FixtureRequest) -> Iterator[None]:
    n = getattr(request.module, "TORCH_THREADS", None)
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)

"""The toy scenario's own oracles: its utility equals the torch loss, and the closed forms are attained."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.toy_plugin import ToyRis


def make(arch, nt=2, b=4, seed=0):
    sc = ToyRis()
    params = sc.resolve_params({"Nt": nt, "B": b, "architecture": arch})
    return sc.problem(params, sc.draw(params, np.random.default_rng(seed)))


@pytest.mark.parametrize("arch", ["unitary", "diagonal"])
def test_loss_is_negative_utility(arch):
    prob = make(arch)
    x = prob.initial("random", np.random.default_rng(1))
    xt = {k: torch.tensor(v) for k, v in x.items()}
    assert prob.loss_torch(xt).item() == pytest.approx(-prob.utility(x), rel=1e-12)


def test_unitary_closed_form_is_attained_by_the_aligning_unitary():
    prob = make("unitary", nt=3, b=5)
    u, s, vh = np.linalg.svd(prob.G)
    p = vh[0].conj() * np.sqrt(prob.power)  # dominant right singular vector
    a = u[:, 0]  # Phi must map a to h/||h|| (up to phase): Phi = Q_h Q_a^H with first columns h/||h||, a
    def basis(v):
        q, _ = np.linalg.qr(np.column_stack([v, np.random.default_rng(0).normal(size=(5, 4))]))
        return q * (v[0] / q[0, 0]) / abs(v[0] / q[0, 0])
    phi = basis(prob.h / np.linalg.norm(prob.h)) @ basis(a).conj().T
    x = {"p": p, "Phi": phi}
    assert prob.feasibility(x).feasible
    assert prob.utility(x) == pytest.approx(prob.closed_form(), rel=1e-10)


def test_diagonal_closed_form_is_attained_by_co_phasing():
    prob = make("diagonal", nt=1, b=6)
    phi = np.exp(1j * (np.angle(prob.h) - np.angle(prob.G[:, 0])))
    x = {"p": np.array([np.sqrt(prob.power) + 0j]), "Phi": phi}
    assert prob.utility(x) == pytest.approx(prob.closed_form(), rel=1e-12)

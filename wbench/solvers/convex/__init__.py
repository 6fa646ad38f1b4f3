"""Convex-optimisation solvers: ``saa-wmmse`` and ``sca`` (cvxpy / Clarabel), and ``brb`` (the certified global
optimum of linear precoding by branch-reduce-and-bound over the rate region, whose feasibility checks are
SINR-constrained power minimisations: a fixed-point iteration, or the SOCP through cvxpy) with its
power-minimisation oracles."""

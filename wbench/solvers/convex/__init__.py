"""Solvers built on convex sub-problems: ``brb`` (the certified global optimum of linear precoding by
branch-reduce-and-bound over the rate region, whose feasibility checks are SINR-constrained power
minimisations: a fixed-point iteration, or the SOCP through cvxpy) and the shared power-minimisation oracles."""

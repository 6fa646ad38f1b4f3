"""Convex-optimisation solvers built on cvxpy: saa-wmmse, sca, brb."""

"""Gradient-based solvers on the differentiable loss: projected Adam and the meta-learning optimiser."""

"""Solvers built around learned update rules (the LSTM optimisers of MLBF)."""

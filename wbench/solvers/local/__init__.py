"""Local NLP solvers (SciPy SLSQP / trust-constr) from multiple starts."""

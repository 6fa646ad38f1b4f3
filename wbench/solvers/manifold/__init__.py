"""Riemannian optimisation (pymanopt) on the product manifold built from the constraint sets."""

"""Built-in solvers, one sub-package per family, registered through the same hooks as third-party plugins.

``baselines/`` (MRT, ZF, RZF, closed forms), ``wmmse/`` (WMMSE, DPC bound), ``manifold/`` (pymanopt),
``alternating/`` (AO), ``gradient/`` (adam, metaopt), ``learned/`` (MLBF), ``local/`` (multistart SciPy);
``common/`` holds the shared plumbing (autodiff, the gradient loop, manifold adapters), not methods.
"""

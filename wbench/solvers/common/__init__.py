"""Plumbing shared by the solvers, not solvers themselves: torch autodiff glue, the best-iterate gradient
loop, pymanopt manifold adapters."""

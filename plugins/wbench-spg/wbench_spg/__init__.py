"""wbench-spg: the nonmonotone spectral projected gradient method (Birgin, Martinez & Raydan 2000) as a
generic wbench solver, ``spg``. See :mod:`wbench_spg.spg`."""

from .spg import Spg, spg_run

__version__ = "0.1.0"

__all__ = ["Spg", "spg_run", "__version__"]

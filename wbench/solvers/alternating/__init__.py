"""Alternating optimisation: block updates of one variable with the others fixed (AO for BD-RIS ...)."""

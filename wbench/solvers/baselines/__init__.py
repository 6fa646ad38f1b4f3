"""Simple reference precoders (MRT, ZF, RZF) and closed-form optima where one is known."""

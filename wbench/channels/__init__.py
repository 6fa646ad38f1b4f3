"""Channel models shared by scenarios (pure functions of parameters and an RNG: path loss, Rayleigh fading, ...),
and seeded, fingerprinted channel sets."""

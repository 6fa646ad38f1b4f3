"""Channel models shared by scenarios, and seeded, fingerprinted channel sets."""

"""Making text with a model: the batched, seeded sampler (sampling.py)."""

"""The compare stage: a grid of training runs from shared snapshots and reference log-probs."""

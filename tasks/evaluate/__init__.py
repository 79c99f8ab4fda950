"""Evaluate a checkpoint on the eval split (evaluation, plots) and decide its promotion
(promotion: the gate and the champion alias)."""

"""Train: snapshots of the marts, the loss registry (algorithms) and losses, the training loop
(trainer, run as a child process) with its data plan, objective and state, and checkpoints."""

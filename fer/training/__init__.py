"""Training: train state, pure jit steps, the resumable loop, checkpoints, writers."""

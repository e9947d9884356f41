"""Training loops, checkpoints and run configs."""

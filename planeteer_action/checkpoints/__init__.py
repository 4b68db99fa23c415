"""Checkpoints: the archive format, working-tree changes, names, and restoring a run's newest one."""

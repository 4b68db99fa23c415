"""Each task's own git worktree and branch, and the integration branch that collects finished tasks."""

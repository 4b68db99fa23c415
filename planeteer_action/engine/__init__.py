"""The engine: the agent interface, the scheduler and its events, prompts, recovery, session ownership."""

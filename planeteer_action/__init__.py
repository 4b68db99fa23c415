"""Planeteer's execution engine: run a plan's tasks as GitHub Copilot agent sessions, resumably."""

__version__ = "0.1.0"

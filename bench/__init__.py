"""Planeteer's performance figures: `python -m bench` (see bench/README.md)."""

"""Delivery: the plan's integration branch pushed to the checkout's remote, and a pull request opened for it."""

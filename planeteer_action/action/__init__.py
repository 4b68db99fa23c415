"""The GitHub Action front door: inputs, checkpoints as artifacts, restore on re-run, outputs and summary."""

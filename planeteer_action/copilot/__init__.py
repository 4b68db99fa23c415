"""The Copilot SDK behind the engine's agent interface; the only code that imports the SDK."""

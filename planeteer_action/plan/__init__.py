"""The plan file: its model, strict loading, atomic saves and lock, the Markdown view, the graph."""

"""The `planeteer` command and its terminal views."""

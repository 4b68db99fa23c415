"""The chaos run: `planeteer run` killed, interrupted and terminated at random instants (see __main__)."""

"""Launchers, one module per launcher (``registry.LAUNCHERS``): what starts the ranks on the
allocated nodes."""

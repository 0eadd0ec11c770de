"""The ``hpcscale`` command line (see ARCHITECTURE.md, "The command line"): ``app`` builds the
command tree and holds ``main``, the error boundary; one module per command group."""

from hpcscale.cli.app import app, main

__all__ = ["app", "main"]

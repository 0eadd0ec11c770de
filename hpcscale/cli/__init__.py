"""The ``hpcscale`` command line (see ARCHITECTURE.md, "The command line"): ``app`` builds the
command tree and holds ``main``, the error boundary; one module per command group."""

import os
import sys

# Output piped to a file or a pager is not cut at 80 columns (Rich's default, or a COLUMNS a
# shell or test runner exported), mid-phrase: the consoles every command module makes at import
# read COLUMNS, so it is set before they exist. A terminal keeps its own width.
if not sys.stdout.isatty():
    os.environ["COLUMNS"] = "1000"

from hpcscale.cli.app import app, main

__all__ = ["app", "main"]

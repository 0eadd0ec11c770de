"""``python -m hpcscale.command [OPTIONS] -- CMD ARGS...``: one measured rank (see the package)."""

from __future__ import annotations

import sys

from hpcscale.command.rank import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

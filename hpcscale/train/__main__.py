"""``python -m hpcscale.train``: one rank of a training job (what job scripts run)."""

import time

T0 = time.time()  # process start, as near as Python gets: DLT and TTL count from here

import sys  # noqa: E402

from hpcscale.errors import UserError  # noqa: E402
from hpcscale.train.config import parse  # noqa: E402


def main() -> None:
    try:
        core, wconfig = parse()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    from hpcscale.train.loop import run  # torch: a wrong option is told before its import

    sys.exit(run(core, wconfig, T0))


main()

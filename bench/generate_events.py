"""Events per second per core for `hpcscale data generate` at 3600 × 3600.

Usage: python bench/generate_events.py [--events 400] [--resolution 3600] [--workers 1,2]
Runs the real generator (simulation + HDF5 shards) once per worker count into a temporary
folder and prints the rate; the figure is also in every data set's manifest ("generator").
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from hpcscale.data.generate import generate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=400)
    ap.add_argument("--resolution", type=int, default=3600)
    ap.add_argument("--workers", default="1,2")
    args = ap.parse_args()
    print(f"{args.events} events at {args.resolution}×{args.resolution}")
    for workers in (int(w) for w in args.workers.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            gen = generate(
                Path(tmp) / "ev",
                args.events,
                resolution=args.resolution,
                workers=workers,
                per_file=max(args.events // (4 * workers), 1),
            )
            g = gen["generator"]
            print(
                f"  {workers} worker(s): {g['seconds']:.2f} s, {g['events_per_s']:.0f} "
                f"events/s, {g['events_per_s_per_core']:.0f} events/s per core"
            )


if __name__ == "__main__":
    main()

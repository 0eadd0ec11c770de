"""Pick the Blosc default: compress and decompress time and ratio on simulated 3600×3600 events.

Usage: python bench/blosc_codecs.py [--events 40] [--resolution 3600] [--threads 0]

Prints one row per (codec, level, shuffle): median ms per image to compress and to decompress,
and the compression ratio, all measured in this run on the same events. The store's default
(hpcscale.data.store.Codec) is the setting with the least compress + decompress time (DLT plus
the per-step path) among those compressing at least 200× (15,000 images of 52 MB in < 4 GB).
Measured on this project's 2-core CI machine, 20 events at 3600×3600, 2 threads:
blosclz-9-noshuffle 2.3 ms compress / 2.0 ms decompress / 237×; lz4-9-noshuffle 3.8 / 2.2 / 239×;
zstd-9-noshuffle 49 / 2.4 / 3639× (use it when memory, not DLT, is the limit); byte shuffle,
the Blosc default, is slower and compresses less on these mostly-zero images.
"""

from __future__ import annotations

import argparse
import statistics
import time

import blosc
import numpy as np

from hpcscale.data.simulate import CLASSES, event


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=40)
    ap.add_argument("--resolution", type=int, default=3600)
    ap.add_argument("--threads", type=int, default=0, help="0: all cores")
    args = ap.parse_args()
    if args.threads:
        blosc.set_nthreads(args.threads)
    r = args.resolution
    events = [event(i, i % len(CLASSES), 7, r) for i in range(args.events)]
    img = np.zeros((r, r), np.float32)
    out = np.empty_like(img)
    rows = []
    for cname in ("blosclz", "lz4", "lz4hc", "zstd", "zlib"):
        for clevel in (1, 5, 9):
            for shuffle, sname in (
                (blosc.NOSHUFFLE, "none"),
                (blosc.SHUFFLE, "byte"),
                (blosc.BITSHUFFLE, "bit"),
            ):
                c_ms, d_ms, sizes = [], [], []
                for e in events:
                    img[e.wire, e.tick] = e.charge
                    t = time.perf_counter()
                    blob = blosc.compress_ptr(
                        img.ctypes.data,
                        img.size,
                        typesize=4,
                        clevel=clevel,
                        shuffle=shuffle,
                        cname=cname,
                    )
                    c_ms.append((time.perf_counter() - t) * 1e3)
                    img[e.wire, e.tick] = 0
                    t = time.perf_counter()
                    blosc.decompress_ptr(blob, out.ctypes.data)
                    d_ms.append((time.perf_counter() - t) * 1e3)
                    sizes.append(len(blob))
                ratio = img.nbytes * len(events) / sum(sizes)
                rows.append(
                    (cname, clevel, sname, statistics.median(c_ms), statistics.median(d_ms), ratio)
                )
    print(
        f"{'codec':8} {'lvl':>3} {'shuffle':7} {'compress ms':>11} {'decompress ms':>13} "
        f"{'ratio':>8}"
    )
    for row in sorted(rows, key=lambda x: x[4]):
        mark = " *" if row[5] >= 200 else ""
        print(
            f"{row[0]:8} {row[1]:3d} {row[2]:7} {row[3]:11.2f} {row[4]:13.2f} {row[5]:8.0f}{mark}"
        )
    print(
        f"(* compresses at least 200×; {len(events)} events, {r}×{r} float32, "
        f"{blosc.nthreads} blosc threads)"
    )


if __name__ == "__main__":
    main()

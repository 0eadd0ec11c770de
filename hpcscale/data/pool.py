"""The process pool that generates data-set shards, and how it stops on Ctrl-C."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager


@contextmanager
def worker_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """``workers`` processes that leave Ctrl-C to the parent (a terminal sends it to the whole
    process group: each worker would print its own KeyboardInterrupt traceback). On any
    exception in the parent, shards not yet started are cancelled and the parent does not wait
    for the whole data set; the workers finish their current shard and exit."""
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_leave_interrupts_to_parent)
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def _leave_interrupts_to_parent() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

"""A user's own training command, run unmodified on every rank and measured as it runs.

``python -m hpcscale.command [OPTIONS] -- CMD ARGS...`` is one rank: it gives the command the
environment a distributed training script expects (torchrun's ``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``; Horovod's for engine
horovod) from the job environment (``train.jobenv``), starts it, waits for it, and leaves in the
job folder what the training core leaves: ``rank-<r>.jsonl`` records, ``rank-<r>.status.json`` and
(rank 0) ``summary.json``, plus the command's own ``rank-<r>.out`` and ``rank-<r>.err``.

Modules: ``config`` (the rank's options), ``rank`` (start, wait, measure), ``mllog`` (MLPerf
logging lines), ``summary`` (the job's figures), ``task`` (submitit's callable).
"""

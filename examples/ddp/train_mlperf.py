"""train.py with MLPerf logging (the ``mlperf_logging`` package's mllog), as the MLPerf
reference implementations log: hpcscale reads the ``:::MLLOG`` lines for DLT (process start →
run_start, staging its part), the epoch rate, the evaluations and TTL.

    hpcscale run --ranks 2 --target eval_accuracy>=0.9 -- python examples/ddp/train_mlperf.py
"""

from __future__ import annotations

import gc

import torch
import torch.distributed as dist
from mlperf_logging import mllog
from torch.utils.data import DataLoader, DistributedSampler
from train import accuracy, make_data, make_model, options, setup

C = mllog.constants


def main() -> None:
    args = options()
    log = mllog.get_mllogger()
    log.start(key=C.INIT_START)
    device = setup(args.backend)
    rank = dist.get_rank()

    def event(kind: str, key: str, value: object = None, **meta: object) -> None:
        if rank == 0:  # one log, rank 0's
            getattr(log, kind)(key=key, value=value, metadata=meta or None)

    event("event", C.GLOBAL_BATCH_SIZE, args.batch * dist.get_world_size())
    event("end", C.INIT_STOP)
    event("start", C.STAGING_START)
    data, val = make_data(args.samples), make_data(512)
    sampler = DistributedSampler(data, shuffle=True, seed=0)
    loader = DataLoader(data, batch_size=args.batch, sampler=sampler, drop_last=True)
    event("end", C.STAGING_STOP)
    event("event", C.TRAIN_SAMPLES, len(loader) * args.batch * dist.get_world_size())
    model = make_model(args.hidden, device)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    event("start", C.RUN_START)
    for epoch in range(args.epochs):
        event("start", C.EPOCH_START, epoch_num=epoch)
        sampler.set_epoch(epoch)
        for x, y in loader:
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x.to(device)), y.to(device))
            loss.backward()
            opt.step()
        event("end", C.EPOCH_STOP, epoch_num=epoch)
        event("event", C.EVAL_ACCURACY, accuracy(model, val, device), epoch_num=epoch)
    event("end", C.RUN_STOP, status="success")
    dist.barrier()  # no rank tears gloo down while another still talks to it
    # DDP holds the process group: freed now, while Python runs, not at its exit (where
    # gloo's threads, destroyed late, abort: "terminate called without an active exception")
    del model, opt
    gc.collect()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()

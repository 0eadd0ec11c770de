"""train.py reporting each step to hpcscale (``hpcscale.track``): the step split, DLT's parts,
TTL on the smoothed global loss and the steady state, as for hpcscale's own workloads. Outside
an hpcscale job the calls do nothing.

    hpcscale run --ranks 2 --target-loss 0.5 -- python examples/ddp/train_track.py
"""

from __future__ import annotations

import gc
import time

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler
from train import accuracy, make_data, make_model, options, setup

from hpcscale import track


def main() -> None:
    args = options()
    track.phase("device")
    device = setup(args.backend)
    track.phase("staging")
    data, val = make_data(args.samples), make_data(512)
    sampler = DistributedSampler(data, shuffle=True, seed=0)
    loader = DataLoader(data, batch_size=args.batch, sampler=sampler, drop_last=True)
    track.phase("build")
    model = make_model(args.hidden, device)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        t = time.perf_counter()
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            data_s = time.perf_counter() - t
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()  # DDP's allreduce of the gradients happens here
            opt.step()
            compute_s = time.perf_counter() - t - data_s
            track.step(loss=loss.item(), samples=len(x), epoch=epoch, data_s=data_s,
                       compute_s=compute_s)  # fmt: skip
            t = time.perf_counter()
    track.evaluate(val_accuracy=accuracy(model, val, device))
    dist.barrier()  # no rank tears gloo down while another still talks to it
    # DDP holds the process group: freed now, while Python runs, not at its exit (where
    # gloo's threads, destroyed late, abort: "terminate called without an active exception")
    del model, opt
    gc.collect()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()

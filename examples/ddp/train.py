"""A plain PyTorch DDP training script: nothing of hpcscale in it.

Run as torchrun runs it (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT in the
environment): Gloo on CPU, NCCL on GPUs, a DistributedSampler over synthetic data (points of
a few Gaussian blobs), a small MLP. hpcscale runs it unmodified:

    hpcscale run --ranks 2 -- python examples/ddp/train.py --epochs 3
"""

from __future__ import annotations

import argparse
import gc
import os
import time

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset


def options() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--samples", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=64, help="per rank")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--backend", choices=["auto", "gloo", "nccl"], default="auto")
    return ap.parse_args()


def setup(backend: str) -> torch.device:
    """The process group, from torchrun's environment; this rank's device."""
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    dist.init_process_group(backend)
    return device


def make_data(n: int, dim: int = 16, classes: int = 4) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(classes, dim, generator=g) * 2
    y = torch.randint(0, classes, (n,), generator=g)
    x = centres[y] + torch.randn(n, dim, generator=g)
    return TensorDataset(x, y)


def make_model(hidden: int, device: torch.device, dim: int = 16, classes: int = 4) -> DDP:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(dim, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, classes)
    ).to(device)
    return DDP(net, device_ids=[device.index] if device.type == "cuda" else None)


def accuracy(model: DDP, data: TensorDataset, device: torch.device) -> float:
    """Accuracy on ``data``, over every rank's share."""
    x, y = data.tensors
    rank, world = dist.get_rank(), dist.get_world_size()
    with torch.no_grad():
        pred = model(x[rank::world].to(device)).argmax(1)
    counts = torch.tensor([(pred == y[rank::world].to(device)).sum().item(), len(pred)],
                          dtype=torch.float64, device=device)  # fmt: skip
    dist.all_reduce(counts)
    return float(counts[0] / counts[1])


def main() -> None:
    args = options()
    device = setup(args.backend)
    rank = dist.get_rank()
    data, val = make_data(args.samples), make_data(512)
    sampler = DistributedSampler(data, shuffle=True, seed=0)
    loader = DataLoader(data, batch_size=args.batch, sampler=sampler, drop_last=True)
    model = make_model(args.hidden, device)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    start = time.time()
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
        acc = accuracy(model, val, device)
        if rank == 0:
            print(f"epoch {epoch}: loss {loss.item():.4f} val accuracy {acc:.3f} "
                  f"({time.time() - start:.1f} s)", flush=True)  # fmt: skip
    dist.barrier()  # no rank tears gloo down while another still talks to it
    # DDP holds the process group: freed now, while Python runs, not at its exit (where
    # gloo's threads, destroyed late, abort: "terminate called without an active exception")
    del model, opt
    gc.collect()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()

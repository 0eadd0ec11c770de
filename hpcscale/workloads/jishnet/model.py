"""JishNet, as in the paper's published code, with the flatten size derived from the resolution.

[Conv2d k5 p2 → ELU → MaxPool 5] 1→10, 10→64; [Conv2d k4 p2 → ELU → MaxPool 4] 64→128, 128→256;
Linear(256·s·s → 32) + ELU; Linear(32 → 5); softmax. At 3600: 3600 → 720 → 144 → 36 → 9.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# name: (conv channels, hidden units)
PRESETS: dict[str, tuple[tuple[int, int, int, int], int]] = {
    "jishnet": ((10, 64, 128, 256), 32),
    "jishnet-small": ((4, 8, 16, 16), 16),  # same geometry, ~100× fewer FLOPs: tests, laptops
}


# The model's parts in order, with the layers each holds: it can be cut after any part but the
# last (pipeline stages, ``--model-parallel``).
PARTS: dict[str, tuple[str, ...]] = {
    "block1": ("conv1",),
    "block2": ("conv2",),
    "block3": ("conv3",),
    "block4": ("conv4",),
    "head": ("fc1", "fc2"),
}
CUT_POINTS = tuple(PARTS)[:-1]
POOLS = {"block2": 5, "block3": 4, "block4": 4}  # block1's pool of 5 is fused with it on GPUs

MIN_RESOLUTION = 275  # the smallest side that leaves one feature cell after the four poolings


def feature_side(resolution: int) -> int:
    side = resolution // 5 // 5  # k5 p2 convolutions keep the size; pools of 5
    side = (side + 1) // 4  # k4 p2 convolutions add one; pools of 4
    return (side + 1) // 4


class JishNet(nn.Module):
    def __init__(
        self,
        resolution: int = 3600,
        preset: str = "jishnet",
        classes: int = 5,
        softmax: bool = True,
        fused_first_block: bool = False,
    ) -> None:
        super().__init__()
        side = feature_side(resolution)
        if side < 1:
            raise ValueError(f"JishNet needs images of at least {MIN_RESOLUTION}, not {resolution}")
        (c1, c2, c3, c4), hidden = PRESETS[preset]
        self.conv1 = nn.Conv2d(1, c1, 5, padding=2)
        self.conv2 = nn.Conv2d(c1, c2, 5, padding=2)
        self.conv3 = nn.Conv2d(c2, c3, 4, padding=2)
        self.conv4 = nn.Conv2d(c3, c4, 4, padding=2)
        self.fc1 = nn.Linear(c4 * side * side, hidden)
        self.fc2 = nn.Linear(hidden, classes)
        self.softmax = softmax
        self.fused_first_block = fused_first_block
        self.first_block = fused_first_block_op  # replaced by before_compile()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in PARTS:
            x = self.part(name, x)
        return x

    def part(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """One of ``PARTS`` (the places the model can be cut after, and the head)."""
        if name == "block1":
            if self.fused_first_block and x.is_cuda:
                return self.first_block(x, self.conv1)
            return F.max_pool2d(F.elu(self.conv1(x)), 5)
        if name in POOLS:
            return F.max_pool2d(F.elu(getattr(self, PARTS[name][0])(x)), POOLS[name])
        x = self.fc2(F.elu(self.fc1(torch.flatten(x, 1))))
        return F.softmax(x, dim=1) if self.softmax else x

    def before_compile(self) -> None:
        """Keep the fused first block (Triton kernels of its own) out of torch.compile's graph:
        called before compiling (not at import: torch.compiler.disable imports torch._dynamo,
        seconds of a job's start-up that eager jobs need not pay)."""
        self.first_block = torch.compiler.disable(fused_first_block_op)


def fused_first_block_op(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    from hpcscale.workloads.jishnet.fused import first_block  # Triton: imported where used

    return first_block(x, conv)


class JishNetStage(nn.Module):
    """Consecutive ``parts`` of a JishNet, as one pipeline stage: its layers are the network's
    own (shared parameters), and it runs them under ``autocast`` (the workload's precision)."""

    def __init__(self, net: JishNet, parts: tuple[str, ...], autocast: Any) -> None:
        super().__init__()
        self.parts = parts
        self.layers = nn.ModuleDict({n: getattr(net, n) for p in parts for n in PARTS[p]})
        self.run = net.part  # a bound method, not a submodule: the stage holds its layers only
        self.autocast = autocast

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with self.autocast:
            for name in self.parts:
                x = self.run(name, x)
        return x

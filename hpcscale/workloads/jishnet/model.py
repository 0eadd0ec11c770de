"""JishNet, as in the paper's published code, with the flatten size derived from the resolution.

[Conv2d k5 p2 → ELU → MaxPool 5] 1→10, 10→64; [Conv2d k4 p2 → ELU → MaxPool 4] 64→128, 128→256;
Linear(256·s·s → 32) + ELU; Linear(32 → 5); softmax. At 3600: 3600 → 720 → 144 → 36 → 9.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# name: (conv channels, hidden units)
PRESETS: dict[str, tuple[tuple[int, int, int, int], int]] = {
    "jishnet": ((10, 64, 128, 256), 32),
    "jishnet-small": ((4, 8, 16, 16), 16),  # same geometry, ~100× fewer FLOPs: tests, laptops
}


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
        if self.fused_first_block and x.is_cuda:
            x = self.first_block(x, self.conv1)
        else:
            x = F.max_pool2d(F.elu(self.conv1(x)), 5)
        x = F.max_pool2d(F.elu(self.conv2(x)), 5)
        x = F.max_pool2d(F.elu(self.conv3(x)), 4)
        x = F.max_pool2d(F.elu(self.conv4(x)), 4)
        x = F.elu(self.fc1(torch.flatten(x, 1)))
        x = self.fc2(x)
        return F.softmax(x, dim=1) if self.softmax else x

    def before_compile(self) -> None:
        """Keep the fused first block (Triton kernels of its own) out of torch.compile's graph:
        called before compiling (not at import: torch.compiler.disable imports torch._dynamo,
        seconds of a job's start-up that eager jobs need not pay)."""
        self.first_block = torch.compiler.disable(fused_first_block_op)


def fused_first_block_op(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    from hpcscale.workloads.jishnet.fused import first_block  # Triton: imported where used

    return first_block(x, conv)

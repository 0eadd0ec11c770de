"""A ResNet-style CNN for 8-channel jet images (the CMS end-to-end top-quark benchmark's kind).

Each channel is first compressed with log(1 + x / scale) (energies and momenta span decades), then
a strided stem, residual stages that halve the image and double the channels, global average
pooling and one logit (top vs QCD). GroupNorm, not BatchNorm: the same on every rank and for
every batch size a study tries.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# per channel: track pT, |d0|, |dz| (mm), three pixel layers (hits), ECAL, HCAL (GeV)
INPUT_SCALE = (1.0, 0.05, 0.1, 1.0, 1.0, 1.0, 1.0, 1.0)
# preset: (stem channels, stage channels, blocks per stage)
PRESETS: dict[str, tuple[int, tuple[int, ...], int]] = {
    "cms-jets": (32, (32, 64, 128, 256), 2),  # ~2.8 M parameters
    "cms-jets-small": (16, (16, 32), 1),  # ~20 k: seconds per epoch on 2 CPU cores
}


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels // 4), channels)


class Block(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.norm1 = _norm(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.norm2 = _norm(c_out)
        self.skip = (
            nn.Identity()
            if stride == 1 and c_in == c_out
            else nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), _norm(c_out))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(h)) + self.skip(x))


class JetResNet(nn.Module):
    def __init__(self, preset: str = "cms-jets", channels: int = 8) -> None:
        super().__init__()
        stem, stages, blocks = PRESETS[preset]
        self.register_buffer("scale", torch.tensor(INPUT_SCALE).view(1, -1, 1, 1))
        self.stem = nn.Sequential(
            nn.Conv2d(channels, stem, 3, stride=2, padding=1, bias=False),  # 125 → 63
            _norm(stem), nn.ReLU(), nn.MaxPool2d(2),  # → 31
        )  # fmt: skip
        layers, c_in = [], stem
        for k, c in enumerate(stages):
            for b in range(blocks):
                layers.append(Block(c_in, c, 2 if (b == 0 and k > 0) else 1))
                c_in = c
        self.stages = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B,) for images (B, 8, 125, 125)."""
        x = torch.log1p(x.clamp_min(0) / self.scale)
        h = self.stages(self.stem(x))
        return self.head(h.mean(dim=(2, 3))).squeeze(1)

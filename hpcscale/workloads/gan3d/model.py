"""The conditional 3D GAN: a generator from latent noise and the primary energy, and a
discriminator with a real/fake head and an energy-regression head (as the seed's 3DGAN).

Both networks work on u = √(E_cell / 0.1 GeV), which compresses the showers' seven orders of
magnitude to about four; ``to_energy`` maps back. No batch normalisation: its statistics would be
per rank in data-parallel training.

- Generator: [z, log-energy] → Linear → 5³ × C → transposed convolution ×5 → 25³ → two 3³
  convolutions → softmax over the cells (each cell's share of the seen energy), times the seen
  energy from a small head on [log-energy, 4 noise dimensions].
- Discriminator: three strided 3D convolutions (25³ → 13³ → 7³ → 4³) → Linear → two heads.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from hpcscale.workloads.gan3d.showers import E_MAX, E_MIN

U_SCALE_GEV = 0.1
SF_START = 0.02  # the seen fraction the generator starts from (it learns the real one)
SEEN_NOISE = 4  # noise dimensions that the seen energy fluctuates with
# preset: (latent size, generator channels (seed, up, mid), discriminator channels, hidden)
PRESETS: dict[str, tuple[int, tuple[int, int, int], tuple[int, int, int], int]] = {
    "3dgan": (100, (32, 32, 16), (32, 64, 64), 64),  # ~1 M parameters, as the seed's
    "3dgan-small": (32, (8, 8, 8), (8, 16, 16), 32),  # ~90 k: trains on 2 CPU cores in a minute
}


def to_u(energy_gev: torch.Tensor) -> torch.Tensor:
    return (energy_gev / U_SCALE_GEV).sqrt()


def to_energy(u: torch.Tensor) -> torch.Tensor:
    return U_SCALE_GEV * u.square()


def energy_code(energy: torch.Tensor) -> torch.Tensor:
    """The primary energy as the networks see it: log(E/E_min)/log(E_max/E_min), in [0, 1]."""
    return (energy / E_MIN).log() / math.log(E_MAX / E_MIN)


class Generator(nn.Module):
    """Two parts, as fast calorimeter simulations split a shower: how much energy is seen (a
    small head on the energy and a few noise dimensions: the sampling fraction and its
    fluctuation) and where it goes (the convolutional part: each cell's share)."""

    def __init__(self, latent: int, channels: tuple[int, int, int]) -> None:
        super().__init__()
        c0, c1, c2 = channels
        self.latent, self.c0 = latent, c0
        self.fc = nn.Linear(latent + 1, c0 * 5**3)
        self.up = nn.ConvTranspose3d(c0, c1, kernel_size=5, stride=5)  # 5³ → 25³
        self.conv1 = nn.Conv3d(c1, c2, 3, padding=1)
        self.conv2 = nn.Conv3d(c2, 1, 3, padding=1)
        self.seen = nn.Sequential(
            nn.Linear(1 + SEEN_NOISE, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1)
        )

    def parts(self, z: torch.Tensor, energy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The unit shape (B, 1, 25, 25, 25): the square root of each cell's share (squares sum
        to one), and the seen energy (B,) in GeV, for noise ``z`` (B, latent) and primary
        energies (B,) in GeV."""
        code = energy_code(energy)[:, None]
        h = self.fc(torch.cat([z, code], dim=1))
        h = F.leaky_relu(h.view(-1, self.c0, 5, 5, 5), 0.2)
        h = F.leaky_relu(self.up(h), 0.2)
        h = F.leaky_relu(self.conv1(h), 0.2)
        # each cell's share of the seen energy: a softmax over the cells (a normalised ReLU or
        # softplus collapsed onto one cell within 50 steps in some runs)
        log_share = torch.log_softmax(self.conv2(h).flatten(1), dim=1).view_as(h[:, :1])
        fraction = SF_START * self.seen(torch.cat([code, z[:, :SEEN_NOISE]], dim=1)).exp()
        return (0.5 * log_share).exp(), energy * fraction.squeeze(1)  # √share, stably

    def forward(self, z: torch.Tensor, energy: torch.Tensor) -> torch.Tensor:
        """(B, 1, 25, 25, 25) showers in u: Σ 0.1 GeV · u² is the seen energy."""
        unit, seen = self.parts(z, energy)
        return showers(unit, seen)


def showers(unit: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """Showers in u from unit shapes and seen energies (GeV)."""
    return unit * (seen / U_SCALE_GEV).sqrt()[:, None, None, None, None]


class Discriminator(nn.Module):
    def __init__(self, channels: tuple[int, int, int], hidden: int) -> None:
        super().__init__()
        c1, c2, c3 = channels
        self.conv1 = nn.Conv3d(1, c1, 5, stride=2, padding=2)  # 25 → 13
        self.conv2 = nn.Conv3d(c1, c2, 3, stride=2, padding=1)  # 13 → 7
        self.conv3 = nn.Conv3d(c2, c3, 3, stride=2, padding=1)  # 7 → 4
        self.fc = nn.Linear(c3 * 4**3, hidden)
        self.real_fake = nn.Linear(hidden, 1)
        self.energy = nn.Linear(hidden, 1)

    def forward(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logit real vs fake, regressed energy code), each (B,)."""
        h = self.features(u)
        return self.real_fake(h).squeeze(1), self.energy(h).squeeze(1)

    def features(self, u: torch.Tensor) -> torch.Tensor:
        """The last hidden layer (B, hidden): what feature matching compares."""
        h = F.leaky_relu(self.conv1(u), 0.2)
        h = F.leaky_relu(self.conv2(h), 0.2)
        h = F.leaky_relu(self.conv3(h), 0.2)
        return F.leaky_relu(self.fc(h.flatten(1)), 0.2)


def make(preset: str) -> tuple[Generator, Discriminator]:
    latent, g_channels, d_channels, hidden = PRESETS[preset]
    return Generator(latent, g_channels), Discriminator(d_channels, hidden)


def parameter_count(*modules: nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())

"""3DGAN (seed 002): a conditional 3D GAN that generates calorimeter showers, trained
synchronously data-parallel as on Stampede2 and Endeavour (batch 8 per worker, RMSprop lr 1e-3
scaled by the number of workers after Goyal et al.'s 5 warm-up epochs).

One step trains both networks on the rank's minibatch: the discriminator first (its gradients
averaged over ranks with an allreduce of its own, then its optimizer step), then the generator,
whose gradients are ``parameters()`` and ride in the loop's allreduce.

What TTL watches. A GAN's two losses chase each other and say little about the showers, so the
loop's loss (``StepResult.loss``, the value TTL smooths) is the physics figure of merit
(``physics.py``: generated vs simulated sampling fraction and shower shapes per energy bin),
evaluated on validation showers every ``--fom-every`` steps (and held in between); the
networks' losses are the step's metrics ``d_loss`` and ``g_loss``. TTL is then the time to a
figure of merit below the target, as the seed's "time to train to accuracy".
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from hpcscale.data.scatter import fits
from hpcscale.errors import DataError, UserError
from hpcscale.train.sync import GradBucket
from hpcscale.train.workload import Staged, StepResult
from hpcscale.workloads.gan3d import physics
from hpcscale.workloads.gan3d.model import (
    energy_code,
    make,
    parameter_count,
    showers,
    to_energy,
    to_u,
)
from hpcscale.workloads.gan3d.showers import KIND
from hpcscale.workloads.graphs import GraphedStep
from hpcscale.workloads.schedule import lr_schedule
from hpcscale.workloads.tensordata import TensorConfig, TensorDataWorkload

INFERENCE_BATCH = 128  # the seed's inference table: batch 128
# TTL targets on the figure of merit: 10 % mean relative difference; the small network, trained
# for a minute on 2 CPU cores, gets to about 10–15 % and fluctuates there
TARGETS = {"3dgan": 0.1, "3dgan-small": 0.15}


class GanConfig(TensorConfig):
    """3DGAN options"""

    lr: float = Field(1e-3, gt=0, description="RMSprop learning rate per worker (seed: 1e-3)")
    energy_weight: float = Field(0.5, ge=0, description="weight of the energy-regression terms")
    sum_weight: float = Field(
        1.0, ge=0, description="weight of the generator's total-energy term (the 3DGAN's ECAL sum)"
    )
    real_label: float = Field(
        0.9,
        gt=0.5,
        le=1.0,
        description="the discriminator's target for real showers (one-sided "
        "label smoothing: keeps it from winning outright, which stalls the generator)",
    )
    match_weight: float = Field(
        1.0,
        ge=0,
        description="weight of feature matching (Salimans et al.): the generator "
        "also matches the mean of the discriminator's last hidden layer on real showers",
    )
    instance_noise: float = Field(
        0.05,
        ge=0,
        description="Gaussian noise added to every shower the discriminator sees, "
        "in u (√(E/0.1 GeV)): hides the soft cells, keeps it from winning outright",
    )
    fom_every: int = Field(
        25, ge=1, description="steps between evaluations of the figure of merit (TTL's loss)"
    )
    fom_showers: int = Field(
        128, ge=1, description="validation showers per rank for the in-training figure of merit "
        "(the final evaluation uses all)"
    )  # fmt: skip
    cudnn_benchmark: bool = Field(
        False,
        description="let cuDNN time its convolution algorithms at the first step of each shape "
        "(GPUs; every training step has the same shapes). H200: 20.9 ms per step with it, "
        "18.8 without, and a first step of 8.5 s instead of 0.8",
    )
    cuda_graph: bool | None = Field(
        None,
        json_schema_extra={"needs_gpu": True},
        description="capture the step's two phases (the discriminator's, the generator's) as "
        "CUDA graphs after 3 eager steps and replay them (GPUs; H200: 3.2 vs 9.8 ms per step, "
        "which launching ~300 small kernels bounds otherwise); minibatches of another size run "
        "eagerly; default: on where the device is a GPU",
    )


@dataclass
class Carry:
    """What the generator's phase takes from the discriminator's."""

    x: torch.Tensor  # the real showers
    code: torch.Tensor  # their energy code
    seen: torch.Tensor  # the fakes' seen energies (GeV)
    real: torch.Tensor  # the real showers as the discriminator saw them
    fake: torch.Tensor  # the fakes as the generator is judged on them (autograd to the generator)
    d_loss: torch.Tensor


@dataclass
class ShowerBatch:
    x: torch.Tensor  # (B, 1, 25, 25, 25) in u = √(E/0.1 GeV)
    energy: torch.Tensor  # (B,) GeV
    size: int
    timings: dict[str, float]


class Gan3DWorkload(TensorDataWorkload):
    name = "3dgan"
    cut_refusal = (
        "a GAN step trains two models with a collective between them, not one chain of layers"
    )
    Config: ClassVar[type[GanConfig]] = GanConfig
    kind = KIND
    targets = TARGETS
    sample_unit = "showers"
    default_batch = 8  # the seed's, per worker
    default_target_loss = TARGETS["3dgan"]
    metric_names = ("d_loss", "g_loss")
    scales_lr = True
    default_lr_scaling = "linear"  # the seed's: lr × workers after Goyal et al.'s warm-up
    default_warmup_epochs = 5.0
    figures = (
        "val_fom", "val_showers", "inference_ms_per_shower", "simulation_ms_per_shower",
        "parameters.generator", "parameters.discriminator",
    )  # fmt: skip
    config: GanConfig

    @classmethod
    def check_val(cls, data: Path, val_events: int, world_size: int) -> None:
        if val_events < world_size:
            raise DataError(f"{data}: fewer validation showers than ranks ({world_size})")

    # -- data -----------------------------------------------------------------------------------
    def stage(self) -> Staged:
        splits = self.stage_splits()
        self.manifest, train = splits.manifest, splits.train
        self.x = to_u(torch.from_numpy(train.dense()))  # showers in memory, dense
        self.energy = torch.from_numpy(train.scalars["energy"].astype(np.float32))
        self.val_energy = torch.from_numpy(splits.val.scalars["energy"].astype(np.float32))
        self.val_features = physics.shower_features(
            torch.from_numpy(splits.val.dense()), self.val_energy
        )  # the simulated reference
        n = splits.train_events
        occupancy = (
            float(np.diff(train.offsets).mean()) / np.prod(self.manifest.shape) if n else 0.0
        )
        return self.staged(
            splits,
            record={"showers": len(self.energy), "val_showers": len(self.val_energy)},
            summary={
                "occupancy": occupancy,
                "dynamic_range_decades": _decades(train.value),
                "generator": self.manifest.meta,
            },
        )

    def batches(self, order: Sequence[np.ndarray]) -> Iterator[ShowerBatch]:
        device = self.ctx.device
        # On a GPU the showers go to the device once (where they fit): a minibatch is then one
        # gather there, not a host gather (3.4 ms of host time per step on an H200's host) and a
        # copy; the same values
        x, energy = self.x, self.energy
        if device.type == "cuda" and fits(self.x.numel() * 4, device):
            if not hasattr(self, "x_device"):
                self.x_device, self.energy_device = self.x.to(device), self.energy.to(device)
            x, energy = self.x_device, self.energy_device
        for idx in order:
            t = time.perf_counter()
            i = torch.as_tensor(idx).to(x.device, non_blocking=True)
            xb = x[i].unsqueeze(1).to(device, non_blocking=True)
            e = energy[i].to(device, non_blocking=True)
            yield ShowerBatch(xb, e, len(idx), {"gather_s": time.perf_counter() - t})

    # -- model ----------------------------------------------------------------------------------
    def build(self, steps_per_epoch: int) -> None:
        ctx, cfg = self.ctx, self.config
        if ctx.device.type == "cuda":
            torch.backends.cudnn.benchmark = cfg.cudnn_benchmark
        torch.manual_seed(ctx.seed)
        g, d = make(cfg.model)
        self.g, self.d = g.to(ctx.device), d.to(ctx.device)
        self.g_opt = torch.optim.RMSprop(self.g.parameters(), lr=cfg.lr)
        self.d_opt = torch.optim.RMSprop(self.d.parameters(), lr=cfg.lr)
        # the core's --lr-scaling (default here: linear after 5 warm-up epochs, as the seed's)
        scaling = (ctx.lr_scaling, ctx.world_size, ctx.warmup_epochs, steps_per_epoch)
        self.g_schedule = lr_schedule(self.g_opt, *scaling)
        self.d_schedule = lr_schedule(self.d_opt, *scaling)
        self.d_params = list(self.d.parameters())
        self.d_bucket = GradBucket(self.d_params, (), ctx.device)  # the discriminator's own
        self.noise = torch.Generator(device=ctx.device).manual_seed(ctx.seed * 7919 + ctx.rank)
        fixed = torch.Generator(device=ctx.device).manual_seed(10_000 + ctx.rank)
        self.val_z = torch.randn(
            len(self.val_energy), self.g.latent, generator=fixed, device=ctx.device
        )  # the same noise at every evaluation: the figure of merit moves with the weights only
        self.real_table: np.ndarray | None = None
        self.fom, self.steps_done = float("nan"), 0
        gpu = ctx.device.type == "cuda"
        if cfg.cuda_graph and not gpu:
            raise UserError("--cuda-graph needs a GPU (the device is the CPU)")
        self.graphed: GraphedStep | None = None
        if gpu and cfg.cuda_graph is not False:
            self.graphed = GraphedStep([self.d_phase, self.g_phase], [self.d_update])

    def parts(self) -> dict[str, Any]:
        return {
            "generator": self.g, "discriminator": self.d, "g_optimizer": self.g_opt,
            "d_optimizer": self.d_opt, "g_schedule": self.g_schedule,
            "d_schedule": self.d_schedule,
        }  # fmt: skip

    def parameters(self) -> Sequence[torch.Tensor]:
        return list(self.g.parameters())

    # -- training -------------------------------------------------------------------------------
    def step(self, batch: ShowerBatch) -> StepResult:
        cfg = self.config
        if self.steps_done % cfg.fom_every == 0:  # resumed jobs evaluate at their first step
            t = time.perf_counter()
            self.fom = self.figure_of_merit(cfg.fom_showers)[0]
            batch.timings["fom_s"] = time.perf_counter() - t
        self.steps_done += 1
        self.g.train()
        self.d.train()
        inputs = (batch.x, batch.energy, *self.draw(batch.size))
        if self.graphed is not None and batch.size == self.ctx.batch:
            d_loss, g_loss = self.graphed(*inputs)
        else:  # the CPU, --no-cuda-graph, or a short last minibatch
            carry = self.d_phase(*inputs)
            self.d_update()
            d_loss, g_loss = self.g_phase(carry)
        return StepResult(self.fom, {"d_loss": d_loss.detach(), "g_loss": g_loss.detach()})

    def draw(self, size: int) -> tuple[torch.Tensor, ...]:
        """The step's random numbers, in the order it uses them: the generator's noise, then
        the instance noise of the real showers, the fakes the discriminator sees and the fakes
        the generator is judged on (drawn up front, so that a captured step draws the same)."""
        z = torch.randn(size, self.g.latent, generator=self.noise, device=self.ctx.device)
        shape = (size, 1, *self.manifest.shape)
        if not self.config.instance_noise:
            return (z,)
        return (z, *(self.randn(shape) for _ in range(3)))

    def randn(self, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randn(shape, generator=self.noise, device=self.ctx.device)

    def d_phase(
        self, x: torch.Tensor, energy: torch.Tensor, z: torch.Tensor, *noise: torch.Tensor
    ) -> Carry:
        """The generator's showers and the discriminator's loss and gradients."""
        cfg = self.config
        code = energy_code(energy)
        unit, seen = self.g.parts(z, energy)
        # The adversarial terms shape the shower; the seen energy learns from the total-energy
        # term alone (the 3DGAN's ECAL sum): pushed by the discriminator too, it collapsed to
        # zero in one run, where its exponential's gradient vanishes.
        fake = showers(unit, seen.detach())
        # the discriminator: real vs fake, and the energy of both
        self.d_bucket.flat.zero_()
        noisy = (lambda u, i: u + cfg.instance_noise * noise[i]) if noise else (lambda u, i: u)
        real = noisy(x, 0)
        logit_real, e_real = self.d(real)
        logit_fake, e_fake = self.d(noisy(fake.detach(), 1))
        d_loss = (
            _bce(logit_real, cfg.real_label) + _bce(logit_fake, 0.0)
            + cfg.energy_weight * (F.l1_loss(e_real, code) + F.l1_loss(e_fake, code))
        )  # fmt: skip
        d_loss.backward()
        fake_seen = noisy(fake, 2)
        return Carry(x, code, seen, real, fake_seen, d_loss)

    def d_update(self) -> None:
        """The discriminator's gradients averaged over ranks, and its optimizer's step."""
        self.d_bucket.allreduce_mean(self.ctx.engine, {})
        self.d_opt.step()
        self.d_schedule.step()

    def g_phase(self, carry: Carry) -> tuple[torch.Tensor, torch.Tensor]:
        """The generator's loss through the updated discriminator; its gradients go to the
        loop's bucket. Returns both networks' losses."""
        cfg = self.config
        self.g_opt.zero_grad(set_to_none=False)
        for p in self.d_params:
            p.requires_grad_(False)
        h_fake = self.d.features(carry.fake)
        logit, e_pred = self.d.real_fake(h_fake).squeeze(1), self.d.energy(h_fake).squeeze(1)
        with torch.no_grad():
            h_real = self.d.features(carry.real).mean(0)
        sum_fake = carry.seen  # = Σ 0.1 GeV · u² of the shower
        sum_real = to_energy(carry.x).sum(dim=(1, 2, 3, 4))
        g_loss = (
            _bce(logit, 1.0)
            + cfg.energy_weight * F.l1_loss(e_pred, carry.code)
            + cfg.sum_weight * ((sum_fake - sum_real).abs() / sum_real.clamp_min(1e-6)).mean()
            + cfg.match_weight * F.mse_loss(h_fake.mean(0), h_real)
        )
        g_loss.backward()
        for p in self.d_params:
            p.requires_grad_(True)
        return carry.d_loss, g_loss

    def update(self) -> None:
        self.g_opt.step()
        self.g_schedule.step()

    # -- evaluation -----------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, count: int) -> tuple[torch.Tensor, float]:
        """Features of ``count`` generated showers for the first validation energies, and the
        seconds the generator took (batches of 128, as the seed's inference table)."""
        self.g.eval()
        feats, seconds = [], 0.0
        for a in range(0, count, INFERENCE_BATCH):
            e = self.val_energy[a : min(a + INFERENCE_BATCH, count)].to(self.ctx.device)
            t = time.perf_counter()
            u = self.g(self.val_z[a : a + len(e)], e)
            if u.is_cuda:
                torch.cuda.synchronize(u.device)
            seconds += time.perf_counter() - t
            feats.append(physics.shower_features(to_energy(u[:, 0]), e).cpu())
        return torch.cat(feats) if feats else torch.zeros(0, len(physics.FEATURES)), seconds

    def figure_of_merit(self, per_rank: int) -> tuple[float, dict[str, Any]]:
        """The figure of merit over ``per_rank`` validation showers of every rank (one
        allreduce of the per-bin sums); identical on every rank."""
        count = min(per_rank, len(self.val_energy))
        generated, seconds = self.generate(count)
        energy = self.val_energy[:count]
        real = physics.bin_sums(self.val_features[:count], energy)
        gen = physics.bin_sums(generated, energy)
        timing = torch.tensor([[seconds, count]], dtype=torch.float32)
        flat = torch.cat([real.flatten(), gen.flatten(), timing.flatten()]).to(self.ctx.device)
        self.ctx.engine.allreduce_sum_(flat)
        flat = flat.cpu().numpy()
        size = real.numel()
        real_means = physics.bin_means(flat[:size].reshape(real.shape))
        gen_means = physics.bin_means(flat[size : 2 * size].reshape(real.shape))
        fom, per_feature = physics.figure_of_merit(real_means, gen_means)
        detail = {
            "per_feature": per_feature,
            "real": _nan_to_none(real_means),
            "generated": _nan_to_none(gen_means),
            "counts": flat[:size].reshape(real.shape)[:, 0].astype(int).tolist(),
            # every rank generates its share side by side: seconds per shower, rank-averaged
            "inference_ms_per_shower": 1e3 * float(flat[-2]) / max(float(flat[-1]), 1.0),
        }
        return fom, detail

    def evaluate(self) -> dict[str, Any]:
        fom, detail = self.figure_of_merit(len(self.val_energy))
        gen = self.manifest.generator.get("events_per_s_per_core")
        return {
            "val_fom": None if np.isnan(fom) else fom,
            "val_fom_per_feature": detail["per_feature"],
            "val_showers": int(sum(detail["counts"])),
            "fom_bins": {
                "edges_gev": list(physics.ENERGY_BINS), "features": list(physics.FEATURES),
                "simulated": detail["real"], "generated": detail["generated"],
                "showers": detail["counts"],
            },
            "inference_ms_per_shower": detail["inference_ms_per_shower"],
            "simulation_ms_per_shower": 1e3 / gen if gen else None,
            "parameters": {"generator": parameter_count(self.g),
                           "discriminator": parameter_count(self.d)},
            "threads": self.threads,
            "loss": "physics figure of merit",
            "report": REPORT,
        }  # fmt: skip


# What `hpcscale report` shows for this workload (``analysis/report.py`` reads it generically).
REPORT = {
    "loss_label": "figure of merit (mean relative difference of sampling fraction and shower "
    "shapes, generated vs simulated, per energy bin; lower is better)",
    "quality": {"key": "val_fom", "label": "val FoM", "format": ".3f"},
    "columns": [
        {"key": "inference_ms_per_shower", "label": "inference ms/shower", "format": ".2f"},
    ],
    "curves": [
        {"keys": ["d_loss", "g_loss"], "labels": ["discriminator", "generator"],
         "title": "loss curves of both networks", "ylabel": "global training loss"},
    ],
}  # fmt: skip


def _bce(logit: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logit, torch.full_like(logit, target))


def _decades(values: np.ndarray) -> float | None:
    positive = values[values > 0]
    return float(np.log10(positive.max() / positive.min())) if positive.size else None


def _nan_to_none(table: np.ndarray) -> list[list[float | None]]:
    return [[None if np.isnan(v) else float(v) for v in row] for row in table]


WORKLOAD = Gan3DWorkload

"""The flat gradient bucket: every gradient and a step's named scalars in one allreduce.

Each trained parameter's ``.grad`` is a view into one flat buffer (as DDP's
``gradient_as_bucket_view``), and named slots follow the gradients: the local loss, the
workload's metrics and the loop's stop votes. One ``allreduce_mean_`` of the buffer averages all
of them, so the global loss costs no extra collective and every rank agrees on when to stop.

The slot ``GRAD_SQ`` is filled by the bucket itself, on the device: the rank's squared gradient
norm |g_i|², whose mean over ranks the gradient noise scale (``train/noise.py``) needs beside
|G|² of the averaged gradient (``global_sq`` after the allreduce).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from hpcscale.train.engine.base import Engine

GRAD_SQ = "grad_sq"  # the slot of the rank's squared gradient norm


class GradBucket:
    def __init__(
        self, params: Sequence[torch.Tensor], slots: Sequence[str], device: torch.device
    ) -> None:
        """Bucket ``params``' gradients, plus one slot per name in ``slots``. Create it after
        any memory-format change of the model (the views keep each parameter's strides)."""
        if len(set(slots)) != len(slots):
            raise ValueError(f"duplicate slot names in {list(slots)}")
        self.slots = tuple(slots)
        total = sum(p.numel() for p in params)
        self.flat = torch.zeros(total + len(self.slots), device=device)
        offset = 0
        for p in params:
            # Same strides as the parameter (channels_last too), as autograd's layout contract
            # wants; the gradient then accumulates straight into the bucket.
            p.grad = self.flat.as_strided(p.size(), p.stride(), offset)
            offset += p.numel()
        self.n_grads = total

    @property
    def grads(self) -> torch.Tensor:
        return self.flat[: self.n_grads]

    def allreduce_mean(self, engine: Engine, values: Mapping[str, float]) -> dict[str, float]:
        """Average the gradients and ``values`` (one per slot) over ranks; returns the means.
        A ``GRAD_SQ`` slot left out of ``values`` is filled with |g_i|² of this rank's
        gradients (without waiting for the device)."""
        given = set(values) | ({GRAD_SQ} & set(self.slots))
        if given != set(self.slots):
            raise ValueError(f"slot values {sorted(values)} do not match {sorted(self.slots)}")
        if self.slots:
            self.flat[self.n_grads :] = torch.tensor(
                [float(values.get(k, 0.0)) for k in self.slots]
            )
        if GRAD_SQ in self.slots and GRAD_SQ not in values:
            self.flat[self.n_grads + self.slots.index(GRAD_SQ)] = self.local_sq_tensor()
        engine.allreduce_mean_(self.flat)
        if not self.slots:
            return {}  # reading an empty slice back would still wait for the device
        return dict(zip(self.slots, self.flat[self.n_grads :].tolist(), strict=True))

    def local_sq_tensor(self) -> torch.Tensor:
        """|g|² of the gradients now in the bucket, as a 0-d tensor on the device."""
        g = self.grads
        return torch.dot(g, g)

    def global_sq(self) -> float:
        """|G|² of the bucket's gradients (after ``allreduce_mean``: of the averaged gradient)."""
        return float(self.local_sq_tensor())

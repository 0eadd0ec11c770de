"""Dense minibatches made where the step runs: the sparse cells of a rank's samples (a linear
index within the sample and a value per cell) are scattered into a zeroed dense tensor on the
device, instead of building (or decompressing) the dense tensor on the host and copying it.

A JishNet minibatch of 7 events at 3600 × 3600 is 364 MB dense and about 0.5 MB of deposits
(≈ 9,000 per event, 8 bytes each); a cms-jets minibatch of 512 is 256 MB dense and a few MB of
cells. The store goes to the device once, when it fits (``resident``); a minibatch is then a
handful of device ops and no host-to-device copy at all: its cells' rows are found from the
offsets (``repeat_interleave`` with the size known on the host: no synchronisation), their
linear indices shifted by each sample's place in the minibatch, and written with one
``index_put_``. The previous minibatch's cells are cleared the same way, so the dense buffer is
never wiped whole (on a CPU a 364 MB memset per step would cost more than the scatter).

Cells must be unique within a sample (LArTPC deposits and jet cells are: the generators merge
them), so the dense tensor equals the host's ``dense[…] = value`` bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

RESIDENT_FRACTION = 0.125  # at most this share of the device's memory holds the sparse store


def linear_index(index: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """(k, ndim) cell coordinates within one sample of ``shape`` → (k,) int64 linear indices."""
    if index.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    return np.ravel_multi_index(tuple(index.T.astype(np.int64)), tuple(shape)).astype(np.int64)


def host_rows(offsets: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The store rows of samples ``idx`` (concatenated, in order) and each sample's cell count."""
    starts, counts = offsets[idx], offsets[idx + 1] - offsets[idx]
    total = int(counts.sum())
    first = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    return first + np.arange(total, dtype=np.int64), counts


def device_rows(
    starts: torch.Tensor, counts: torch.Tensor, idx: torch.Tensor, total: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """On the device: the store rows of samples ``idx`` (concatenated, in order) and, for each
    row, its sample's place in ``idx``. ``starts``/``counts``: every sample's first row and
    cell count; ``total``: the cells of ``idx`` (known on the host, so there is no sync)."""
    n = counts[idx]
    ends = torch.cumsum(n, 0)
    place = torch.repeat_interleave(torch.arange(len(idx), device=idx.device), n, output_size=total)
    # row = starts[sample] + (position of the cell within its sample)
    rows = (starts[idx] - (ends - n))[place] + torch.arange(total, device=idx.device)
    return rows, place


class Densifier:
    """Scatters minibatches of a sparse store into dense tensors on ``device``.

    ``offsets`` (n + 1,): sample i's cells are rows offsets[i]:offsets[i+1] of ``linear`` (their
    linear index within the sample, < ``sample_numel``) and ``values``. ``resident``: keep the
    store on the device (default: where it fits in ``RESIDENT_FRACTION`` of a GPU's memory; on the
    CPU it is the host's arrays anyway); otherwise each minibatch's cells are gathered on the
    host and copied (a few MB).
    """

    def __init__(
        self,
        offsets: np.ndarray,
        linear: np.ndarray,
        values: np.ndarray,
        sample_numel: int,
        device: torch.device,
        resident: bool | None = None,
    ) -> None:
        self.device, self.sample_numel = device, sample_numel
        self.offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        # int32 where every minibatch's index fits (JishNet's 12.96 M pixels a sample do), to halve
        # what is held and gathered; widened on the device, where index_put_ wants int64
        self.linear_np = np.ascontiguousarray(
            linear, dtype=np.int32 if sample_numel < 2**31 else np.int64
        )
        self.values_np = np.ascontiguousarray(values, dtype=np.float32)
        nbytes = self.linear_np.nbytes + self.values_np.nbytes + self.offsets.nbytes
        self.resident = fits(nbytes, device) if resident is None else resident
        if self.resident:
            self.linear = torch.from_numpy(self.linear_np).to(device)
            self.values = torch.from_numpy(self.values_np).to(device)
            self.starts = torch.from_numpy(self.offsets[:-1]).to(device)
            self.counts = torch.from_numpy(np.diff(self.offsets)).to(device)

    def fill(
        self, out: torch.Tensor, idx: np.ndarray, previous: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Make ``out[:len(idx)]`` (contiguous float32 on the device, each sample
        ``sample_numel`` long) the dense samples ``idx``. ``out`` was all zeros when first
        given (``torch.zeros``) and is changed by nothing but ``fill``; ``previous``: what the
        last ``fill`` of ``out`` returned (those cells are cleared first). Returns the indices
        written, for the next call."""
        flat = out.view(-1)
        if previous is not None:
            flat.index_fill_(0, previous, 0.0)
        index, values = self._cells(np.asarray(idx, dtype=np.int64))
        flat.index_put_((index,), values)
        return index

    def _cells(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(linear index in the minibatch, value) of the cells of samples ``idx``, on the device."""
        counts_h = self.offsets[idx + 1] - self.offsets[idx]
        total = int(counts_h.sum())
        if self.resident:
            i = torch.from_numpy(idx).to(self.device, non_blocking=True)
            rows, sample = device_rows(self.starts, self.counts, i, total)
            return self.linear[rows].long() + sample * self.sample_numel, self.values[rows]
        rows, counts_h = host_rows(self.offsets, idx)
        base = np.repeat(np.arange(len(idx), dtype=np.int64) * self.sample_numel, counts_h)
        index = self.linear_np[rows].astype(np.int64) + base
        return (
            torch.from_numpy(index).to(self.device),
            torch.from_numpy(self.values_np[rows]).to(self.device),
        )


def fits(nbytes: int, device: torch.device) -> bool:
    """Whether ``nbytes`` of a rank's data may live on ``device`` (always, on the CPU)."""
    if device.type != "cuda":
        return True
    return nbytes <= RESIDENT_FRACTION * torch.cuda.get_device_properties(device).total_memory

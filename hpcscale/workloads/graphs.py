"""A training step replayed as CUDA graphs: for steps bound by launching many small kernels.

A step whose shapes never change (3DGAN's: batch 8 of 25³ showers, ~300 kernels and ~10 ms of
host time per step for ~3 ms of GPU work on an H200) spends most of its time in PyTorch's
per-op host overhead. Captured once as a CUDA graph, each later step is one launch per graph.

The step is a list of *phases* run in order, with *eager* work after each phase but the last
(a collective, an optimizer step: what must not or need not be captured). The first phase takes
the step's input tensors, each later phase the previous one's result; the last phase returns a
tuple of tensors (the step's outputs). :class:`GraphedStep`:

- runs the first ``warmup`` calls eagerly on a side stream (what the CUDA-graph documentation
  asks: lazy initialisation, cuDNN's and cuBLAS's workspaces, happens outside the capture);
- captures the next call's phases, each as one graph, into one memory pool, replaying each right
  after its capture (a later phase's backward reads what an earlier phase saved: sharing the pool
  and keeping each phase's result alive keeps those addresses valid), and the eager work between
  them as usual;
- from then on copies each call's inputs into the captured input tensors and replays.

What the phases must respect (as any CUDA graph): the same shapes and dtypes every call, no
host synchronisation, random numbers drawn outside (pass them in as inputs: the eager and the
graphed step then draw the same ones), and parameters and gradients updated in place (the
optimizers' and the gradient buckets' ``copy_``/``add_`` do). Outputs are cloned after each
replay, so a caller may keep them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import torch

Phase = Callable[..., Any]


class GraphedStep:
    """``phases`` captured as CUDA graphs after ``warmup`` eager calls (see the module doc)."""

    def __init__(
        self, phases: Sequence[Phase], between: Sequence[Callable[[], None]], warmup: int = 3
    ) -> None:
        if len(between) != len(phases) - 1:
            raise ValueError("one eager callable between each two phases")
        self.phases, self.between, self.warmup = list(phases), list(between), warmup
        self.calls = 0
        self.graphs: list[torch.cuda.CUDAGraph] = []
        self.inputs: tuple[torch.Tensor, ...] = ()
        self.kept: list[Any] = []  # every phase's captured result: its memory stays the graph's
        self.stream = torch.cuda.Stream()

    @property
    def captured(self) -> bool:
        return bool(self.graphs)

    def __call__(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self.calls += 1
        if self.captured:
            for static, x in zip(self.inputs, inputs, strict=True):
                static.copy_(x)
            for i, graph in enumerate(self.graphs):
                graph.replay()
                self._between(i)
            return _cloned(self.kept[-1])
        if self.calls <= self.warmup:
            return self._on_side_stream(lambda: self._eager(inputs))
        return self._capture(inputs)

    def _between(self, i: int) -> None:
        if i < len(self.between):
            self.between[i]()

    def _eager(self, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        value: Any = inputs
        for i, phase in enumerate(self.phases):
            value = phase(*value) if i == 0 else phase(value)
            self._between(i)
        return value

    def _on_side_stream(self, run: Callable[[], Any]) -> Any:
        main = torch.cuda.current_stream()
        self.stream.wait_stream(main)
        with torch.cuda.stream(self.stream):
            out = run()
        main.wait_stream(self.stream)
        return out

    def _capture(self, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        self.inputs = tuple(x.clone() for x in inputs)
        value: Any = self.inputs
        pool = None
        for i, phase in enumerate(self.phases):
            graph = torch.cuda.CUDAGraph()
            # thread_local: a prefetch thread's own CUDA work (SCNet's geometry, with its host
            # syncs) goes on beside the capture; "global" would invalidate it
            with torch.cuda.graph(
                graph, pool=pool, stream=self.stream, capture_error_mode="thread_local"
            ):
                value = phase(*value) if i == 0 else phase(value)
            pool = graph.pool()
            self.graphs.append(graph)
            self.kept.append(value)
            graph.replay()  # capturing ran nothing: this is the step's real work
            self._between(i)
        return _cloned(value)


def _cloned(outputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return tuple(t.clone() for t in outputs)


class Capacity:
    """Grow-only sizes for padding inputs whose sizes vary (SCNet's sites per level): each at
    least the largest seen, with ``headroom``, so that after the first few minibatches every
    one fits and one captured graph serves them all. Thread-safe (a prefetch thread fits)."""

    def __init__(self, headroom: float = 1.2, align: int = 256) -> None:
        self.headroom, self.align = headroom, align
        self.sizes: tuple[int, ...] | None = None
        self.grown = 0  # how many times the sizes grew (each costs a capture)
        self.lock = threading.Lock()

    def fit(self, sizes: Sequence[int]) -> tuple[int, ...]:
        with self.lock:
            if self.sizes is None or any(n > c for n, c in zip(sizes, self.sizes, strict=True)):
                old = self.sizes or (0,) * len(sizes)
                self.sizes = tuple(
                    max(c, -(-int(n * self.headroom) // self.align) * self.align)
                    for n, c in zip(sizes, old, strict=True)
                )
                self.grown += 1
            return self.sizes

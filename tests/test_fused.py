"""JishNet's fused first block (conv 5×5 → ELU → max-pool 5 in one Triton kernel, GPUs) against
the unfused block, on the CPU through Triton's interpreter (tests/fused_check.py, in a process of
its own: Triton reads TRITON_INTERPRET when imported): the same output and weight gradients, fp32
and under bf16 autocast. Its speed is measured by bench/jishnet_kernels.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import TESTS, tiny_events

pytest.importorskip("torch")
pytest.importorskip("triton", reason="Triton is in the dev extras (pip install -e '.[dev]')")


def test_the_fused_block_equals_the_unfused_one_in_triton_s_interpreter():
    res = subprocess.run(
        [sys.executable, str(TESTS / "fused_check.py")],
        env={**os.environ, "TRITON_INTERPRET": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr[-3000:]
    assert res.stdout.count("same output and gradients") == 4 and "refusals: ok" in res.stdout
    assert res.stdout.count("rows forward") == res.stdout.count("patches forward") == 2


def test_asking_for_the_fused_block_on_the_cpu_is_one_line(tmp_path):
    data = tiny_events(tmp_path / "events", 40, seed=1)
    res = subprocess.run(
        [sys.executable, "-m", "hpcscale.train", "--model", "jishnet-small", "--data", str(data),
         "--out", str(tmp_path / "job"), "--epochs", "0.1", "--fused-first-block"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert (
        res.stderr.strip()
        == "rank 0: failed: --fused-first-block needs a GPU (the device is the CPU)"
    )
    status = json.loads((tmp_path / "job" / "rank-0.status.json").read_text())
    assert status["status"] == "failed"

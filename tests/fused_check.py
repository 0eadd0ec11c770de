"""JishNet's fused first block against the unfused one, run by tests/test_fused.py in a process of
its own with TRITON_INTERPRET=1: Triton reads it when it is imported, and the kernels then run on
the CPU. Exits non-zero (with torch.testing's message) on the first difference."""

from __future__ import annotations

import os
import sys

assert os.environ.get("TRITON_INTERPRET") == "1", "run with TRITON_INTERPRET=1"

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from hpcscale.workloads.jishnet import fused  # noqa: E402


def block(x, conv, upstream, use_fused: bool):  # type: ignore[no-untyped-def]
    conv.zero_grad()
    y = fused.first_block(x, conv) if use_fused else F.max_pool2d(F.elu(conv(x)), 5)
    (y.float() * upstream).sum().backward()
    return y, conv.weight.grad.clone(), conv.bias.grad.clone()


def compare(images: int, channels: int, side: tuple[int, int]) -> None:
    torch.manual_seed(images)
    conv = torch.nn.Conv2d(1, channels, 5, padding=2)
    with torch.no_grad():
        conv.bias[: channels // 2] -= 1.0  # maxima of both signs: both parts of the ELU
    x = torch.rand(images, 1, *side) * 2 - 0.5
    up = torch.randn(images, channels, side[0] // 5, side[1] // 5)
    y, gw, gb = block(x, conv, up, use_fused=True)
    ref, rgw, rgb = block(x, conv, up, use_fused=False)
    assert y.shape == ref.shape and y.dtype == torch.float32, (y.shape, y.dtype)
    assert (ref < 0).any() and (ref > 0).any(), "the check needs both signs"
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gw, rgw, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(gb, rgb, rtol=1e-4, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # bf16 out, as the unfused block's
        yb = fused.first_block(x, conv)
        refb = F.max_pool2d(F.elu(conv(x)), 5)
    assert yb.dtype == refb.dtype == torch.bfloat16, (yb.dtype, refb.dtype)
    torch.testing.assert_close(yb.float(), refb.float(), rtol=2e-2, atol=2e-2)
    print(
        f"{images} × {side[0]}×{side[1]}, {channels} channels, {fused.FORWARD} forward: "
        "same output and gradients"
    )


def refusals() -> None:
    conv = torch.nn.Conv2d(1, 4, 5, padding=2)
    x = torch.rand(1, 1, 10, 10, requires_grad=True)
    try:
        fused.first_block(x, conv).sum().backward()
        raise AssertionError("an input gradient was asked for and not refused")
    except RuntimeError as exc:
        assert "no gradient for its input" in str(exc), exc
    try:
        fused.first_block(torch.rand(1, 1, 10, 10), torch.nn.Conv2d(1, 4, 3, padding=1))
        raise AssertionError("a 3×3 convolution was not refused")
    except ValueError as exc:
        assert "1-channel 5×5 convolution, padding 2" in str(exc), exc
    print("refusals: ok")


if __name__ == "__main__":
    for forward in ("rows", "patches"):  # both forward kernels
        fused.FORWARD = forward
        compare(1, 10, (15, 15))  # JishNet's 10 channels
        compare(2, 4, (17, 27))  # jishnet-small's 4; sides not multiples of 5 (edge dropped)
    refusals()
    sys.exit(0)

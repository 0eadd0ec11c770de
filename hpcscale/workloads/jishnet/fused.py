"""JishNet's first block — conv 5×5 (1 input channel, padding 2) → ELU → max-pool 5 — as one
Triton kernel forward and one backward, for GPUs (``--fused-first-block``).

Unfused, the block writes and reads the full-resolution activation several times (at 3600 × 3600
and minibatch 7: 0.9 G values per tensor for the convolution's output, the ELU's, the pooling's
gradient…), and cuDNN handles a single-channel 5 × 5 convolution of that size poorly. Fused, the
forward reads the image and writes only the pooled output (25 times smaller) and, per pooled value,
which of its 25 window positions won; the backward recomputes nothing large: the weight gradient
is a sum, over pooled values, of the upstream gradient (times the ELU's slope) times the 5 × 5
input patch under the winning position. ELU is increasing, so max-pool(ELU(z)) = ELU(max-pool(z))
and the winner is found on the convolution's output.

The input gets no gradient (it is the data). ``TRITON_INTERPRET=1`` runs the same kernels on the
CPU (the tests compare them with the unfused block there).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

K = 5  # the kernel side and the pooling window
PAD = 2
TAPS = K * K
# the same, as constants the kernels can read
KC = tl.constexpr(K)
PADC = tl.constexpr(PAD)
TAPSC = tl.constexpr(TAPS)
# which forward kernel: "rows" (Toeplitz products of input rows, ``_forward_rows``) or "patches"
# (the 5 × 5 patch gather, ``_forward``); bench/jishnet_kernels.py times both
FORWARD = "rows"


@triton.jit
def _forward(
    x_ptr, w_ptr, b_ptr, y_ptr, win_ptr,
    H, W, HO, WO, C,
    CP: tl.constexpr, BJ: tl.constexpr,
):  # fmt: skip
    """One pooled row ``i`` of image ``n``, BJ pooled columns, every channel. The convolution is a
    matrix product on tensor cores: for each window row dy, the 5 × 5 input patches under the
    BJ × 5 convolution outputs (rows: pooled column × dx, padded to 8; columns: the 25 taps,
    padded to 32) times the (32, CP) weights (fp32 inputs: TF32, as cuDNN convolutions in torch
    by default); then the maximum over dx, and over dy as it goes."""
    row = tl.program_id(0)
    n = row // HO
    i = row % HO
    jj = tl.arange(0, BJ)
    j = tl.program_id(1) * BJ + jj
    dx = tl.arange(0, 8)
    t = tl.arange(0, 32)
    c = tl.arange(0, CP)
    cmask = c < C
    ky = t // KC
    kx = t % KC
    wt = tl.load(
        w_ptr + c[None, :] * TAPSC + t[:, None],
        mask=(t[:, None] < TAPSC) & cmask[None, :],
        other=0.0,
    )  # (32, CP)
    bias = tl.load(b_ptr + c, mask=cmask, other=0.0)
    # (BJ, 8) conv-output columns, then (BJ * 8, 32) input columns of their patches
    col_out = j[:, None] * KC + dx[None, :]
    ok_out = (j[:, None] < WO) & (dx[None, :] < KC)
    col = tl.reshape(col_out, (BJ * 8,))[:, None] + kx[None, :] - PADC
    ok_col = tl.reshape(ok_out, (BJ * 8,))[:, None] & (t[None, :] < TAPSC) & (col >= 0) & (col < W)
    best = tl.full((BJ, CP), float("-inf"), tl.float32)
    win = tl.zeros((BJ, CP), tl.int32)
    x_img = x_ptr + n.to(tl.int64) * H * W
    for dy in range(KC):
        r = i * KC + dy + ky - PADC  # (32,)
        ok = ok_col & (r[None, :] >= 0) & (r[None, :] < H)
        a = tl.load(x_img + r[None, :] * W + col, mask=ok, other=0.0).to(tl.float32)
        z = tl.dot(a, wt) + bias[None, :]  # (BJ * 8, CP)
        z = tl.where(tl.reshape(ok_out, (BJ * 8,))[:, None], z, float("-inf"))
        z3 = tl.reshape(z, (BJ, 8, CP))
        zmax, at = tl.max(z3, axis=1, return_indices=True)
        better = zmax > best
        best = tl.where(better, zmax, best)
        win = tl.where(better, dy * KC + at, win)
    y = tl.where(best > 0, best, tl.exp(best) - 1.0)
    out = ((n * C + c[None, :]).to(tl.int64) * HO + i) * WO + j[:, None]
    mask = (j < WO)[:, None] & cmask[None, :]
    tl.store(y_ptr + out, y.to(y_ptr.dtype.element_ty), mask=mask)
    tl.store(win_ptr + out, win.to(tl.int8), mask=mask)


@triton.jit
def _forward_rows(
    x_ptr, t_ptr, b_ptr, y_ptr, win_ptr,
    H, W, HO, WO, C,
    CP: tl.constexpr, BJ: tl.constexpr,
):  # fmt: skip
    """The forward as ``_forward``, with far fewer loads: each conv-output row is the sum over
    ky of one input row's windows times a Toeplitz matrix of the weights. Per window row dy and
    kernel row ky: the input row's (BJ, 16) windows (pooled column j reads input columns
    5j − 2 … 5j + 6, padded to 16) times T_ky (16, 8 × CP), whose column (dx, c) holds
    w[c, ky, t − dx] at row t: all five conv outputs dx of the pooled column and every channel
    in one product on tensor cores (TF32). The five T_ky stay in registers for the program; the
    input is read 25 × 16 values per pooled column instead of 5 × 8 × 32 (the patch gather)."""
    row = tl.program_id(0)
    n = row // HO
    i = row % HO
    j = tl.program_id(1) * BJ + tl.arange(0, BJ)
    t = tl.arange(0, 16)
    q = tl.arange(0, 8 * CP)
    c = tl.arange(0, CP)
    cmask = c < C
    bias = tl.load(b_ptr + c, mask=cmask, other=0.0)
    tq = t[:, None] * (8 * CP) + q[None, :]  # T_ky is (16, 8 × CP), row-major, ky-th of 5
    t0 = tl.load(t_ptr + 0 * 16 * 8 * CP + tq)
    t1 = tl.load(t_ptr + 1 * 16 * 8 * CP + tq)
    t2 = tl.load(t_ptr + 2 * 16 * 8 * CP + tq)
    t3 = tl.load(t_ptr + 3 * 16 * 8 * CP + tq)
    t4 = tl.load(t_ptr + 4 * 16 * 8 * CP + tq)
    col = j[:, None] * KC + t[None, :] - PADC  # (BJ, 16)
    ok = (t[None, :] < KC + 4) & (col >= 0) & (col < W) & (j[:, None] < WO)
    x_img = x_ptr + n.to(tl.int64) * H * W
    dx3 = tl.arange(0, 8)[None, :, None]
    best = tl.full((BJ, CP), float("-inf"), tl.float32)
    win = tl.zeros((BJ, CP), tl.int32)
    for dy in range(KC):
        r = i * KC + dy - PADC + tl.zeros_like(col)  # the input row under ky = 0, per element
        a = tl.load(x_img + r * W + col, mask=ok & (r >= 0) & (r < H), other=0.0)
        z = tl.dot(a.to(tl.float32), t0)
        a = tl.load(x_img + (r + 1) * W + col, mask=ok & (r >= -1) & (r < H - 1), other=0.0)
        z += tl.dot(a.to(tl.float32), t1)
        a = tl.load(x_img + (r + 2) * W + col, mask=ok & (r >= -2) & (r < H - 2), other=0.0)
        z += tl.dot(a.to(tl.float32), t2)
        a = tl.load(x_img + (r + 3) * W + col, mask=ok & (r >= -3) & (r < H - 3), other=0.0)
        z += tl.dot(a.to(tl.float32), t3)
        a = tl.load(x_img + (r + 4) * W + col, mask=ok & (r >= -4) & (r < H - 4), other=0.0)
        z += tl.dot(a.to(tl.float32), t4)
        z3 = tl.reshape(z, (BJ, 8, CP)) + bias[None, None, :]
        z3 = tl.where(dx3 < KC, z3, float("-inf"))
        zmax, at = tl.max(z3, axis=1, return_indices=True)
        better = zmax > best
        best = tl.where(better, zmax, best)
        win = tl.where(better, dy * KC + at, win)
    y = tl.where(best > 0, best, tl.exp(best) - 1.0)
    out = ((n * C + c[None, :]).to(tl.int64) * HO + i) * WO + j[:, None]
    mask = (j < WO)[:, None] & cmask[None, :]
    tl.store(y_ptr + out, y.to(y_ptr.dtype.element_ty), mask=mask)
    tl.store(win_ptr + out, win.to(tl.int8), mask=mask)


def toeplitz(weight: torch.Tensor, cp: int) -> torch.Tensor:
    """(5, 16, 8 × cp) float32: T[ky, t, dx·cp + c] = w[c, ky, t − dx] where 0 ≤ t − dx < 5
    and dx < 5, else 0 (see ``_forward_rows``)."""
    c = weight.shape[0]
    w = weight.detach().float().reshape(c, K, K)
    t = torch.zeros(K, 16, 8, cp, device=weight.device, dtype=torch.float32)
    for dx in range(K):
        t[:, dx : dx + K, dx, :c] = w.permute(1, 2, 0)  # [ky, kx, c] at row t = dx + kx
    return t.reshape(K, 16, 8 * cp).contiguous()


@triton.jit
def _backward(
    x_ptr, y_ptr, gy_ptr, win_ptr, part_ptr,
    H, W, HO, WO, C,
    CP: tl.constexpr, BJ: tl.constexpr, SLOTS: tl.constexpr, NJB: tl.constexpr,
):  # fmt: skip
    row = tl.program_id(0)
    n = row // HO
    i = row % HO
    c = tl.arange(0, CP)
    cmask = c < C
    slot = tl.arange(0, SLOTS)
    acc = tl.zeros((SLOTS, CP), tl.float32)  # slots 0..24: the 5 × 5 taps; 25: the bias
    x_img = x_ptr + n.to(tl.int64) * H * W
    for jb in range(NJB):  # the row's blocks of BJ pooled columns
        j = jb * BJ + tl.arange(0, BJ)
        jmask = j < WO
        mask = jmask[:, None] & cmask[None, :]
        at = ((n * C + c[None, :]).to(tl.int64) * HO + i) * WO + j[:, None]
        y = tl.load(y_ptr + at, mask=mask, other=0.0).to(tl.float32)
        gy = tl.load(gy_ptr + at, mask=mask, other=0.0).to(tl.float32)
        w = tl.load(win_ptr + at, mask=mask, other=0).to(tl.int32)
        gz = gy * tl.where(y > 0, 1.0, y + 1.0)  # ELU's slope from its output
        dy = w // KC
        dx = w % KC
        acc += tl.where(slot[:, None] == TAPSC, tl.sum(gz, axis=0)[None, :], 0.0)
        for ky in range(KC):
            r = i * KC + dy + ky - PADC
            for kx in tl.static_range(KC):
                col = j[:, None] * KC + dx + kx - PADC
                ok = mask & (col >= 0) & (col < W) & (r >= 0) & (r < H)
                xv = tl.load(x_img + r * W + col, mask=ok, other=0.0).to(tl.float32)
                part = tl.sum(gz * xv, axis=0)
                acc += tl.where(slot[:, None] == ky * KC + kx, part[None, :], 0.0)
    tl.store(part_ptr + row * SLOTS * CP + slot[:, None] * CP + c[None, :], acc)


def _channels_padded(c: int) -> int:
    return max(16, triton.next_power_of_2(c))


class FirstBlock(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, out_dtype):  # type: ignore[no-untyped-def, override]
        n, _, h, w = x.shape
        c = weight.shape[0]
        ho, wo = h // K, w // K
        x = x.contiguous()
        wt = weight.detach().float().contiguous()
        bt = bias.detach().float().contiguous()
        y = torch.empty(n, c, ho, wo, device=x.device, dtype=out_dtype)
        win = torch.empty(n, c, ho, wo, device=x.device, dtype=torch.int8)
        cp = _channels_padded(c)
        if FORWARD == "rows":
            bj = 64
            grid = (n * ho, triton.cdiv(wo, bj))
            tw = toeplitz(weight, cp)
            _forward_rows[grid](x, tw, bt, y, win, h, w, ho, wo, c, CP=cp, BJ=bj)
        else:
            bj = 32
            grid = (n * ho, triton.cdiv(wo, bj))
            _forward[grid](x, wt, bt, y, win, h, w, ho, wo, c, CP=cp, BJ=bj)
        ctx.save_for_backward(x, y, win)
        ctx.weight_dtype = weight.dtype
        return y

    @staticmethod
    def backward(ctx, gy: torch.Tensor):  # type: ignore[no-untyped-def, override]
        if ctx.needs_input_grad[0]:
            raise RuntimeError("the fused first block gives no gradient for its input (the data)")
        x, y, win = ctx.saved_tensors
        n, c, ho, wo = y.shape
        cp, slots = _channels_padded(c), 32
        part = torch.empty(n * ho, slots, cp, device=x.device, dtype=torch.float32)
        _backward[(n * ho,)](
            x, y, gy.contiguous(), win, part, x.shape[2], x.shape[3], ho, wo, c,
            CP=cp, BJ=64, SLOTS=slots, NJB=triton.cdiv(wo, 64),
        )  # fmt: skip
        total = part.sum(0)  # (slots, cp)
        gw = total[:TAPS, :c].t().reshape(c, 1, K, K).to(ctx.weight_dtype)
        gb = total[TAPS, :c].to(ctx.weight_dtype)
        return None, gw, gb, None


def first_block(x: torch.Tensor, conv: torch.nn.Conv2d) -> torch.Tensor:
    """``max_pool2d(elu(conv(x)), 5)`` for a 1-channel 5 × 5 convolution with padding 2, fused.
    Under autocast its output has autocast's type (as the unfused block's would)."""
    if x.shape[1] != 1 or conv.kernel_size != (K, K) or conv.padding != (PAD, PAD):
        raise ValueError("the fused first block needs a 1-channel 5×5 convolution, padding 2")
    out_dtype = (
        torch.get_autocast_dtype(x.device.type)
        if torch.is_autocast_enabled(x.device.type)
        else x.dtype
    )
    return FirstBlock.apply(x, conv.weight, conv.bias, out_dtype)

"""Bring CfC cells into the normal form of `CfCScan` and run it.

Dense `CfCCell`: the backbone's first layer is split into its input part, applied to the
whole sequence in one matmul, and its recurrent part `Wr`. The four heads are fused into one
`(U, 4H)` matmul. For `lecun_tanh` the scales are folded into the weights, so the scan only
calls `tanh`: `1.7159 * tanh(0.666 * u)` feeds `1.7159 * W` and `0.666` scales what feeds it.

`WiredCfCCell`: an NCP's layers run in a *wavefront*. Layer `l` at time `t` needs layer `l-1`
at time `t` and itself at `t-1`, so at scan step `k` every layer `l` can compute its time
`k - l` at once: one block-sparse cell over all neurons replaces `L` chained cells, and the
scan runs `T + L - 1` steps, with each layer frozen (`active = False`) outside its window.
"""

from __future__ import annotations

import ctypes

import torch
import torch.nn.functional as F
from torch import Tensor

from liquidnets.cells.cfc import CfCCell, WiredCfCCell
from liquidnets.fast import native, time_major
from liquidnets.fast._cache import cached
from liquidnets.fast.cfc_scan import _ACT, CfCScan, ScanSpec

_LECUN = (0.666, 1.7159)  # (inner, outer) scale of lecun_tanh


def supports(cell) -> bool:
    """Whether the fused path computes exactly what `cell` computes in this mode."""
    if isinstance(cell, CfCCell):
        # Dropout draws random masks per step in the reference path; keep that path for it.
        return not (cell.training and cell.backbone_dropout > 0 and cell.backbone_layers)
    return isinstance(cell, WiredCfCCell)  # its layers have no backbone, hence no dropout


def _heads(cell: CfCCell, timespan: float | None = None) -> tuple[Tensor, Tensor]:
    """The heads as one `(nH, in)` weight and `(nH,)` bias, masks applied. With a constant
    `timespan` c, the time gate's two heads are merged into one: `c t_a + t_b` (nH = 3H)."""
    mask = cell.sparsity_mask
    w1 = cell.ff1.weight if mask is None else cell.ff1.weight * mask
    if cell.mode == "pure":
        return w1, cell.ff1.bias
    w2 = cell.ff2.weight if mask is None else cell.ff2.weight * mask
    ta, tb = cell.time_a, cell.time_b
    if timespan is None:
        weight = torch.cat([w1, w2, ta.weight, tb.weight], dim=0)
        bias = torch.cat([cell.ff1.bias, cell.ff2.bias, ta.bias, tb.bias])
    else:
        weight = torch.cat([w1, w2, torch.add(tb.weight, ta.weight, alpha=timespan)], dim=0)
        bias = torch.cat(
            [cell.ff1.bias, cell.ff2.bias, torch.add(tb.bias, ta.bias, alpha=timespan)]
        )
    return weight, bias


def _constant_timespan(ts) -> float | None:
    """The one timespan of every step and sample, when the caller gave one (None, a number,
    or a 0-d tensor that needs no gradient); else None."""
    if ts is None:
        return 1.0
    if isinstance(ts, int | float):
        return float(ts)
    if isinstance(ts, Tensor) and ts.dim() == 0 and not ts.requires_grad:
        return float(ts)
    return None


def _empty(like: Tensor) -> Tensor:
    return like.new_empty(0)


def _held(mask: Tensor | None, like: Tensor, units: int):
    """`(active, ramps)` for a dense scan: `active (T, B, H)` marks the updating rows (False
    at padded steps), `ramps` the steps that have any; `(empty, None)` without a mask."""
    if mask is None:
        return _empty(like), None
    ramps = tuple((~mask).any(0).tolist())
    return mask.t().unsqueeze(-1).expand(-1, -1, units), (ramps if any(ramps) else None)


def run_dense(
    cell: CfCCell,
    x: Tensor,
    h0: Tensor,
    ts: Tensor,
    constant: float | None,
    mask: Tensor | None = None,
) -> Tensor:
    """`x (B, T, C)`, `h0 (B, H)`, `ts (T, B|1, 1)` -> states `(T, B, H)`. `constant`: the
    timespan of every step and sample if there is one (the gate heads are then merged).
    `mask (B, T)`: False at padded steps, where the state is held."""
    C = cell.input_size
    active, ramps = _held(mask, x, cell.hidden_size)
    merged = constant is not None and cell.mode != "pure"
    head_w, head_b = _heads(cell, constant if merged else None)
    pure = cell.mode == "pure"
    A = cell.A if pure else _empty(x)
    w_tau = cell.w_tau if pure else _empty(x)
    if cell.backbone_layers == 0:
        P = F.linear(x, head_w[:, :C], head_b).transpose(0, 1).contiguous()  # (T, B, nH)
        spec = ScanSpec(cell.mode, "none", cell.hidden_size, ramps, merged)
        Wr = head_w[:, C:].t()
        return CfCScan.apply(spec, P, h0, ts, Wr, _empty(x), _empty(x), A, w_tau, active)

    inner, outer = _LECUN if cell.backbone_activation == "lecun_tanh" else (1.0, 1.0)
    act = "tanh" if cell.backbone_activation == "lecun_tanh" else cell.backbone_activation
    first = cell.backbone[0]
    P = F.linear(x, first.weight[:, :C], first.bias)
    P = (P * inner if inner != 1.0 else P).transpose(0, 1).contiguous()  # (T, B, U)
    Wr = first.weight[:, C:].t()
    Wr = Wr * inner if inner != 1.0 else Wr
    deep = []
    for layer in cell.backbone[1:]:
        w, b = layer.weight.t(), layer.bias
        deep += [w * (inner * outer), b * inner] if inner != 1.0 else [w, b]
    Wh = head_w.t() * outer if outer != 1.0 else head_w.t()
    spec = ScanSpec(cell.mode, act, cell.hidden_size, ramps, merged)
    return CfCScan.apply(spec, P, h0, ts, Wr, Wh, head_b, A, w_tau, active, *deep)


def run_wired(
    cell: WiredCfCCell,
    x: Tensor,
    h0: Tensor,
    ts: Tensor,
    constant: float | None,
    mask: Tensor | None = None,
) -> Tensor:
    """Wavefront scan of a wired cell; returns states `(T + L - 1, B, N)`. `constant` and
    `mask` as in `run_dense` (the wavefront's own padded steps freeze the units that would
    read them)."""
    layers, sizes = cell._layers, cell.layer_sizes
    L, N, C = len(layers), sum(sizes), cell.sensory_size
    T = x.shape[1]
    offsets = [sum(sizes[:i]) for i in range(L)]
    pure = cell.mode == "pure"
    merged = constant is not None and not pure
    n_heads = 1 if pure else 3 if merged else 4

    # One block-structured weight over [x | state] for all layers' heads: rows of layer l
    # read x (l = 0) or layer l-1's block, and layer l's own block.
    weight = x.new_zeros(n_heads * N, C + N)
    bias = x.new_zeros(n_heads * N)
    for i, (layer, n, o) in enumerate(zip(layers, sizes, offsets, strict=True)):
        w, b = _heads(layer, constant if merged else None)
        cols_in = slice(0, C) if i == 0 else slice(C + offsets[i - 1], C + o)
        width_in = cols_in.stop - cols_in.start
        for k in range(n_heads):
            rows = slice(k * N + o, k * N + o + n)
            weight[rows, cols_in] = w[k * n : (k + 1) * n, :width_in]
            weight[rows, C + o : C + o + n] = w[k * n : (k + 1) * n, width_in:]
            bias[rows] = b[k * n : (k + 1) * n]

    steps = T + L - 1
    x_pad = F.pad(x, (0, 0, 0, L - 1))  # (B, T', C): layer 0 is frozen after T anyway
    P = F.linear(x_pad, weight[:, :C], bias).transpose(0, 1).contiguous()  # (T', B, nH)
    Wr = weight[:, C:].t()

    # Layer l at scan step k computes time k - l: shift its timespans by l.
    ts_blocks = [
        F.pad(ts, (0, 0, 0, 0, o, L - 1 - o)).expand(-1, -1, n)
        for o, n in zip(range(L), sizes, strict=True)
    ]
    ts_units = torch.cat(ts_blocks, dim=2)  # (T', B|1, N)
    k = torch.arange(steps, device=x.device).view(steps, 1, 1)
    first = torch.cat([torch.full((n,), i, device=x.device) for i, n in enumerate(sizes)])
    active = (k >= first) & (k < first + T)  # (T', 1, N)
    if mask is not None:  # layer l at scan step k holds where time k - l is padding
        rows = [
            F.pad(mask.t(), (0, 0, o, L - 1 - o)).unsqueeze(-1).expand(-1, -1, n)
            for o, n in zip(range(L), sizes, strict=True)
        ]
        active = active & torch.cat(rows, dim=2)  # (T', B, N)
    ramps = tuple((~active).flatten(1).any(1).tolist())
    spec = ScanSpec(cell.mode, "none", N, ramps if any(ramps) else None, merged)
    if pure:
        A = torch.cat([layer.A for layer in layers], dim=1)
        w_tau = torch.cat([layer.w_tau for layer in layers], dim=1)
    else:
        A = w_tau = _empty(x)
    return CfCScan.apply(spec, P, h0, ts_units, Wr, _empty(x), _empty(x), A, w_tau, active)


def run(
    cell, x: Tensor, h0: Tensor, ts: Tensor | float | None, mask: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Run `cell` over `x (B, T, C)` from `h0 (B, H)`; `ts` None, a number, a 0-d tensor or
    `(B, T, 1)`; `mask (B, T)` False at padded steps (the state is held there). Returns the
    outputs `(B, T, output_size)` and the final state `(B, H)`."""
    ts_tm = time_major(ts, x)  # (T, B|1, 1)
    if isinstance(cell, WiredCfCCell):
        Hs = run_wired(cell, x, h0, ts_tm, _constant_timespan(ts), mask)
        L = len(cell.layer_sizes)
        states = Hs[L - 1 :]  # (T, B, N): every layer at time t
        if cell._motor_index is None:
            out = states[:, :, cell.state_size - cell.layer_sizes[-1] :]
        else:
            out = states[:, :, cell._motor_index]
        return out.transpose(0, 1), Hs[-1]
    Hs = run_dense(cell, x, h0, ts_tm, _constant_timespan(ts), mask)
    return Hs.transpose(0, 1), Hs[-1]


# -- one step, for streaming (inference only) ----------------------------------------------


def _dense_step_weights(cell: CfCCell):
    """`[x; h]`-side weights of a dense cell, transposed and scaled as in `run_dense`."""
    head_w, head_b = _heads(cell)
    if cell.backbone_layers == 0:
        return [], head_w.t().contiguous(), head_b, "none"
    inner, outer = _LECUN if cell.backbone_activation == "lecun_tanh" else (1.0, 1.0)
    layers = []
    for k, layer in enumerate(cell.backbone):
        scale = inner * (outer if k else 1.0)
        layers.append(((layer.weight.t() * scale).contiguous(), layer.bias * inner))
    act = "tanh" if cell.backbone_activation == "lecun_tanh" else cell.backbone_activation
    return layers, (head_w.t() * outer).contiguous(), head_b, act


def _timestep_pointer(dt, batch: int):
    """`(keep_alive, address, batch_stride)` of the elapsed time for a kernel: a `(B, 1)`
    float32 tensor, or one C float read with stride 0 for the whole batch."""
    if isinstance(dt, Tensor):
        ts = dt.to(torch.float32).expand(batch, 1).contiguous()
        return ts, ts.data_ptr(), 1
    ts = ctypes.c_float(dt)
    return ts, ctypes.addressof(ts), 0


def _gate(cell: CfCCell, heads: Tensor, dt, H: int) -> Tensor:
    """The CfC mode applied to `heads (B, nH)`; dt a number or a `(B, 1)` tensor."""
    if cell.mode == "pure":
        return cell.A - cell.A * torch.exp(-dt * (cell.w_tau.abs() + heads.abs())) * heads
    lib = native.load() if heads.dtype == torch.float32 and heads.device.type == "cpu" else None
    if lib is not None:
        B = heads.shape[0]
        _alive, ts_ptr, ts_b = _timestep_pointer(dt, B)  # _alive: kept until the call
        h = heads.new_empty(B, H)
        lib.ln_cfc_gate_fwd(  # in place on heads, a fresh tensor of ours
            B,
            H,
            int(cell.mode == "no_gate"),
            4,
            heads.data_ptr(),
            None,
            0,
            ts_ptr,
            ts_b,
            0,
            h.data_ptr(),
        )
        return h
    ff = torch.tanh(heads[:, : 2 * H])
    ta, tb = heads[:, 2 * H : 3 * H], heads[:, 3 * H :]
    s = torch.sigmoid(torch.addcmul(tb, ta, dt) if isinstance(dt, Tensor) else tb + ta * dt)
    f1, f2 = ff[:, :H], ff[:, H:]
    return torch.addcmul(f1, s, f2) if cell.mode == "no_gate" else torch.lerp(f1, f2, s)


def _dense_step(cell: CfCCell, x: Tensor, h: Tensor, dt) -> Tensor:
    layers, Wh, bh, act = cached(cell, _dense_step_weights)
    B, H = x.shape[0], cell.hidden_size
    small = B <= 8 and len(layers) <= 1 and act in ("tanh", "none") and cell.mode != "pure"
    lib = native.load() if small and x.dtype == torch.float32 and x.device.type == "cpu" else None
    if lib is not None:  # matrix-vector sizes: the whole step in one kernel call
        W1, b1 = layers[0] if layers else (Wh, bh)  # unused without a backbone
        U = W1.shape[1] if layers else 0
        x_c, h_c = x.contiguous(), h.contiguous()
        work, h_out = x.new_empty(U + 4 * H), x.new_empty(B, H)
        _alive, ts_ptr, ts_b = _timestep_pointer(dt, B)  # _alive: kept until the call
        lib.ln_cfc_dense_step(
            B, x.shape[1], H, U, int(cell.mode == "no_gate"), x_c.data_ptr(), h_c.data_ptr(),
            W1.data_ptr(), b1.data_ptr(), Wh.data_ptr(), bh.data_ptr(), ts_ptr, ts_b,
            work.data_ptr(), h_out.data_ptr(),
        )  # fmt: skip
        return h_out
    z = torch.cat([x, h], dim=1)  # (B, C + H)
    for W, b in layers:
        z = _ACT[act](torch.addmm(b, z, W))  # (B, U)
    return _gate(cell, torch.addmm(bh, z, Wh), dt, cell.hidden_size)


def _wired_step_weights(cell: WiredCfCCell):
    """One `(N, sum 4 n_l)` matmul gives every layer's recurrent part at once (each layer
    reads only its own old state); what remains per layer is its input part. Columns are
    layer by layer, each `[f1 | f2 | t_a | t_b]` (or `[f]` in pure mode)."""
    N, offset = cell.state_size, 0
    own_blocks, owns, inputs, biases = [], [], [], []
    for layer, n in zip(cell._layers, cell.layer_sizes, strict=True):
        w, b = _heads(layer)  # (nH_l, in_l + n)
        width_in = w.shape[1] - n
        owns.append(w[:, width_in:].t().contiguous())  # (n, nH_l)
        block = w.new_zeros(N, w.shape[0])
        block[offset : offset + n] = owns[-1]
        own_blocks.append(block)
        inputs.append(w[:, :width_in].t().contiguous())  # (in_l, nH_l)
        biases.append(b)
        offset += n
    # for the kernel: the layer sizes, and each layer's own and input blocks, concatenated
    sizes = (ctypes.c_long * len(cell.layer_sizes))(*cell.layer_sizes)
    flat_own = torch.cat([w.reshape(-1) for w in owns])
    flat_in = torch.cat([w.reshape(-1) for w in inputs])
    own_w = torch.cat(own_blocks, dim=1).contiguous()
    return own_w, torch.cat(biases), inputs, (sizes, flat_own, flat_in)


def _wired_step(cell: WiredCfCCell, x: Tensor, h: Tensor, dt) -> tuple[Tensor, Tensor]:
    own_w, bias, inputs, (sizes, flat_own, flat_in) = cached(cell, _wired_step_weights)
    lib = native.load() if x.dtype == torch.float32 and x.device.type == "cpu" else None
    if lib is not None and cell.mode != "pure":  # all layers in one kernel call
        B = x.shape[0]
        x_c, h_c = x.contiguous(), h.contiguous()
        _alive, ts_ptr, ts_b = _timestep_pointer(dt, B)  # _alive: kept until the call
        state = x.new_empty(B, cell.state_size)
        work = x.new_empty(B, max(w.shape[1] for w in inputs))
        lib.ln_cfc_wired_step(
            B, len(sizes), ctypes.addressof(sizes), x.shape[1], int(cell.mode == "no_gate"),
            h_c.data_ptr(), flat_own.data_ptr(), bias.data_ptr(), flat_in.data_ptr(),
            x_c.data_ptr(), ts_ptr, ts_b, state.data_ptr(), work.data_ptr(),
        )  # fmt: skip
        last = state[:, cell.state_size - cell.layer_sizes[-1] :]
        return (last if cell._motor_index is None else state[:, cell._motor_index]), state
    own = torch.addmm(bias, h, own_w)  # (B, sum nH_l): every layer's old-state part
    new, inp, col = [], x, 0
    for layer, w_in, n in zip(cell._layers, inputs, cell.layer_sizes, strict=True):
        width = w_in.shape[1]
        heads = torch.addmm(own[:, col : col + width], inp, w_in)  # (B, nH_l)
        inp = _gate(layer, heads, dt, n)  # (B, n)
        new.append(inp)
        col += width
    state = torch.cat(new, dim=1)
    return (inp if cell._motor_index is None else state[:, cell._motor_index]), state


def step(cell, x: Tensor, h: Tensor, dt) -> tuple[Tensor, Tensor]:
    """One step without autograd, with the weights prepared once and cached."""
    if isinstance(dt, Tensor) and dt.dim() == 1:
        dt = dt.unsqueeze(-1)  # (B, 1)
    if isinstance(cell, WiredCfCCell):
        return _wired_step(cell, x, h, dt)
    h = _dense_step(cell, x, h, dt)
    return h, h

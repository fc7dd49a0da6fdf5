"""A CfC recurrence over a whole sequence with a hand-written backward pass.

The readable path (`liquidnets.cells.cfc`) runs each time step as a dozen autograd-recorded
ops, and autograd replays them one by one backwards. Here the loop runs without autograd,
saves only what the backward needs into preallocated `(T, B, .)` buffers, and the backward
walks the sequence once, keeping only the recurrent part in the loop: every weight gradient is
one matmul over all `T * B` rows at the end.

The scan sees a CfC step in a normal form (built from the modules by `cfc_fast.py`):

    pre_t   = P[t] + h_{t-1} @ Wr                      P: input projection, all t at once
    z_t     = act(pre_t); z_t = act(z_t @ W_l + b_l)   backbone (absent: heads_t = pre_t)
    heads_t = z_t @ Wh + bh                            [f1 | f2 | t_a | t_b], or [f] (pure)
    h_t     = cfc_mode(heads_t, ts_t)                  see CfCCell
    h_t     = where(active_t, h_t, h_{t-1})            only on ramp steps (wired wavefront)

With one timespan c for every step and sample (`merged`), the gate's pre-activation
`t_a c + t_b` is one head `t` whose weights the caller merged (`c W_a + W_b`): the heads are
`[f1 | f2 | t]`, a matmul a quarter narrower, and `ts` is not read.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

aten = torch.ops.aten


@dataclass(frozen=True)
class ScanSpec:
    """What the scan computes; every tensor argument is described by these fields."""

    mode: str  # "default", "no_gate" or "pure"
    act: str  # "tanh", "relu", "silu", "gelu", or "none" without backbone
    hidden: int  # H
    ramps: tuple[bool, ...] | None = None  # steps where `active` masks the update
    merged: bool = False  # heads [f1 | f2 | t]: the time gate merged for a constant timespan

    @property
    def n_heads(self) -> int:
        return 1 if self.mode == "pure" else 3 if self.merged else 4


_ACT = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "silu": torch.nn.functional.silu,
    "gelu": torch.nn.functional.gelu,
}


def _act_backward(kind: str, grad: Tensor, out: Tensor, pre: Tensor | None) -> Tensor:
    if kind == "tanh":
        return aten.tanh_backward(grad, out)
    if kind == "relu":
        return aten.threshold_backward(grad, out, 0)
    if kind == "silu":
        return aten.silu_backward(grad, pre)
    return aten.gelu_backward(grad, pre)


def _sum_to(x: Tensor, shape: torch.Size) -> Tensor:
    """Sum `x` over the dimensions that were broadcast from `shape`."""
    dims = [i for i, (a, b) in enumerate(zip(x.shape, shape, strict=True)) if b == 1 and a != 1]
    return x.sum(dim=dims, keepdim=True) if dims else x


class _Native:
    """The scan in the C kernels of `kernels/cfc.c` (float32, CPU, tanh or no backbone of
    one layer, default or no_gate mode): one call per direction runs every step, its small
    matmuls included, with the batch rows shared among PyTorch's OpenMP threads."""

    def __init__(self, lib, spec: ScanSpec, ts: Tensor, batch: int) -> None:
        self.lib, self.spec, self.B, self.H = lib, spec, batch, spec.hidden
        self.no_gate = int(spec.mode == "no_gate")
        self.nh = spec.n_heads
        self.ts = ts.data_ptr()
        self.ts_t = ts.stride(0)
        self.ts_b = ts.stride(1) if ts.shape[1] > 1 else 0
        self.ts_h = ts.stride(2) if ts.shape[2] > 1 else 0

    @classmethod
    def create(cls, spec: ScanSpec, P: Tensor, ts: Tensor, n_deep: int):
        if P.dtype != torch.float32 or P.device.type != "cpu" or ts.dtype != torch.float32:
            return None
        if spec.mode == "pure" or spec.act not in ("tanh", "none") or n_deep:
            return None
        from liquidnets.fast import native

        lib = native.load()
        return None if lib is None else cls(lib, spec, ts, P.shape[1])

    def threads(self) -> int:
        from liquidnets.fast import native

        return torch.get_num_threads() if native.openmp() else 1

    def active(self, active: Tensor) -> tuple[Tensor | None, int, int]:
        """`(mask, step stride, row stride)`: the `(T, 1|B, H)` mask of units that update
        (the wavefront, padded steps) as bytes, or None when all do."""
        if self.spec.ramps is None:
            return None, 0, 0
        mask = active.to(torch.uint8).contiguous()
        return mask, mask.stride(0), mask.stride(1) if mask.shape[1] > 1 else 0

    def forward(self, P, h0, Wr, Wh, bh, active, Hs, heads_all, Zs) -> None:
        z = Zs[0] if Zs else None
        # contiguous copies, named so that they outlive the call
        h0, Wr, (mask, act_st, act_sb) = h0.contiguous(), Wr.contiguous(), self.active(active)
        Wh, bh = (Wh.contiguous(), bh.contiguous()) if Zs else (None, None)
        self.lib.ln_cfc_scan_fwd(
            P.shape[0], self.B, self.H, z.shape[-1] if Zs else 0, self.nh, self.no_gate,
            _ptr(P), P.shape[-1], _ptr(h0), _ptr(Wr), _ptr(Wh), _ptr(bh), self.ts, self.ts_t,
            self.ts_b, self.ts_h, _ptr(mask), act_st, act_sb, _ptr(Hs), _ptr(heads_all),
            _ptr(z), self.threads(),
        )  # fmt: skip

    def backward(self, dHs, h0, Wr, Wh, active, Zs, heads_all, dP, dts) -> Tensor:
        """Writes the heads' gradients over `heads_all`, fills `dP` (which is `heads_all`
        itself without a backbone) and, if not None, the per-element `dts (T, B, H)`;
        returns the gradient of `h0`."""
        dHs, (mask, act_st, act_sb) = dHs.contiguous(), self.active(active)
        dh0 = h0.new_empty(self.B, self.H)
        WrT, WhT = Wr.t().contiguous(), Wh.t().contiguous() if Zs else None
        self.lib.ln_cfc_scan_bwd(
            dHs.shape[0], self.B, self.H, Zs[0].shape[-1] if Zs else 0, self.nh, self.no_gate,
            dP.shape[-1], _ptr(dHs), _ptr(WrT), _ptr(WhT), self.ts, self.ts_t, self.ts_b,
            self.ts_h, _ptr(mask), act_st, act_sb, _ptr(heads_all), _ptr(Zs[0] if Zs else None),
            _ptr(dP),
            _ptr(dts), _ptr(dh0), self.threads(),
        )  # fmt: skip
        return dh0


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


class CfCScan(torch.autograd.Function):
    """`Hs = CfCScan.apply(spec, P, h0, ts, Wr, Wh, bh, A, w_tau, active, *deep)`.

    Shapes: `P (T, B, K)`, `h0 (B, H)`, `ts (T, B|1, 1|H)`, `Wr (H, K)`, `Wh (U, nH)`,
    `bh (nH,)`, `A`/`w_tau` `(1, H)` (pure mode, else empty), `active (T, 1, H)` bool or an
    empty tensor, `deep` = `W_2, b_2, W_3, b_3, ...` `(U, U)`/`(U,)`. Returns `Hs (T, B, H)`,
    the state after every step.
    """

    @staticmethod
    def forward(ctx, spec: ScanSpec, P, h0, ts, Wr, Wh, bh, A, w_tau, active, *deep):
        T, B, _ = P.shape
        H = spec.hidden
        has_backbone = spec.act != "none"
        keep_pre = spec.act in ("silu", "gelu")
        pure = spec.mode == "pure"
        n_heads = spec.n_heads
        act = _ACT.get(spec.act)
        weights = deep[0::2]
        biases = deep[1::2]

        Hs = P.new_empty(T, B, H)
        heads_all = P.new_empty(T, B, n_heads * H)
        Zs = (
            [P.new_empty(T, B, Wh.shape[0]) for _ in range(1 + len(weights))]
            if has_backbone
            else []
        )
        Pres = [torch.empty_like(z) for z in Zs] if keep_pre else []
        if pure:
            E = P.new_empty(T, B, H)  # exp(-t (|w_tau| + |f|))
            abs_wt = w_tau.abs()
        native = _Native.create(spec, P, ts, len(weights))
        if not pure and native is None:
            FF = P.new_empty(T, B, 2 * H)  # tanh of the f1/f2 heads
            S = P.new_empty(T, B, H)  # the time gate
        elif not pure:  # the kernel leaves tanh(f1), tanh(f2) and the gate in heads_all
            FF = S = P.new_empty(0)
        if native is not None:
            native.forward(P, h0, Wr, Wh, bh, active, Hs, heads_all, Zs)
        h = h0
        for t in range(T if native is None else 0):
            if has_backbone:
                pre = torch.addmm(P[t], h, Wr)  # (B, U)
                for layer in range(len(Zs)):
                    if layer:
                        pre = torch.addmm(biases[layer - 1], Zs[layer - 1][t], weights[layer - 1])
                    if keep_pre:
                        Pres[layer][t] = pre
                    Zs[layer][t] = act(pre)
                heads = torch.addmm(bh, Zs[-1][t], Wh, out=heads_all[t])  # (B, nH)
            else:
                heads = torch.addmm(P[t], h, Wr, out=heads_all[t])  # (B, nH)
            ts_t = ts[t]
            if pure:
                e = torch.exp(-ts_t * (abs_wt + heads.abs()), out=E[t])
                new = A - A * e * heads
            else:
                ff = torch.tanh(heads[:, : 2 * H], out=FF[t])
                gate_pre = (
                    heads[:, 2 * H :]
                    if spec.merged
                    else torch.addcmul(heads[:, 3 * H :], heads[:, 2 * H : 3 * H], ts_t)
                )
                s = torch.sigmoid(gate_pre, out=S[t])
                if spec.mode == "default":
                    new = torch.lerp(ff[:, :H], ff[:, H:], s)
                else:
                    new = torch.addcmul(ff[:, :H], s, ff[:, H:])
            if spec.ramps is not None and spec.ramps[t]:
                new = torch.where(active[t], new, h)
            Hs[t] = new
            h = Hs[t]

        ctx.spec = spec
        # P itself is not needed backwards (only its shape): not keeping it saves T B K floats
        ctx.p_shape = P.shape
        saved = [h0, ts, Wr, Wh, bh, A, w_tau, active, Hs, heads_all, *Zs, *Pres, *weights]
        saved += [E] if pure else [FF, S]
        ctx.n_z = len(Zs)
        ctx.save_for_backward(*saved)
        return Hs

    @staticmethod
    def backward(ctx, dHs):
        spec: ScanSpec = ctx.spec
        h0, ts, Wr, Wh, _bh, A, w_tau, active, Hs, heads_all, *rest = ctx.saved_tensors
        nz = ctx.n_z
        Zs = rest[:nz]
        keep_pre = spec.act in ("silu", "gelu")
        Pres = rest[nz : 2 * nz] if keep_pre else None
        rest = rest[2 * nz :] if keep_pre else rest[nz:]
        weights = rest[: max(nz - 1, 0)]
        rest = rest[max(nz - 1, 0) :]
        pure = spec.mode == "pure"
        if pure:
            (E,) = rest
        else:
            FF, S = rest
        T, B, _ = ctx.p_shape
        H = spec.hidden
        has_backbone = nz > 0
        want_ts = ctx.needs_input_grad[3]

        native = _Native.create(spec, heads_all, ts, len(weights))
        if native is not None:
            # The kernel reads each row of heads_all before writing its gradient there: the
            # gradients take the place of the values, and the peak memory drops by T B 4H.
            dP = heads_all if not has_backbone else heads_all.new_empty(ctx.p_shape)
            dheads_all = heads_all
        else:
            dP = heads_all.new_empty(ctx.p_shape)  # d pre_t, all t
            dheads_all = torch.empty_like(heads_all) if has_backbone else dP
        dpre_deep = [torch.empty_like(z) for z in Zs[1:]]
        dts = torch.zeros_like(ts) if want_ts else None
        if pure:
            dA = torch.zeros_like(A)
            dwt = torch.zeros_like(w_tau)
            abs_wt = w_tau.abs()
        WrT, WhT = Wr.t(), Wh.t()
        WT = [w.t() for w in weights]

        gh = h0.new_zeros(h0.shape)
        if native is not None:
            dts_elem = (
                heads_all.new_empty(T, B, H) if want_ts else None
            )  # d s_pre * t_a per element
            gh = native.backward(dHs, h0, Wr, Wh, active, Zs, heads_all, dP, dts_elem)
            if want_ts:
                dts += _sum_to(dts_elem, ts.shape)
        for t in range(T - 1 if native is None else -1, -1, -1):
            g = dHs[t] + gh
            carry = None
            if spec.ramps is not None and spec.ramps[t]:
                carry = torch.where(active[t], 0.0, g)
                g = torch.where(active[t], g, 0.0)
            dheads = dheads_all[t]
            ts_t = ts[t]
            if pure:
                f, e = heads_all[t], E[t]
                ge = g * e
                dA += (g - ge * f).sum(0, keepdim=True)
                f_abs = f.abs()
                # dh/df = -A e (1 - t |f|)
                torch.mul(ge * A, torch.addcmul(ts_t.new_tensor(-1.0), ts_t, f_abs), out=dheads)
                gaf = ge * A * f  # (B, H)
                dwt += (gaf * ts_t).sum(0, keepdim=True) * torch.sign(w_tau)
                if want_ts:
                    dts[t] += _sum_to(gaf * (abs_wt + f_abs), ts_t.shape)
            else:
                ff, s = FF[t], S[t]
                f1, f2 = ff[:, :H], ff[:, H:]
                gs = g * s
                if spec.mode == "default":  # h = f1 + s (f2 - f1)
                    dgate = g * (f2 - f1)
                    d_ff = torch.cat([g - gs, gs], dim=1)
                else:  # h = f1 + s f2
                    dgate = g * f2
                    d_ff = torch.cat([g, gs], dim=1)
                dpre_s = aten.sigmoid_backward(dgate, s)  # (B, H)
                dheads[:, : 2 * H] = aten.tanh_backward(d_ff, ff)
                if spec.merged:  # the caller's merge of t_a and t_b carries the gradient on
                    dheads[:, 2 * H :] = dpre_s
                else:
                    torch.mul(dpre_s, ts_t, out=dheads[:, 2 * H : 3 * H])
                    dheads[:, 3 * H :] = dpre_s
                    if want_ts:
                        dts[t] += _sum_to(dpre_s * heads_all[t, :, 2 * H : 3 * H], ts_t.shape)
            if has_backbone:
                dz = dheads.mm(WhT)  # (B, U)
                for layer in range(nz - 1, 0, -1):
                    dpre = _act_backward(spec.act, dz, Zs[layer][t], Pres and Pres[layer][t])
                    dpre_deep[layer - 1][t] = dpre
                    dz = dpre.mm(WT[layer - 1])
                dP[t] = _act_backward(spec.act, dz, Zs[0][t], Pres and Pres[0][t])
            gh = dP[t].mm(WrT)  # (B, H)
            if carry is not None:
                gh = gh + carry

        # Weight gradients: one matmul over all T * B rows each.
        flat = lambda x: x.reshape(T * B, x.shape[-1])  # noqa: E731
        h_prev = torch.cat([h0.unsqueeze(0), Hs[:-1]], dim=0)  # (T, B, H)
        dWr = flat(h_prev).t().mm(flat(dP))
        if has_backbone:
            dWh = flat(Zs[-1]).t().mm(flat(dheads_all))
            dbh = flat(dheads_all).sum(0)
        else:
            dWh, dbh = None, None
        d_deep = []
        for layer in range(1, nz):
            d = dpre_deep[layer - 1]
            d_deep += [flat(Zs[layer - 1]).t().mm(flat(d)), flat(d).sum(0)]
        dA_out = dA if pure else None
        dwt_out = dwt if pure else None
        return (None, dP, gh, dts, dWr, dWh, dbh, dA_out, dwt_out, None, *d_deep)

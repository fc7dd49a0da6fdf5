"""The fused LTC path: the whole sequence in one call of the C kernel of `kernels/ltc.c`.

PyTorch computes everything that does not depend on the state with ordinary autograd ops:
the input mapping, the sensory synapses for all steps at once, the positivity constraints
and the masked, polarity-signed synapse matrices. The kernel runs the recurrence with the
fused semi-implicit solver, forward and backward, and hands gradients for those tensors back
to autograd. Other solvers, float64, GPUs and machines without a C compiler use the readable
cell.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import itertools

import torch
from torch import Tensor

from liquidnets.cells.ltc import LTCCell
from liquidnets.cells.solvers import SemiImplicit
from liquidnets.fast import native


def supports(cell, x: Tensor) -> bool:
    return (
        isinstance(cell, LTCCell)
        and type(cell.solver) is SemiImplicit
        and x.dtype == torch.float32
        and x.device.type == "cpu"
        and native.load() is not None
    )


def _ptr(t: Tensor) -> int:
    return t.data_ptr()


def _chunks(batch: int) -> list[slice]:
    """Split the batch across torch's intra-op threads: rows are independent, and ctypes
    releases the GIL while a kernel runs, so the chunks run in parallel."""
    n = max(1, min(torch.get_num_threads(), batch // 4))
    bounds = [batch * k // n for k in range(n + 1)]
    return [slice(a, b) for a, b in itertools.pairwise(bounds)]


def _parallel(fn, parts: list[slice]) -> list:
    if len(parts) == 1:
        return [fn(parts[0])]
    futures = [_pool().submit(fn, part) for part in parts]
    return [f.result() for f in futures]


_POOL: dict = {}


def _pool():
    n = torch.get_num_threads()
    if n not in _POOL:
        _POOL[n] = concurrent.futures.ThreadPoolExecutor(max_workers=n)
    return _POOL[n]


class LTCScan(torch.autograd.Function):
    """`out (T, B, N) = LTCScan.apply(unfolds, eps, x, v0, dt, a_leak, gleak, cm, weT, wmT,
    sigmaT, muT, sweT, swmT, ssigT, smuT)` with mapped inputs `x (T, B, C)`, `v0 (B, N)`,
    `dt (T, B)`, vectors `(N,)`, and transposed synapse matrices indexed `[post, pre]`:
    `(N, N)` recurrent, `(N, C)` sensory."""

    @staticmethod
    def forward(ctx, unfolds: int, eps: float, x, v0, dt, *params):
        params = [p.contiguous() for p in params]
        T, B, C = x.shape
        N = v0.shape[1]
        lib = native.load()

        def run_chunk(rows: slice):
            per_row = [x[:, rows].contiguous(), v0[rows].contiguous(), dt[:, rows].contiguous()]
            b = rows.stop - rows.start
            vs = x.new_empty(T, unfolds, b, N)  # state before every unfold
            out = x.new_empty(T, b, N)
            lib.ln_ltc_fwd(
                T, b, N, C, unfolds, ctypes.c_float(eps), *map(_ptr, per_row + params),
                _ptr(vs), _ptr(out),
            )  # fmt: skip
            return per_row, vs, out

        parts = _chunks(B)
        results = _parallel(run_chunk, parts)
        ctx.unfolds, ctx.eps, ctx.parts = unfolds, eps, parts
        ctx.results = results
        ctx.save_for_backward(*params)
        return torch.cat([r[2] for r in results], dim=1)

    @staticmethod
    def backward(ctx, dout):
        params = ctx.saved_tensors
        lib = native.load()

        def run_chunk(job):
            rows, ((x, v0, dt), vs, out) = job
            T, b, C = x.shape
            N = v0.shape[1]
            d_rows = [torch.zeros_like(t) for t in (v0, x, dt)]
            d_params = [torch.zeros_like(p) for p in params]
            inputs = (x, dt, *params, vs, out, dout[:, rows].contiguous())
            lib.ln_ltc_bwd(
                T, b, N, C, ctx.unfolds, ctypes.c_float(ctx.eps),
                *map(_ptr, inputs), *map(_ptr, d_rows + d_params),
            )  # fmt: skip
            return d_rows, d_params

        results = _parallel(run_chunk, list(zip(ctx.parts, ctx.results, strict=True)))
        del ctx.results
        dv0 = torch.cat([r[0][0] for r in results], dim=0)
        dx, ddt = (torch.cat([r[0][k] for r in results], dim=1) for k in (1, 2))
        d_params = [sum(r[1][k] for r in results) for k in range(len(params))]
        return (None, None, dx, dv0, ddt, *d_params)


def run(cell: LTCCell, x: Tensor, h0: Tensor, ts) -> tuple[Tensor, Tensor]:
    """Run `cell` over `x (B, T, C)` from `h0 (B, N)`; returns outputs `(B, T, motor)` and
    the final state."""
    B, T, _ = x.shape
    if ts is None or isinstance(ts, float):
        dt = x.new_full((T, B), 1.0 if ts is None else ts)
    elif ts.dim() == 0:
        dt = ts.reshape(1, 1).expand(T, B)
    else:
        dt = ts[..., 0].t()  # (T, B)
    xm = cell._map_inputs(x).transpose(0, 1)  # (T, B, C)
    gleak = cell._positive(cell.gleak)
    w = cell._positive(cell.w) * cell.sparsity_mask  # (N, N) [pre, post]
    sw = cell._positive(cell.sensory_w) * cell.sensory_sparsity_mask  # (C, N)
    states = LTCScan.apply(
        cell.ode_unfolds,
        cell._epsilon,
        xm,
        h0,
        dt,
        gleak * cell.vleak,
        gleak,
        cell._positive(cell.cm),
        (w * cell.erev).t(),
        w.t(),
        cell.sigma.t(),
        cell.mu.t(),
        (sw * cell.sensory_erev).t(),
        sw.t(),
        cell.sensory_sigma.t(),
        cell.sensory_mu.t(),
    )  # (T, B, N)
    out = cell._map_outputs(states.reshape(T * B, -1)).reshape(T, B, -1)
    return out.transpose(0, 1), states[-1]


def _step_weights(cell: LTCCell) -> list[Tensor]:
    gleak = cell._positive(cell.gleak)
    w = cell._positive(cell.w) * cell.sparsity_mask
    sw = cell._positive(cell.sensory_w) * cell.sensory_sparsity_mask
    params = [gleak * cell.vleak, gleak, cell._positive(cell.cm), (w * cell.erev).t(), w.t()]
    params += [cell.sigma.t(), cell.mu.t(), (sw * cell.sensory_erev).t(), sw.t()]
    params += [cell.sensory_sigma.t(), cell.sensory_mu.t()]
    return [p.contiguous() for p in params]


def step(cell: LTCCell, x: Tensor, h: Tensor, dt) -> tuple[Tensor, Tensor]:
    """One step without autograd, the synapse matrices prepared once and cached."""
    from liquidnets.fast.cfc import _cached

    params = _cached(cell, _step_weights)
    B, C = x.shape
    N = h.shape[1]
    xm = cell._map_inputs(x).contiguous()
    if isinstance(dt, Tensor):
        dts = dt.reshape(-1).expand(B).contiguous()
    else:
        dts = x.new_full((B,), dt)
    vs = x.new_empty(cell.ode_unfolds, B, N)
    out = x.new_empty(B, N)
    native.load().ln_ltc_fwd(
        1, B, N, C, cell.ode_unfolds, ctypes.c_float(cell._epsilon),
        *map(_ptr, [xm, h.contiguous(), dts, *params, vs, out]),
    )  # fmt: skip
    return cell._map_outputs(out), out

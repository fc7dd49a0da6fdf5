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
from liquidnets.fast import native, time_major
from liquidnets.fast._cache import cached


def supports(cell: LTCCell) -> bool:
    """Whether the kernel computes what `cell` computes: the fused solver, float32, CPU."""
    return (
        type(cell.solver) is SemiImplicit
        and cell.cm.dtype == torch.float32
        and cell.cm.device.type == "cpu"
        and native.load() is not None
    )


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _threads(lib) -> tuple[int, int]:
    """`(chunks, threads per chunk)`: a kernel built with OpenMP shares one call among torch's
    intra-op threads itself; otherwise the batch is split into chunks for a thread pool."""
    n = torch.get_num_threads()
    return (1, n) if native.openmp() else (n, 1)


def _chunks(batch: int, lanes: int, parts: int) -> list[slice]:
    """Split the batch into up to `parts` chunks: rows are independent, and ctypes releases
    the GIL while a kernel runs, so the chunks run in parallel. The kernel works on `lanes`
    rows at a time, so there are no more chunks than blocks of `lanes` rows."""
    n = max(1, min(parts, -(-batch // lanes)))
    bounds = [batch * k // n for k in range(n + 1)]
    return [slice(a, b) for a, b in itertools.pairwise(bounds)]


def _parallel(fn, jobs: list) -> None:
    """`fn(job)` for every job, the first in this thread, the others in the pool. `fn` must
    only call the kernel: no torch ops in the pool (see `LTCScan.forward`)."""
    futures = [_pool().submit(fn, job) for job in jobs[1:]]
    fn(jobs[0])
    for f in futures:
        f.result()


_POOL: dict = {}


def _pool():
    n = torch.get_num_threads()
    if n not in _POOL:
        _POOL[n] = concurrent.futures.ThreadPoolExecutor(max_workers=n)
    return _POOL[n]


class LTCScan(torch.autograd.Function):
    """`out (T, B, N) = LTCScan.apply(unfolds, eps, x, v0, dt, index, *params)`: mapped
    inputs `x (T, B, C)`, `v0 (B, N)`, `dt (T, B)`; `index` the CSR rows and columns of the
    recurrent and sensory synapses (see `_csr`); `params` = `a_leak, gleak, cm` `(N,)`, then
    per block (recurrent, sensory) the per-synapse `we, wm, sigma, mu` in CSR order."""

    @staticmethod
    def forward(ctx, unfolds: int, eps: float, x, v0, dt, index, *params):
        params = [p.contiguous() for p in params]
        T, B, C = x.shape
        N = v0.shape[1]
        lib = native.load()
        r_row, r_col, s_row, s_col = index
        pointers = [*params[:3], r_row, r_col, *params[3:7], s_row, s_col, *params[7:]]
        pointers = [_ptr(p) for p in pointers]

        # Tensors are made here, in the calling thread: a torch op in a worker thread would
        # start another OpenMP team, whose spinning threads then slow every later torch op.
        results = []
        lanes = lib.ln_ltc_lanes()
        parts, threads = _threads(lib)
        for rows in _chunks(B, lanes, parts):
            per_row = [x[:, rows].contiguous(), v0[rows].contiguous(), dt[:, rows].contiguous()]
            b = rows.stop - rows.start
            # The state before every unfold and the sums a, g of every unfold, in the lane
            # layout of `ln_ltc_fwd_lanes`.
            vs = x.new_empty(T, unfolds, -(-b // lanes) * lanes, N)
            sums = x.new_empty(T, unfolds, 2, vs.shape[2], N)
            out = x.new_empty(T, b, N)
            results.append((per_row, vs, sums, out))

        def run_chunk(job):
            per_row, vs, sums, out = job
            lib.ln_ltc_fwd_lanes(
                T, out.shape[1], N, C, unfolds, ctypes.c_float(eps), *map(_ptr, per_row),
                *pointers, _ptr(vs), _ptr(sums), _ptr(out), threads,
            )  # fmt: skip

        _parallel(run_chunk, results)
        ctx.unfolds, ctx.eps, ctx.pointers = unfolds, eps, pointers
        ctx.parts, ctx.threads = _chunks(B, lanes, parts), threads
        ctx.results = results
        ctx.save_for_backward(*params, *index)
        return torch.cat([r[3] for r in results], dim=1)

    @staticmethod
    def backward(ctx, dout):
        params = ctx.saved_tensors[:-4]
        lib = native.load()

        jobs, results = [], []
        for rows, ((x, v0, dt), vs, sums, out) in zip(ctx.parts, ctx.results, strict=True):
            d_rows = [torch.zeros_like(t) for t in (v0, x, dt)]
            d_params = [torch.zeros_like(p) for p in params]
            d_out = dout[:, rows].contiguous()
            jobs.append((x, dt, vs, sums, out, d_out, d_rows + d_params))
            results.append((d_rows, d_params))

        def run_chunk(job):
            x, dt, vs, sums, out, d_out, grads = job
            T, b, C = x.shape
            lib.ln_ltc_bwd_lanes(
                T, b, vs.shape[3], C, ctx.unfolds, ctypes.c_float(ctx.eps), _ptr(x), _ptr(dt),
                *ctx.pointers, _ptr(vs), _ptr(sums), _ptr(out), _ptr(d_out), *map(_ptr, grads),
                ctx.threads,
            )  # fmt: skip

        _parallel(run_chunk, jobs)
        del ctx.results
        dv0 = torch.cat([r[0][0] for r in results], dim=0)
        dx, ddt = (torch.cat([r[0][k] for r in results], dim=1) for k in (1, 2))
        d_params = [sum(r[1][k] for r in results) for k in range(len(params))]
        return (None, None, dx, dv0, ddt, None, *d_params)


def _csr(mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Row pointers `(n_post + 1,)`, columns `(nnz,)` and rows `(nnz,)` of the synapses of a
    `(pre, post)` mask, by postsynaptic row: the kernel's sparse layout."""
    post, pre = mask.t().nonzero(as_tuple=True)  # sorted by post, then pre
    counts = torch.bincount(post, minlength=mask.shape[1])
    row = torch.zeros(mask.shape[1] + 1, dtype=torch.long, device=mask.device)
    row[1:] = counts.cumsum(0)
    return row, pre.contiguous(), post


def _prepare(cell: LTCCell) -> tuple[tuple[Tensor, ...], list[Tensor]]:
    """The CSR index and the per-synapse values of `cell`, differentiable in its parameters."""
    r_row, r_col, r_post = _csr(cell.sparsity_mask)
    s_row, s_col, s_post = _csr(cell.sensory_sparsity_mask)
    gleak = cell._positive(cell.gleak)
    w = cell._positive(cell.w)[r_col, r_post]  # (nnz,)
    sw = cell._positive(cell.sensory_w)[s_col, s_post]
    params = [gleak * cell.vleak, gleak, cell._positive(cell.cm)]
    params += [w * cell.erev[r_col, r_post], w, cell.sigma[r_col, r_post], cell.mu[r_col, r_post]]
    params += [sw * cell.sensory_erev[s_col, s_post], sw]
    params += [cell.sensory_sigma[s_col, s_post], cell.sensory_mu[s_col, s_post]]
    return (r_row, r_col, s_row, s_col), params


def run(cell: LTCCell, x: Tensor, h0: Tensor, ts) -> tuple[Tensor, Tensor]:
    """Run `cell` over `x (B, T, C)` from `h0 (B, N)`; returns outputs `(B, T, motor)` and
    the final state."""
    B, T, _ = x.shape
    dt = time_major(ts, x)[..., 0].expand(T, B)  # (T, B)
    xm = cell._map_inputs(x).transpose(0, 1)  # (T, B, C)
    index, params = _prepare(cell)
    states = LTCScan.apply(cell.ode_unfolds, cell._epsilon, xm, h0, dt, index, *params)
    out = cell._map_outputs(states.reshape(T * B, -1)).reshape(T, B, -1)
    return out.transpose(0, 1), states[-1]


def _step_weights(cell: LTCCell):
    index, params = _prepare(cell)
    r_row, r_col, s_row, s_col = index
    ordered = [*params[:3], r_row, r_col, *params[3:7], s_row, s_col, *params[7:]]
    maps = cell._input_mapping, cell._output_mapping
    scale = [cell.input_w if maps[0] != "none" else None]
    scale += [cell.input_b if maps[0] == "affine" else None]
    scale += [cell.output_w if maps[1] != "none" else None]
    scale += [cell.output_b if maps[1] == "affine" else None]
    scale = [None if t is None else t.contiguous() for t in scale]
    return [p.contiguous() for p in ordered], scale


def step(cell: LTCCell, x: Tensor, h: Tensor, dt) -> tuple[Tensor, Tensor]:
    """One step without autograd in one kernel call, mappings included, the synapses prepared
    once and cached. A small batch runs sample by sample, a larger one in the lane layout of
    the training scan."""
    params, (in_w, in_b, out_w, out_b) = cached(cell, _step_weights)
    B, C = x.shape
    N, M = h.shape[1], cell.motor_size
    x, h = x.contiguous(), h.contiguous()
    dts = dt.to(x.dtype).reshape(-1).expand(B).contiguous() if isinstance(dt, Tensor) else None
    out, y = x.new_empty(B, N), x.new_empty(B, M)
    lib = native.load()
    lib.ln_ltc_step(
        B, N, C, cell.ode_unfolds, ctypes.c_float(cell._epsilon), _ptr(x), _ptr(in_w),
        _ptr(in_b), _ptr(h), ctypes.c_float(0.0 if dts is not None else float(dt)), _ptr(dts),
        *map(_ptr, params), M, _ptr(out_w), _ptr(out_b), _ptr(out), _ptr(y),
        _threads(lib)[1],
    )  # fmt: skip
    return y, out

"""Sequence layers `CfC` and `LTC`: input layouts, timespans, state, mixed memory, projection.

Both are thin loops over one cell step; `step()` exposes that step for streaming, so running
`T` steps one by one gives exactly what one call over the sequence gives.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from liquidnets import fast
from liquidnets.cells import CfCCell, LSTMCell, LTCCell, WiredCfCCell
from liquidnets.cells.solvers import ODESolver
from liquidnets.fast import cfc as fast_cfc
from liquidnets.fast import ltc as fast_ltc
from liquidnets.wirings import FullyConnected, Wiring

State = Tensor | tuple[Tensor, Tensor]


class LiquidRNN(nn.Module):
    """What every liquid sequence layer shares. Subclasses create `self.rnn_cell`, a cell
    `(x_t (B, C), h (B, H), dt) -> (y_t (B, output_size), h_next (B, H))`, then call
    `_finish_init`."""

    rnn_cell: nn.Module

    def _finish_init(
        self,
        input_size: int,
        state_size: int,
        output_size: int,
        proj_size: int | None,
        return_sequences: bool,
        batch_first: bool,
        mixed_memory: bool,
        factory: dict,
    ) -> None:
        self.input_size = input_size
        self.state_size = state_size
        self.output_size = output_size
        self.proj_size = proj_size
        self.return_sequences = return_sequences
        self.batch_first = batch_first
        self.use_mixed = mixed_memory
        if mixed_memory:
            self.lstm = LSTMCell(input_size, state_size, **factory)
        if proj_size is None:
            self.fc = nn.Identity()
        else:
            if proj_size < 1:
                raise ValueError(f"proj_size must be a positive integer or None; got {proj_size}")
            self.fc = nn.Linear(output_size, proj_size, **factory)

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def out_features(self) -> int:
        """Features of each output: `proj_size` if set, else the cell's output size."""
        return self.output_size if self.proj_size is None else self.proj_size

    # -- state ---------------------------------------------------------------------------
    def init_state(self, batch_size: int | None = None, *, device=None, dtype=None) -> State:
        """The zero initial state: `(B, H)`, or `(H,)` when `batch_size` is None; a pair
        `(h, c)` with `mixed_memory=True`. Device and dtype default to the parameters'."""
        ref = next(self.parameters())
        shape = (self.state_size,) if batch_size is None else (batch_size, self.state_size)
        kw = {"device": device or ref.device, "dtype": dtype or ref.dtype}
        h = torch.zeros(shape, **kw)
        return (h, torch.zeros(shape, **kw)) if self.use_mixed else h

    def _check_state(self, hx: State, batch: int | None, like: Tensor) -> State:
        expected = (self.state_size,) if batch is None else (batch, self.state_size)
        fast_ok = isinstance(hx, Tensor) and not self.use_mixed  # the common case, quickly
        if fast_ok and hx.shape == expected and hx.dtype == like.dtype:
            return hx
        where = "unbatched" if batch is None else "batched"
        if self.use_mixed:
            if not (isinstance(hx, tuple | list) and len(hx) == 2):
                raise ValueError(
                    f"{self.name} with mixed_memory=True takes hx=(h0, c0), a pair of tensors;"
                    f" got {type(hx).__name__}"
                )
            parts = list(hx)
        else:
            if not isinstance(hx, Tensor):
                raise ValueError(
                    f"{self.name} takes hx as one tensor of shape {expected}"
                    f" (a pair (h0, c0) only with mixed_memory=True); got {type(hx).__name__}"
                )
            parts = [hx]
        for i, part in enumerate(parts):
            if not isinstance(part, Tensor) or tuple(part.shape) != expected:
                got = tuple(part.shape) if isinstance(part, Tensor) else type(part).__name__
                label = ("h0", "c0")[i] if self.use_mixed else "hx"
                raise ValueError(
                    f"{self.name}: {label} for {where} input must have shape {expected}; got {got}"
                )
        parts = [p.to(dtype=like.dtype) for p in parts]
        return (parts[0], parts[1]) if self.use_mixed else parts[0]

    # -- input checks ----------------------------------------------------------------------
    def _check_input(self, x: Tensor, dims: tuple[int, ...], what: str) -> None:
        if not isinstance(x, Tensor):
            raise ValueError(f"{self.name}: {what} must be a torch.Tensor; got {type(x).__name__}")
        if x.dim() not in dims:
            raise ValueError(
                f"{self.name}: {what} must have {' or '.join(map(str, dims))} dimensions;"
                f" got shape {tuple(x.shape)}"
            )
        if x.shape[-1] != self.input_size:
            raise ValueError(
                f"{self.name}: expected {self.input_size} input features (last dimension);"
                f" got {x.shape[-1]} in {what} of shape {tuple(x.shape)}"
            )

    def _timespans(
        self, timespans: Tensor | float | None, batch: int, steps: int, batched: bool, like: Tensor
    ) -> Tensor | float | None:
        """Timespans as `None`, one number, or a `(B, T, 1)` tensor, after checking them."""
        if timespans is None:
            return None
        if not isinstance(timespans, Tensor):
            _check_elapsed(torch.tensor(float(timespans)), self.name)
            return float(timespans)
        ts = timespans.to(device=like.device, dtype=like.dtype)
        _check_elapsed(ts, self.name)
        if ts.dim() == 0:
            return ts
        if not batched:
            if ts.shape not in ((steps,), (steps, 1)):
                raise ValueError(
                    f"{self.name}: timespans for unbatched input must have shape ({steps},) or"
                    f" ({steps}, 1); got {tuple(ts.shape)}"
                )
            return ts.reshape(1, steps, 1)
        outer = (batch, steps) if self.batch_first else (steps, batch)
        if ts.shape not in (outer, (*outer, 1)):
            layout = "(B, T)" if self.batch_first else "(T, B)"
            raise ValueError(
                f"{self.name}: timespans must have shape {outer} or {(*outer, 1)}, i.e. {layout}"
                f" like the input; got {tuple(ts.shape)}"
            )
        ts = ts.reshape(*outer, 1)
        return ts if self.batch_first else ts.transpose(0, 1)  # (B, T, 1)

    # -- running -------------------------------------------------------------------------
    def _fused(self, cell_only: bool = False):
        """The fused module able to run this layer's whole sequence, or None. `cell_only`:
        one able to run the liquid cell alone, mixed memory or not (a step of the mixed
        path runs the LSTM, then the cell through it)."""
        if not fast.enabled() or (self.use_mixed and not cell_only):
            return None
        cell = self.rnn_cell
        if isinstance(cell, CfCCell | WiredCfCCell):
            return fast_cfc if fast_cfc.supports(cell) else None
        if isinstance(cell, LTCCell) and fast_ltc.supports(cell):
            return fast_ltc
        return None

    def _step(
        self, x: Tensor, state: State, dt: Tensor | float, cell_fused=None
    ) -> tuple[Tensor, State]:
        """One reference step; with mixed memory, `cell_fused` (from `_fused(cell_only=True)`,
        looked up once per sequence by the caller) runs the cell's own kernels."""
        if self.use_mixed:
            h, c = state
            h, c = self.lstm(x, (h, c))
            if cell_fused is None:
                y, h = self.rnn_cell(x, h, dt)
            else:  # a one-step scan: the cell's own kernels, forward and backward
                ts = dt.reshape(-1, 1, 1) if isinstance(dt, Tensor) else dt
                y, h = cell_fused.run(self.rnn_cell, x.unsqueeze(1), h, ts)
                y = y[:, 0]
            return self.fc(y), (h, c)
        y, h = self.rnn_cell(x, state, dt)
        return self.fc(y), h

    def step(
        self, x: Tensor, hx: State | None = None, dt: Tensor | float = 1.0
    ) -> tuple[Tensor, State]:
        """Advance one time step: the streaming API.

        Args:
            x: input at this step, `(B, C)`, or `(C,)` for one unbatched stream.
            hx: state from `init_state()` or the previous `step()`; zeros when None.
            dt: elapsed time since the previous step: a number, or `(B,)`/`(B, 1)`.

        Returns:
            `(y, hx_next)` with `y` of shape `(B, out_features)` (or `(out_features,)`).
        """
        self._check_input(x, (1, 2), "x")
        batched = x.dim() == 2
        batch = x.shape[0] if batched else None
        state = self.init_state(batch, dtype=x.dtype) if hx is None else hx
        state = self._check_state(state, batch, x)
        if isinstance(dt, Tensor):
            dt = dt.to(device=x.device, dtype=x.dtype)
            _check_elapsed(dt, self.name)
        else:
            dt = float(dt)
            if not (math.isfinite(dt) and dt >= 0):
                raise ValueError(f"{self.name}: timespans must be finite and >= 0; got {dt}")
        if not batched:
            x = x.unsqueeze(0)
            state = _map_state(state, lambda s: s.unsqueeze(0))
        fused = self._fused() if not torch.is_grad_enabled() else None
        if fused is not None:
            y, state = fused.step(self.rnn_cell, x, state, dt)
            if self.proj_size is not None:
                y = self.fc(y)
        else:
            y, state = self._step(x, state, dt, self._fused(cell_only=True))
        if not batched:
            y, state = y.squeeze(0), _map_state(state, lambda s: s.squeeze(0))
        return y, state

    def _mask(self, mask, lengths, batch: int, steps: int, batched: bool, like: Tensor):
        """The valid steps as a `(B, T)` bool tensor, from `mask` or `lengths`; None if
        neither is given (every step is valid)."""
        if mask is not None and lengths is not None:
            raise ValueError(f"{self.name}: give mask or lengths, not both")
        if lengths is not None:
            n = torch.as_tensor(lengths, device=like.device).reshape(-1)
            if n.shape != (batch,) or n.dtype.is_floating_point:
                raise ValueError(
                    f"{self.name}: lengths must be {batch} integers (one per sequence); got "
                    f"{tuple(n.shape)} of {n.dtype}"
                )
            if bool(((n < 0) | (n > steps)).any()):
                raise ValueError(f"{self.name}: lengths must lie in [0, {steps}]; got {n.tolist()}")
            return torch.arange(steps, device=like.device) < n.unsqueeze(1)  # (B, T)
        if mask is None:
            return None
        m = torch.as_tensor(mask, device=like.device)
        outer = (steps,) if not batched else (batch, steps) if self.batch_first else (steps, batch)
        if tuple(m.shape) != outer:
            layout = "(T,)" if not batched else "(B, T)" if self.batch_first else "(T, B)"
            raise ValueError(
                f"{self.name}: mask must have shape {outer}, i.e. {layout} like the input; got "
                f"{tuple(m.shape)}"
            )
        if m.dtype != torch.bool:
            if m.dtype.is_floating_point or bool(((m != 0) & (m != 1)).any()):
                raise ValueError(f"{self.name}: mask must be bool (or 0/1), True at valid steps")
            m = m.bool()
        m = m.reshape(1, steps) if not batched else m if self.batch_first else m.t()
        return m  # (B, T)

    def forward(
        self,
        input: Tensor,
        hx: State | None = None,
        timespans: Tensor | float | None = None,
        mask: Tensor | None = None,
        lengths: Tensor | None = None,
    ) -> tuple[Tensor, State]:
        """Run the layer over a sequence.

        Args:
            input: `(B, T, C)` with `batch_first=True` (default), `(T, B, C)` otherwise, or
                `(T, C)` for one unbatched sequence.
            hx: initial state `(B, H)` (`(H,)` unbatched), a pair `(h0, c0)` with
                `mixed_memory=True`; zeros when None.
            timespans: elapsed time before each step, laid out like the input without the
                feature axis, `(B, T)` or `(B, T, 1)` (`(T,)` unbatched), or one number for
                all steps; 1.0 when None. Must be finite and non-negative.
            mask: valid steps of variable-length (padded) sequences, bool, laid out like
                `timespans` (`(B, T)`); or `lengths`: the valid length of each sequence,
                `(B,)`, its steps first. A padded step leaves the state unchanged, and its
                output repeats the last valid one (zeros before the first), so the last
                output (`return_sequences=False`) is the last valid step's.

        Returns:
            `(output, h_n)`: `output` is `(B, T, out)` (in the input's layout) with
            `return_sequences=True`, else the last step's `(B, out)`; `h_n` has the form of
            `hx`.
        """
        self._check_input(input, (2, 3), "input")
        batched = input.dim() == 3
        x = input if batched else input.unsqueeze(0)
        if batched and not self.batch_first:
            x = x.transpose(0, 1)  # (B, T, C)
        batch, steps = x.shape[0], x.shape[1]
        if steps == 0:
            raise ValueError(f"{self.name}: input has no time steps (shape {tuple(input.shape)})")
        ts = self._timespans(timespans, batch, steps, batched, x)
        valid = self._mask(mask, lengths, batch, steps, batched, x)  # (B, T) bool or None
        hold = valid  # steps where the state is held by masking
        if valid is not None and isinstance(self.rnn_cell, LTCCell):
            # LTC solvers move the state by dt times its derivative: dt = 0 holds it exactly
            base = torch.ones_like(x[..., :1]) if ts is None else ts  # (B, T, 1) or scalar
            ts = valid.unsqueeze(-1).to(x.dtype) * base  # (B, T, 1)
            hold = valid if self.use_mixed else None  # the LSTM memory must be held too
        if hx is None:
            state = self.init_state(batch, device=x.device, dtype=x.dtype)
        else:
            state = self._check_state(hx, batch if batched else None, x)
            if not batched:
                state = _map_state(state, lambda s: s.unsqueeze(0))

        fused = self._fused()
        if fused is not None:
            run = (lambda *a: fused.run(*a, mask=hold)) if hold is not None else fused.run
            seq, state = run(self.rnn_cell, x, state, ts)  # (B, T, out), (B, H)
            if valid is not None:
                seq = _carry_last_valid(seq, valid)
            out = self.fc(seq if self.return_sequences else seq[:, -1])
            return self._restore_layout(out, state, batched)

        outputs, last = [], None
        cell_fused = self._fused(cell_only=True) if self.use_mixed else None
        for t in range(steps):
            dt = 1.0 if ts is None else (ts if isinstance(ts, float) or ts.dim() == 0 else ts[:, t])
            y, new = self._step(x[:, t], state, dt, cell_fused)  # y: (B, out)
            if valid is not None:
                on = valid[:, t : t + 1]  # (B, 1)
                if hold is not None:
                    new = _map_pair(new, state, lambda a, b, on=on: torch.where(on, a, b))
                last = torch.zeros_like(y) if last is None else last
                y = torch.where(on, y, last)
                last = y
            state = new
            if self.return_sequences:
                outputs.append(y)

        out = torch.stack(outputs, dim=1) if self.return_sequences else y  # (B, T, out) | (B, out)
        return self._restore_layout(out, state, batched)

    def _restore_layout(self, out: Tensor, state: State, batched: bool) -> tuple[Tensor, State]:
        if not batched:
            return out.squeeze(0), _map_state(state, lambda s: s.squeeze(0))
        if self.return_sequences and not self.batch_first:
            out = out.transpose(0, 1)  # (T, B, out)
        return out, state

    def extra_repr(self) -> str:
        s = f"input_size={self.input_size}, state_size={self.state_size}"
        if self.proj_size is not None:
            s += f", proj_size={self.proj_size}"
        if self.use_mixed:
            s += ", mixed_memory=True"
        if not self.batch_first:
            s += ", batch_first=False"
        if not self.return_sequences:
            s += ", return_sequences=False"
        return s


def _map_state(state: State, fn) -> State:
    return tuple(fn(s) for s in state) if isinstance(state, tuple) else fn(state)


def _map_pair(a: State, b: State, fn) -> State:
    if isinstance(a, tuple):
        return tuple(fn(x, y) for x, y in zip(a, b, strict=True))
    return fn(a, b)


def _carry_last_valid(seq: Tensor, valid: Tensor) -> Tensor:
    """`seq (B, T, F)` with every invalid step replaced by the last valid one before it
    (zeros when there is none)."""
    steps = torch.arange(seq.shape[1], device=seq.device)
    last = torch.cummax(torch.where(valid, steps, -1), dim=1).values  # (B, T)
    picked = seq.gather(1, last.clamp(min=0).unsqueeze(-1).expand(-1, -1, seq.shape[-1]))
    return torch.where((last >= 0).unsqueeze(-1), picked, torch.zeros_like(picked))


def _check_elapsed(ts: Tensor, name: str) -> None:
    bad = ~torch.isfinite(ts) | (ts < 0)
    if bool(bad.any()):
        index = tuple(int(i) for i in bad.nonzero()[0]) if ts.dim() else ()
        value = float(ts[index]) if ts.dim() else float(ts)
        at = f" at index {index}" if index else ""
        raise ValueError(
            f"{name}: timespans must be finite and >= 0; got {value}{at}"
            + (" (NaN)" if math.isnan(value) else "")
        )


def _check_size(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer; got {value!r}")
    return value


class CfC(LiquidRNN):
    """A Closed-form Continuous-time RNN (Hasani et al., Nature MI 2022) over a sequence.

    A drop-in for `ncps.torch.CfC`: the same arguments, forward signature and outputs, and
    ncps checkpoints load with `load_state_dict`. Each step is a `CfCCell` (or, when `units`
    is a wiring, a `WiredCfCCell`); see their docstrings for the math.

    Args:
        input_size: input features `C`.
        units: hidden units `H` (int), or a `liquidnets.wirings.Wiring` such as `AutoNCP`.
        proj_size: if set, a linear layer maps each output to `proj_size` features.
        return_sequences: return every step's output (default) or only the last.
        batch_first: input is `(B, T, C)` (default) rather than `(T, B, C)`.
        mixed_memory: add an LSTM memory cell beside the CfC for long-term dependencies.
        mode: `"default"`, `"pure"` or `"no_gate"`.
        activation: backbone activation: `"lecun_tanh"`, `"silu"`, `"relu"`, `"tanh"`, `"gelu"`.
        backbone_units: backbone width (default 128; not with a wiring).
        backbone_layers: backbone depth (default 1; not with a wiring).
        backbone_dropout: dropout in the backbone (default 0; not with a wiring).
        device, dtype: where and in which precision to create the parameters.

    Inputs: `input`, `hx`, `timespans`: see `forward`.
    Outputs: `(output, h_n)`.

    >>> rnn = CfC(20, 50)
    >>> x = torch.randn(2, 3, 20)  # (batch, time, features)
    >>> h0 = torch.zeros(2, 50)  # (batch, units)
    >>> output, hn = rnn(x, h0)
    >>> tuple(output.shape), tuple(hn.shape)
    ((2, 3, 50), (2, 50))
    """

    def __init__(
        self,
        input_size: int,
        units: int | Wiring,
        proj_size: int | None = None,
        return_sequences: bool = True,
        batch_first: bool = True,
        mixed_memory: bool = False,
        mode: str = "default",
        activation: str = "lecun_tanh",
        backbone_units: int | None = None,
        backbone_layers: int | None = None,
        backbone_dropout: float | None = None,
        *,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        _check_size(input_size, "input_size")
        self.wiring_or_units = units
        if isinstance(units, Wiring):
            for arg, value in (
                ("backbone_units", backbone_units),
                ("backbone_layers", backbone_layers),
                ("backbone_dropout", backbone_dropout),
            ):
                if value is not None:
                    raise ValueError(f"CfC: {arg} cannot be used with a wiring (got {value})")
            self.rnn_cell = WiredCfCCell(input_size, units, mode, **factory)
            self.wiring = self.rnn_cell.wiring
            state_size, output_size = self.wiring.units, self.wiring.output_dim
        else:
            _check_size(units, "units")
            self.rnn_cell = CfCCell(
                input_size,
                units,
                mode,
                activation,
                128 if backbone_units is None else backbone_units,
                1 if backbone_layers is None else backbone_layers,
                0.0 if backbone_dropout is None else backbone_dropout,
                **factory,
            )
            self.wiring = None
            state_size = output_size = units
        self._finish_init(
            input_size,
            state_size,
            output_size,
            proj_size,
            return_sequences,
            batch_first,
            mixed_memory,
            factory,
        )


class LTC(LiquidRNN):
    """A Liquid Time-Constant RNN (Hasani et al., AAAI 2021) over a sequence.

    A drop-in for `ncps.torch.LTC` (same arguments, forward and outputs; ncps checkpoints
    load with `load_state_dict`), plus a choice of ODE solver and an optional projection.
    Each step is an `LTCCell`; see its docstring for the ODE and the solvers.

    Args:
        input_size: input features `C`.
        units: number of fully connected neurons (int), or a wiring such as `NCP`/`AutoNCP`.
        return_sequences: return every step's output (default) or only the last.
        batch_first: input is `(B, T, C)` (default) rather than `(T, B, C)`.
        mixed_memory: add an LSTM memory cell beside the LTC.
        input_mapping: `"affine"` (default), `"linear"` or `None`.
        output_mapping: `"affine"` (default), `"linear"` or `None`.
        ode_unfolds: solver steps per time step (default 6).
        epsilon: guard against division by zero (default 1e-8).
        implicit_param_constraints: keep conductances positive by softplus (default True);
            with False, call `apply_weight_constraints()` after each optimiser step.
        proj_size: if set, a linear layer maps each output to `proj_size` features.
        solver: `"fused"` (default, semi-implicit), `"euler"`, `"midpoint"`, `"heun"`, `"rk4"`.
        device, dtype: where and in which precision to create the parameters.

    >>> from liquidnets.wirings import NCP
    >>> wiring = NCP(10, 10, 8, 6, 6, 4, 6)
    >>> rnn = LTC(20, wiring)
    >>> output, hn = rnn(torch.randn(2, 3, 20), torch.zeros(2, 28))
    >>> tuple(output.shape), tuple(hn.shape)
    ((2, 3, 8), (2, 28))
    """

    def __init__(
        self,
        input_size: int,
        units: int | Wiring,
        return_sequences: bool = True,
        batch_first: bool = True,
        mixed_memory: bool = False,
        input_mapping: str | None = "affine",
        output_mapping: str | None = "affine",
        ode_unfolds: int = 6,
        epsilon: float = 1e-8,
        implicit_param_constraints: bool = True,
        *,
        proj_size: int | None = None,
        solver: str | ODESolver = "fused",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        _check_size(input_size, "input_size")
        self.wiring_or_units = units
        if not isinstance(units, Wiring):
            units = FullyConnected(_check_size(units, "units"))
        self.rnn_cell = LTCCell(
            units,
            input_size,
            input_mapping,
            output_mapping,
            ode_unfolds,
            epsilon,
            implicit_param_constraints,
            solver=solver,
            **factory,
        )
        self.wiring = self.rnn_cell.wiring
        self._finish_init(
            input_size,
            self.wiring.units,
            self.wiring.output_dim,
            proj_size,
            return_sequences,
            batch_first,
            mixed_memory,
            factory,
        )

    def apply_weight_constraints(self) -> None:
        """Clip the conductances and capacitance at zero (explicit constraints only)."""
        self.rnn_cell.apply_weight_constraints()

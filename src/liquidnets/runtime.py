"""Run exported liquid networks with numpy alone (or onnxruntime): no torch on the device.

`liquidnets export` (or `liquidnets.deploy.export`) writes a *step model*: one step of a CfC or
LTC layer, `(x, h, dt) -> (y, h_next)`, as an `.npz` file for this runtime or an `.onnx` file
for onnxruntime, each with a JSON sidecar (`<file>.json`: sizes, names, input scaling). This
module imports numpy only, and is a single file with no imports from the rest of the package,
so it can be copied to a device on its own:

    >>> import numpy as np, torch, tempfile
    >>> from liquidnets import CfC
    >>> from liquidnets.deploy import export
    >>> path = export(CfC(3, 8), tempfile.mkdtemp() + "/cfc.npz")
    >>> model = load(path)
    >>> y = model.step(np.ones((2, 3), np.float32), dt=[0.5, 2.0])  # two streams
    >>> y.shape, model.state.shape
    ((2, 8), (2, 8))

`step()` keeps one state row per stream (the batch rows); `reset()` forgets them (or some of
them), `add_streams(k)` starts k more, and a step with another number of rows is refused, so
no stream's state is ever dropped without a word. A model
exported from a trained forecaster or classifier runs the training's preprocessing (its input
scaling, and its missing-value policy for readings that are NaN), and gives forecasts in the
data's units or class probabilities, so a device feeds raw readings (`model.readings`). A
model exported with `window=T` takes whole windows instead:

    >>> window = load(export(CfC(3, 8), tempfile.mkdtemp() + "/w.npz", window=5))
    >>> window.predict(np.ones((4, 5, 3), np.float32), dt=1.0).shape  # 4 windows of 5
    (4, 8)
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

FORMAT = "liquidnets-step"
VERSION = 1
MASK_SUFFIX = "__missing"  # the 0/1 column the `mask` policy adds for a column with gaps

__all__ = ["load", "NumpyStep", "OnnxStep", "NumpyWindow", "OnnxWindow", "FORMAT"]


# -- activations ------------------------------------------------------------------------------
def _sigmoid(x):
    # the tanh form never overflows, and is one ufunc call
    return 0.5 + 0.5 * np.tanh(0.5 * x)


def _softplus(x):
    return np.logaddexp(0.0, x).astype(x.dtype)


_ERF = np.frompyfunc(math.erf, 1, 1)

ACTIVATIONS = {  # lecun_tanh is folded into the weights, leaving a tanh (see _CfC)
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0),
    "silu": lambda x: x * _sigmoid(x),
    "gelu": lambda x: 0.5 * x * (1.0 + _ERF(x / math.sqrt(2.0)).astype(x.dtype)),
}


def _linear(x, w, b=None):
    y = x @ w.T
    return y if b is None else y + b


# -- cells --------------------------------------------------------------------------------------
class _CfC:
    """A CfC cell with its heads merged into one matrix `[f1 | f2 | t_a | t_b]` (transposed
    once, masks applied), so a step is one matrix product per layer."""

    def __init__(self, w: dict, prefix: str, cfg: dict):
        self.mode = cfg["mode"]
        # lecun_tanh = 1.7159 tanh(0.666 x): fold 0.666 into each layer, 1.7159 into the next
        lecun = cfg["activation"] == "lecun_tanh"
        inner, outer = (0.666, 1.7159) if lecun else (1.0, 1.0)
        self.act = np.tanh if lecun else ACTIVATIONS[cfg["activation"]]
        self.backbone, scale = [], 1.0
        for i in range(cfg["backbone_layers"]):
            W, b = w[f"{prefix}backbone.{i}.weight"], w[f"{prefix}backbone.{i}.bias"]
            self.backbone.append((np.ascontiguousarray((W * inner).T * scale), b * inner))
            scale = outer
        mask = w.get(f"{prefix}sparsity_mask")
        mask = 1 if mask is None else mask
        names = ["ff1"] if self.mode == "pure" else ["ff1", "ff2", "time_a", "time_b"]
        masked = {"ff1", "ff2"}
        self.W = np.ascontiguousarray(
            np.concatenate(
                [w[f"{prefix}{n}.weight"] * (mask if n in masked else 1) for n in names]
            ).T
            * scale
        )
        self.b = np.concatenate([w[f"{prefix}{n}.bias"] for n in names])
        self.H = len(w[f"{prefix}ff1.bias"])
        if self.mode == "pure":
            self.w_tau, self.A = np.abs(w[f"{prefix}w_tau"]), w[f"{prefix}A"]

    def __call__(self, x, h, t):
        z = np.concatenate([x, h], axis=1)
        for W, b in self.backbone:
            z = self.act(z @ W + b)
        heads, H = z @ self.W + self.b, self.H
        if self.mode == "pure":
            return -self.A * np.exp(-t * (self.w_tau + np.abs(heads))) * heads + self.A
        ff = np.tanh(heads[:, : 2 * H])
        gate = _sigmoid(heads[:, 2 * H : 3 * H] * t + heads[:, 3 * H :])
        f1, f2 = ff[:, :H], ff[:, H:]
        return f1 + gate * f2 if self.mode == "no_gate" else f1 + gate * (f2 - f1)


class _WiredCfC:
    def __init__(self, w: dict, cfg: dict):
        self.sizes = cfg["layer_sizes"]
        self.motor_index = cfg["motor_index"]
        base = {"mode": cfg["mode"], "activation": "lecun_tanh", "backbone_layers": 0}
        self.layers = [_CfC(w, f"cell.layer_{i}.", base) for i in range(len(self.sizes))]
        ends = np.cumsum(self.sizes).tolist()
        self.spans = [slice(end - size, end) for size, end in zip(self.sizes, ends)]

    def __call__(self, x, h, t):
        new = []
        for layer, span in zip(self.layers, self.spans):  # (slices: np.split costs ~20 µs)
            x = layer(x, h[:, span], t)
            new.append(x)
        state = np.concatenate(new, axis=1)
        y = state[:, self.motor_index] if self.motor_index is not None else x
        return y, state


class _LTC:
    """The LTC step with its constants prepared once (the ONNX export's arrangement): the
    synapse matrices as `(post, pre)` so each unfold sums over the last axis, the synapses'
    sigmoid in tanh form with its constant half summed ahead, and the semi-implicit step
    divided through by `h`: `v' = (g v + a) / (g + b + eps)`, `g = cm / h`."""

    def __init__(self, w: dict, cfg: dict):
        g = lambda name: w[f"cell.{name}"]  # noqa: E731
        pos = _softplus if cfg["implicit_param_constraints"] else (lambda p: p)
        self.in_map, self.out_map = cfg["input_mapping"], cfg["output_mapping"]
        self.input_w, self.input_b = w.get("cell.input_w"), w.get("cell.input_b")
        self.output_w, self.output_b = w.get("cell.output_w"), w.get("cell.output_b")
        s_w = pos(g("sensory_w")) * g("sensory_sparsity_mask")
        self.sensory = tuple(
            np.ascontiguousarray(a.T)
            for a in (s_w, s_w * g("sensory_erev"), g("sensory_mu"), g("sensory_sigma"))
        )
        ws, erev = pos(g("w")) * g("sparsity_mask"), g("erev")
        # sigmoid(u) = (1 + tanh(u / 2)) / 2: the synapses' constant halves are summed once
        self.synapse = tuple(
            np.ascontiguousarray(a.T)
            for a in (g("mu"), 0.5 * g("sigma"), 0.5 * ws, 0.5 * ws * erev)
        )
        gleak, self.cm = pos(g("gleak")), pos(g("cm"))
        self.a0 = gleak * g("vleak") + (0.5 * ws * erev).sum(axis=0)
        self.b0 = gleak + (0.5 * ws).sum(axis=0)
        self.eps = np.float32(cfg["epsilon"])
        self.unfolds, self.solver, self.motor = cfg["ode_unfolds"], cfg["solver"], cfg["motor"]

    def __call__(self, x, v, t):
        if self.in_map in ("affine", "linear"):
            x = x * self.input_w
        if self.in_map == "affine":
            x = x + self.input_b
        s_w, s_we, s_mu, s_sigma = self.sensory
        s = _sigmoid((x[:, None, :] - s_mu) * s_sigma)  # (B, N, C)
        a_in = self.a0 + np.einsum("bij,ij->bi", s, s_we)
        b_in = self.b0 + np.einsum("bij,ij->bi", s, s_w)
        mu, half_s, half_w, half_we = self.synapse

        def synapses(v):  # the sums of tanh((v_pre - mu) sigma / 2), weighted
            th = np.tanh((v[:, None, :] - mu) * half_s)  # (B, N, N): (post, pre)
            return np.einsum("bij,ij->bi", th, half_we), np.einsum("bij,ij->bi", th, half_w)

        cm, eps, h = self.cm, self.eps, t / self.unfolds

        def d(v):
            a, b = synapses(v)
            return (a_in + a - (b_in + b) * v) / (cm + eps)

        if self.solver == "fused":
            g = cm / np.maximum(h, np.float32(1e-30))
            gb = g + (b_in + eps)
        for _ in range(self.unfolds):
            if self.solver == "fused":
                a, b = synapses(v)
                v = (g * v + (a_in + a)) / (gb + b)
            elif self.solver == "euler":
                v = v + h * d(v)
            elif self.solver == "midpoint":
                v = v + h * d(v + 0.5 * h * d(v))
            elif self.solver == "heun":
                k1 = d(v)
                v = v + 0.5 * h * (k1 + d(v + h * k1))
            else:  # rk4
                k1 = d(v)
                k2 = d(v + 0.5 * h * k1)
                k3 = d(v + 0.5 * h * k2)
                k4 = d(v + h * k3)
                v = v + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        y = v[:, : self.motor]
        if self.out_map in ("affine", "linear"):
            y = y * self.output_w
        if self.out_map == "affine":
            y = y + self.output_b
        return y, v


def _lstm(w: dict):
    Wx, bx, Wh = (
        w["lstm.input_map.weight"],
        w["lstm.input_map.bias"],
        w["lstm.recurrent_map.weight"],
    )

    def step(x, h, c):
        g, i, f, o = np.split(_linear(x, Wx, bx) + h @ Wh.T, 4, axis=1)
        c = c * _sigmoid(f + 1.0) + np.tanh(g) * _sigmoid(i)
        return np.tanh(c) * _sigmoid(o), c

    return step


# -- models ---------------------------------------------------------------------------------------
def _check_dt(dt, shape: tuple) -> np.ndarray:
    """`dt` as float32: a number stays a scalar (broadcast by the arithmetic); an array takes
    `shape`, `(B, 1)` for a step or `(B, T)` for a window, or is one row shared by all."""
    if isinstance(dt, (int, float, np.floating)):
        if not 0.0 <= dt < math.inf:  # (NaN fails both comparisons)
            raise ValueError(f"dt must be finite and non-negative; got {dt}")
        return np.float32(dt)
    dt = np.asarray(dt, np.float32)
    if dt.size == shape[0] * shape[1]:
        dt = dt.reshape(shape)
    elif dt.size == shape[1]:
        dt = np.broadcast_to(dt.reshape(1, shape[1]), shape)
    else:
        raise ValueError(
            f"dt must be a number, or {shape[0] * shape[1]} values {shape} (or {shape[1]} "
            f"shared by every row); got shape {np.shape(dt)}"
        )
    if not (dt.min() >= 0 and math.isfinite(dt.max())):
        raise ValueError("dt must be finite and non-negative")
    return dt


class _Model:
    """What every exported model shares: its sidecar, the training's preprocessing (the input
    scaling, the missing-value policy) and the outputs' units (a forecaster's in the data's
    units, a classifier's as probabilities)."""

    def __init__(self, meta: dict):
        self.meta = meta
        self.input_size, self.state_size = meta["input_size"], meta["state_size"]
        self.output_size = meta["output_size"]
        self.window = meta.get("window")
        #: a classifier's class names, in the order of its probabilities
        self.classes = meta.get("classes")
        scaling = meta.get("scaling")
        self.scaling = None
        if scaling:
            self.scaling = {k: np.asarray(v, np.float32) for k, v in scaling.items()}
        self.target_index = None
        if "target_index" in meta:
            # forecasts are step-major: every target at step 1, then at step 2, ...
            self.target_index = list(meta["target_index"]) * meta["horizon"]
            self.target_std = self.scaling["std"][self.target_index]
        #: the columns a trained model reads (its features without their mask columns), or None
        #: for a layer, whose inputs are taken as they are
        self.readings = None
        #: the training's missing-value policy: error, mask, interpolate or drop
        self.missing = meta.get("missing")
        if self.missing is not None:
            features = meta["features"]
            self.readings = [c for c in features if not c.endswith(MASK_SUFFIX)]
            # the data columns come first, then one 0/1 column per column that had gaps
            self._masked = [self.readings.index(c[: -len(MASK_SUFFIX)]) for c in features
                            if c.endswith(MASK_SUFFIX)]  # fmt: skip
            # before a column's first observation, the training's mean stands in for it
            self._first = self.scaling["mean"][: len(self.readings)]

    def _check_x(self, x, axes: tuple) -> tuple[np.ndarray, bool]:
        """`x` as float32 with the leading axis added when it was left out (and whether it
        was); its last axis holds the readings (or for a layer, its inputs)."""
        x = np.asarray(x, np.float32)
        shape, single = x.shape, x.ndim == len(axes) - 1
        x = x[None] if single else x
        width = self.input_size if self.readings is None else len(self.readings)
        if x.ndim != len(axes) or x.shape[1:-1] != axes[1:-1] or x.shape[-1] != width:
            dims = ", ".join(str(a) for a in (*axes[1:-1], width))
            one = f"({dims})" if len(axes) > 2 else f"({dims},)"
            raise ValueError(f"x must be (B, {dims}) or {one}; got {shape}")
        if self.readings is not None:
            bad = np.isinf(x)
            if self.missing == "error":
                bad |= np.isnan(x)
            if bad.any():
                at = np.argwhere(bad)[0]
                what = "infinite" if np.isinf(x[tuple(at)]) else "missing (NaN)"
                raise ValueError(
                    f"x: column {self.readings[at[-1]]!r} is {what} in row {at[0]}"
                    + ("" if what == "infinite" else "; the model was trained with missing='error'")
                )
        return x, single

    def _inputs(self, x: np.ndarray, gaps: np.ndarray | None) -> np.ndarray:
        """The scaled model inputs of filled readings: the readings, then the mask columns."""
        if self.readings is not None and self._masked:
            if gaps is None:
                gaps = np.zeros(x.shape, bool)
            x = np.concatenate([x, gaps[..., self._masked].astype(np.float32)], axis=-1)
        return self._scale(x)

    def _scale(self, x: np.ndarray) -> np.ndarray:
        if self.scaling is None:
            return x
        return (x - self.scaling["mean"]) / self.scaling["std"]

    def _finish(self, y: np.ndarray, last: np.ndarray) -> np.ndarray:
        """The network's output in the model's units; `last` holds the latest readings."""
        if self.target_index is not None:
            # a forecaster predicts the change from the last reading of each target
            return y * self.target_std + last[:, self.target_index]
        if self.classes is not None:
            e = np.exp(y - y.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)
        return y


class _Streams(_Model):
    """A step model: one state per stream, advanced one reading at a time."""

    def __init__(self, meta: dict):
        super().__init__(meta)
        self.state: np.ndarray | None = None

    _PER_STREAM = ("state", "_held", "_carry", "_started", "_standing")

    def reset(self, rows=None) -> None:
        """Forget every stream's state (the next `step` starts them all from zeros, with any
        number of streams), or with `rows` (indices) only those streams' (the others keep
        theirs)."""
        if rows is None or self.state is None:
            self.state = None
            return
        fresh = self._fresh(len(self.state))
        for name in self._PER_STREAM:
            if hasattr(self, name):
                value = getattr(self, name).copy()
                value[rows] = fresh[name][rows]
                setattr(self, name, value)

    def add_streams(self, count: int = 1) -> None:
        """Start `count` new streams, from zeros, after the ones there are: the next `step`
        takes that many more rows."""
        if self.state is None:
            raise ValueError("add_streams: no stream has started yet; the first step starts them")
        fresh = self._fresh(count)
        for name, value in fresh.items():
            setattr(self, name, np.concatenate([getattr(self, name), value]))

    def _fresh(self, B: int) -> dict:
        out = {"state": np.zeros((B, self.state_size), np.float32)}
        if self.readings is not None:
            out["_held"] = np.broadcast_to(self._first, (B, len(self.readings))).copy()
            out["_carry"] = np.zeros((B, 1), np.float32)  # time of readings dropped since
            out["_started"] = np.zeros((B, 1), bool)  # a reading was taken (not dropped)
            out["_standing"] = np.full((B, self.output_size), np.nan, np.float32)
        return out

    def _start(self, B: int) -> None:
        for name, value in self._fresh(B).items():
            setattr(self, name, value)

    def step(self, x, dt: float | np.ndarray = 1.0) -> np.ndarray:
        """Advance every stream by one reading.

        Args:
            x: `(B, n)` (B streams) or `(n,)`. For a trained forecaster or classifier, its
                raw `readings` (NaN where missing: handled by the training's policy,
                `missing`); for a layer, its `input_size` inputs.
            dt: elapsed time since each stream's previous reading: a number or `(B,)`.

        Returns:
            `(B, output_size)` (or `(output_size,)`): a forecaster's forecasts in the data's
            units, a classifier's class probabilities (in the order of `classes`), else the
            layer's outputs. Under `missing="drop"`, a row with a missing reading is skipped:
            its state stays, its output is the one still standing (NaN before the stream's
            first), and its time is carried to the stream's next reading.
        """
        x, single = self._check_x(x, (None, None))
        B = x.shape[0]
        dt = _check_dt(dt, (B, 1))
        if self.state is None:
            self._start(B)
        elif self.state.shape[0] != B:  # never a silent reset of every stream
            n = self.state.shape[0]
            more = (
                f"add_streams({B - n}) to start {B - n} new ones after them, or " if n < B else ""
            )
            raise ValueError(
                f"x holds {B} streams, but the model carries the state of {n}; call {more}"
                "reset() to start every stream afresh"
            )
        if self.readings is None:
            if not np.isfinite(x).all():  # a layer has no missing-value policy: never poison h
                at = np.argwhere(~np.isfinite(x))[0]
                raise ValueError(
                    f"x: input {at[-1]} of row {at[0]} is {x[tuple(at)]}; a layer's step takes "
                    "finite inputs only (the state is kept as it was)"
                )
            y, self.state = self._run(self._scale(x), self.state, dt)
            y = self._finish(y, x)
            return y[0] if single else y
        gaps = np.isnan(x)
        dropped = None
        if gaps.any():
            if self.missing == "drop":
                dropped = gaps.any(axis=1)
            # mask and interpolate hold each stream's last value (interpolating would need
            # the future)
            x = np.where(gaps, self._held, x)
        self._held = x = x.copy()  # never a view of the caller's buffer
        if self.missing == "drop":
            dt = dt + self._carry
        before = self.state
        y, self.state = self._run(self._inputs(x, gaps), before, dt)
        y = self._finish(y, x)
        if self.missing == "drop":
            # a dropped reading's time goes to the stream's next one, as training measured
            # time between the readings it kept (a stream's first kept reading starts afresh)
            taken = ~dropped[:, None] if dropped is not None else np.ones((B, 1), bool)
            self._carry = np.where(taken | ~self._started, 0, dt)
            self._started = self._started | taken
            if dropped is not None:
                self.state = np.where(taken, self.state, before)
                y = np.where(taken, y, self._standing)
            self._standing = y
        return y[0] if single else y


class _Window(_Model):
    """A whole-window model: `window` readings in, the output after the last one."""

    def predict(self, x, dt: float | np.ndarray = 1.0) -> np.ndarray:
        """The output of each window, from a zero state.

        Args:
            x: `(B, window, n)` or `(window, n)`. For a trained forecaster or classifier, its
                raw `readings` (NaN where missing, filled as the training's policy does from
                within the window: the last value held, the training's mean before the
                first); for a layer, its `input_size` inputs.
            dt: elapsed times of the readings: a number, `(window,)` or `(B, window)`.

        Returns:
            `(B, output_size)` (or `(output_size,)`): a classifier's class probabilities
            (in the order of `classes`), a forecaster's forecasts in the data's units, else
            the layer's outputs.
        """
        x, single = self._check_x(x, (None, self.window, None))
        dt = _check_dt(dt, (x.shape[0], self.window))
        gaps = None
        if self.readings is not None:
            gaps = np.isnan(x)
            if gaps.any():
                if self.missing == "drop":
                    raise ValueError(
                        "x: a window has missing readings (NaN), and the model was trained "
                        "with missing='drop'; a whole window cannot drop a reading (stream "
                        "them through the step model instead)"
                    )
                x = x.copy()
                held = np.broadcast_to(self._first, (x.shape[0], x.shape[2]))
                for t in range(self.window):
                    x[:, t] = held = np.where(gaps[:, t], held, x[:, t])
        y = self._run_window(self._inputs(x, gaps), dt)
        y = self._finish(y, x[:, -1])
        return y[0] if single else y


class _NumpyNet:
    """The network of an `.npz` model: `(x, state, dt) -> (y, state)` for one reading."""

    def __init__(self, weights: dict, meta: dict):
        self.meta = meta
        cfg = meta["cell"]
        w = {k: v.astype(np.float32) for k, v in weights.items()}
        kind = cfg["kind"]
        if kind == "cfc":
            self.cell = _CfC(w, "cell.", cfg)
        elif kind == "wired_cfc":
            self.cell = _WiredCfC(w, cfg)
        elif kind == "ltc":
            self.cell = _LTC(w, cfg)
        else:
            raise ValueError(f"unknown cell kind {kind!r} in this step model")
        self.kind = kind
        self.lstm = _lstm(w) if meta["mixed_memory"] else None
        self.proj = (w["proj.weight"], w["proj.bias"]) if "proj.weight" in w else None
        self.head = (w["head.weight"], w["head.bias"]) if "head.weight" in w else None

    def __call__(self, x, state, dt):
        H = self.meta["cell_state_size"]
        h, c = (state[:, :H], state[:, H:]) if self.lstm else (state, None)
        if self.lstm:
            h, c = self.lstm(x, h, c)
        if self.kind == "cfc":
            y = h = self.cell(x, h, dt)
        else:
            y, h = self.cell(x, h, dt)
        if self.proj is not None:
            y = _linear(y, *self.proj)
        if self.head is not None:
            y = _linear(y, *self.head)
        state = np.concatenate([h, c], axis=1) if self.lstm else h
        return y.astype(np.float32, copy=False), state.astype(np.float32, copy=False)


class NumpyStep(_Streams):
    """A step model in numpy (`.npz` written by `export(..., format="numpy")`)."""

    def __init__(self, weights: dict, meta: dict):
        super().__init__(meta)
        self._run = _NumpyNet(weights, meta)


class NumpyWindow(_Window):
    """A whole-window model in numpy (`export(..., format="numpy", window=T)`)."""

    def __init__(self, weights: dict, meta: dict):
        super().__init__(meta)
        self._net = _NumpyNet(weights, meta)

    def _run_window(self, x, dt):
        state = np.zeros((x.shape[0], self.state_size), np.float32)
        for t in range(self.window):
            y, state = self._net(x[:, t], state, dt if dt.ndim == 0 else dt[:, t : t + 1])
        return y


def _session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxStep(_Streams):
    """A step model in onnxruntime (`.onnx` written by `export(..., format="onnx")`)."""

    def __init__(self, path: Path, meta: dict):
        super().__init__(meta)
        self.session = _session(path)
        self._batch = self._shape = self._dt_now = None
        # a layer's inputs need no preprocessing: its steps may take the lean path of `step`
        self._lean = self.readings is None and self.scaling is None

    def step(self, x, dt: float | np.ndarray = 1.0) -> np.ndarray:
        # What a device calls in its loop, kept lean for a layer's inputs as a float32
        # (B, input_size) array at the bound batch with one number for dt: the same checks
        # and the same run as the general path, in the fewest Python operations (a step of a
        # small model costs little more than them).
        if (
            self._lean
            and type(dt) is float
            and type(x) is np.ndarray
            and x.shape == self._shape  # None until the first step has bound the buffers
            and x.dtype == np.float32
            and self.state is self._h[self._cur]  # not after reset()
            and 0.0 <= dt < math.inf
            and np.isfinite(x).all()  # else the general path refuses it
        ):
            cur = self._cur
            self._x[...] = x
            if dt != self._dt_now:
                self._dt.fill(dt)
                self._dt_now = dt
            self.session.run_with_iobinding(self._io[cur])
            self._cur = 1 - cur
            self.state = self._h[1 - cur]
            return self._y.copy()
        return super().step(x, dt)

    def _bind(self, B: int) -> None:
        """Inputs and outputs bound once to fixed buffers (a run then skips onnxruntime's
        per-call conversions); two bindings swap the state buffers from step to step."""
        f32 = np.float32
        self._x, self._dt = np.zeros((B, self.input_size), f32), np.zeros((B, 1), f32)
        self._y = np.zeros((B, self.output_size), f32)
        self._h = [np.zeros((B, self.state_size), f32) for _ in range(2)]
        self._io = []
        for k in range(2):
            io = self.session.io_binding()
            io.bind_cpu_input("x", self._x)
            io.bind_cpu_input("dt", self._dt)
            io.bind_cpu_input("h", self._h[k])
            for name, out in (("y", self._y), ("h_next", self._h[1 - k])):
                io.bind_output(name, "cpu", 0, f32, out.shape, out.ctypes.data)
            self._io.append(io)
        self._batch, self._cur, self._shape = B, 0, (B, self.input_size)

    def _run(self, x, state, dt):
        if self._batch != x.shape[0]:
            self._bind(x.shape[0])
        cur = self._cur
        self._x[...] = x
        if dt.ndim:
            self._dt[...] = dt
            self._dt_now = None
        else:
            self._dt.fill(dt)
            self._dt_now = float(dt)
        if state is not self._h[cur]:
            self._h[cur][...] = state
        self.session.run_with_iobinding(self._io[cur])
        self._cur = 1 - cur
        return self._y.copy(), self._h[1 - cur]


class OnnxWindow(_Window):
    """A whole-window model in onnxruntime (`export(..., format="onnx", window=T)`)."""

    def __init__(self, path: Path, meta: dict):
        super().__init__(meta)
        self.session = _session(path)

    def _run_window(self, x, dt):
        dt = np.broadcast_to(dt, x.shape[:2]).astype(np.float32)
        return self.session.run(["y"], {"x": np.ascontiguousarray(x, np.float32), "dt": dt})[0]


def load(path) -> NumpyStep | OnnxStep | NumpyWindow | OnnxWindow:
    """The model at `path` (`.npz`: the numpy runtime; `.onnx`: onnxruntime), with its
    sidecar `<path>.json`: a step model (`step`, `reset`), or a whole-window model (`predict`)
    when it was exported with `window=T`."""
    path = Path(path)
    sidecar = path.with_name(path.name + ".json")
    if not sidecar.is_file():
        raise ValueError(f"{path}: no sidecar {sidecar.name} beside it")
    meta = json.loads(sidecar.read_text())
    if meta.get("format") != FORMAT or meta.get("format_version", 99) > VERSION:
        raise ValueError(f"{sidecar}: not a step model this runtime can read")
    window = meta.get("window") is not None
    if path.suffix == ".onnx":
        return (OnnxWindow if window else OnnxStep)(path, meta)
    with np.load(path, allow_pickle=False) as data:
        weights = {k: data[k] for k in data.files}
    for name in [k for k in weights if k.endswith(".__scale__")]:  # int8 weights, per row
        scale = weights.pop(name)
        key = name[: -len(".__scale__")]
        weights[key] = weights[key].astype(np.float32) * scale[:, None]
    return (NumpyWindow if window else NumpyStep)(weights, meta)

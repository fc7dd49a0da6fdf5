"""Export a liquid network as a *step model* for the edge: `(x, h, dt) -> (y, h_next)`, one
reading at a time, as an `.onnx` file (onnxruntime) or an `.npz` file (`liquidnets.runtime`,
numpy only), each with a JSON sidecar that says what a device needs: sizes, names, and for a
trained forecaster or classifier its input scaling, missing-value policy, time unit, targets
or classes.

The step is the unit of export, not a whole sequence: a sequence export would freeze its
length, while a step model streams any number of readings with any time steps. Where a model
only ever sees windows of one length (a classifier), `window=T` exports the whole window
instead, `(x (B, T, C), dt (B, T)) -> y`, from a zero state. The exported math is the readable
cells' (`liquidnets.cells`), checked against PyTorch by the tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from liquidnets.cells import CfCCell, LTCCell, WiredCfCCell
from liquidnets.cells.solvers import SemiImplicit, integrate
from liquidnets.io.atomic import distinct, dumps, new_file
from liquidnets.layers import LTC, CfC
from liquidnets.runtime import FORMAT, VERSION  # the reader's format, written here

OPSET = 17  # pinned: the ONNX operator set every exported file uses


class _DenseCfCStep(nn.Module):
    """A dense `CfCCell`'s step with its heads merged into one matrix `[f1 | f2 | t_a | t_b]`:
    the same math in fewer, larger operations (one Gemm per layer in ONNX)."""

    def __init__(self, cell: CfCCell):
        super().__init__()
        self.mode, self.H = cell.mode, cell.hidden_size
        # lecun_tanh = 1.7159 tanh(0.666 x): 0.666 goes into this layer's weights, 1.7159 into
        # the next layer's, leaving a plain tanh
        lecun = cell.backbone_activation == "lecun_tanh"
        inner, outer = (0.666, 1.7159) if lecun else (1.0, 1.0)
        self.activation = torch.tanh if lecun else cell.activation
        self.layers = len(cell.backbone)
        with torch.no_grad():  # buffers, so that ONNX keeps them as named initializers
            scale = 1.0  # of this layer's input
            for i, m in enumerate(cell.backbone):
                self.register_buffer(f"W{i}", (m.weight * inner).t().contiguous())
                self.register_buffer(f"b{i}", m.bias * inner)
                if i:  # the first layer reads [x; h], which nothing scaled
                    getattr(self, f"W{i}").mul_(outer)
                scale = outer
            heads = [cell.ff1]
            if cell.mode != "pure":
                heads += [cell.ff2, cell.time_a, cell.time_b]
            W = torch.cat([m.weight for m in heads]).t() * scale
            self.register_buffer("W", W.contiguous())
            self.register_buffer("b", torch.cat([m.bias for m in heads]))
            if cell.mode == "pure":
                self.register_buffer("w_tau", cell.w_tau.abs())
                self.register_buffer("A", cell.A.detach().clone())

    def forward(self, x, h, t):
        z = torch.cat([x, h], dim=1)
        for i in range(self.layers):
            z = self.activation(torch.addmm(getattr(self, f"b{i}"), z, getattr(self, f"W{i}")))
        heads, H = torch.addmm(self.b, z, self.W), self.H
        if self.mode == "pure":
            h = -self.A * torch.exp(-t * (self.w_tau + torch.abs(heads))) * heads + self.A
            return h, h
        ff, ta, tb = heads.split([2 * H, H, H], dim=1)
        f1, f2 = torch.tanh(ff).split([H, H], dim=1)
        gate = torch.sigmoid(ta * t + tb)
        h = f1 + gate * f2 if self.mode == "no_gate" else f1 + gate * (f2 - f1)
        return h, h


class _LTCStep(nn.Module):
    """An `LTCCell`'s step with its constants prepared once, in as few ONNX operations per
    unfold as the math allows (per-operation overhead, not arithmetic, bounds a small step):

    - constraints and masks applied, and the synapses' sigmoid in tanh form,
      `sigmoid(u) = (1 + tanh(u / 2)) / 2`, whose constant half is summed ahead;
    - the synapse matrices transposed to `(post, pre)`, so each unfold's sums run over the
      last axis;
    - the semi-implicit step divided through by `h`: `v' = (g v + a) / (g + b + eps)` with
      `g = cm / h` (`h` floored at 1e-30, so `dt = 0` leaves `v` as it is, to float
      precision), and the input's part of the denominator, `g + b_in + eps`, summed once per
      step."""

    def __init__(self, cell: LTCCell):
        super().__init__()
        self.cell = cell
        self.unfolds, self.solver = cell.ode_unfolds, cell.solver
        self.fused = isinstance(cell.solver, SemiImplicit)
        with torch.no_grad():
            pos = cell._positive
            w = pos(cell.w) * cell.sparsity_mask  # (pre, post)
            s_w = pos(cell.sensory_w) * cell.sensory_sparsity_mask
            buffers = {
                # (post, pre): row i holds the synapses onto neuron i
                "mu": cell.mu.t(),
                "half_sigma": 0.5 * cell.sigma.t(),
                "half_w": 0.5 * w.t(),
                "half_w_erev": (0.5 * w * cell.erev).t(),
                "a0": pos(cell.gleak) * cell.vleak + (0.5 * w * cell.erev).sum(dim=0),
                "b0": pos(cell.gleak) + (0.5 * w).sum(dim=0),
                "cm": pos(cell.cm),
                "s_w": s_w.t(),
                "s_w_erev": (s_w * cell.sensory_erev).t(),
                "s_mu": cell.sensory_mu.t(),
                "s_sigma": cell.sensory_sigma.t(),
            }
            for name, value in buffers.items():
                self.register_buffer(name, value.detach().contiguous().clone())

    def forward(self, x, v, t):
        cell = self.cell
        x = cell._map_inputs(x).unsqueeze(1)  # (B, 1, C)
        s = torch.sigmoid((x - self.s_mu) * self.s_sigma)  # (B, N, C)
        a_in = self.a0 + (s * self.s_w_erev).sum(dim=2)
        b_in = self.b0 + (s * self.s_w).sum(dim=2)

        def synapses(v):  # the sums of tanh((v_pre - mu) sigma / 2), weighted
            th = torch.tanh((v.unsqueeze(1) - self.mu) * self.half_sigma)  # (B, N, N)
            return (th * self.half_w_erev).sum(dim=2), (th * self.half_w).sum(dim=2)

        if not self.fused:

            def field(v):
                a, b = synapses(v)
                return a_in + a, b_in + b

            v = integrate(self.solver, field, v, self.cm, t, self.unfolds)
            return cell._map_outputs(v), v
        g = self.cm / torch.clamp(t / self.unfolds, min=1e-30)
        gb = g + (b_in + self.solver.epsilon)
        for _ in range(self.unfolds):
            a, b = synapses(v)
            v = (g * v + (a_in + a)) / (gb + b)
        return cell._map_outputs(v), v


class StepModule(nn.Module):
    """One step of a `CfC`/`LTC` layer (mixed memory and projection included), optionally
    followed by a head: `forward(x (B, C), h (B, S), dt (B, 1)) -> (y, h_next)`. With mixed
    memory the state is `[h | c]`, so every model has the same three inputs."""

    def __init__(self, layer: CfC | LTC, head: nn.Module | None = None):
        super().__init__()
        self.layer, self.head = layer, head
        self.cell_state = layer.state_size
        cell = layer.rnn_cell
        dense = isinstance(cell, CfCCell) and cell.sparsity_mask is None
        self.cell = (
            _DenseCfCStep(cell) if dense else _LTCStep(cell) if isinstance(cell, LTCCell) else cell
        )

    def forward(self, x, h, dt):
        layer = self.layer
        if layer.use_mixed:
            h, c = h[:, : self.cell_state], h[:, self.cell_state :]
            h, c = layer.lstm(x, (h, c))
        y, h = self.cell(x, h, dt)
        y = layer.fc(y)
        if self.head is not None:
            y = self.head(y)
        return y, (torch.cat([h, c], dim=1) if layer.use_mixed else h)


class WindowModule(nn.Module):
    """A whole window of `length` readings from a zero state, the step unrolled:
    `forward(x (B, T, C), dt (B, T)) -> y (B, out)`, the output after the last reading."""

    def __init__(self, step: StepModule, length: int, state_size: int):
        super().__init__()
        self.step, self.length, self.state_size = step, length, state_size

    def forward(self, x, dt):
        h = torch.zeros_like(x[:, 0, :1]).expand(-1, self.state_size)  # (B, S), B dynamic
        for t in range(self.length):
            y, h = self.step(x[:, t], h, dt[:, t : t + 1])
        return y


def _cell_config(cell) -> dict:
    if isinstance(cell, WiredCfCCell):
        motor = cell._motor_index
        return {
            "kind": "wired_cfc",
            "mode": cell.mode,
            "layer_sizes": list(cell.layer_sizes),
            "motor_index": None if motor is None else [int(i) for i in motor],
        }
    if isinstance(cell, CfCCell):
        return {
            "kind": "cfc",
            "mode": cell.mode,
            "activation": cell.backbone_activation,
            "backbone_layers": cell.backbone_layers,
        }
    if isinstance(cell, LTCCell):
        return {
            "kind": "ltc",
            "solver": cell.solver.name,
            "ode_unfolds": cell.ode_unfolds,
            "epsilon": float(cell._epsilon),
            "implicit_param_constraints": bool(cell._implicit_param_constraints),
            "input_mapping": cell._input_mapping,
            "output_mapping": cell._output_mapping,
            "motor": cell.motor_size,
        }
    raise TypeError(f"cannot export a {type(cell).__name__}")


_SERVES = "export serves forecasters and classifiers"


def _resolve(model):
    """(layer, head, task model or None) for a layer, a forecaster, a classifier, or a run or
    model folder of either."""
    from liquidnets.tasks import models as _models

    if isinstance(model, (str, Path)):
        from liquidnets.tasks import Classifier, Forecaster
        from liquidnets.tasks.run import RunError, load_run

        if (Path(model) / "model.safetensors").is_file():  # Forecaster.save, Classifier.save
            config = Path(model) / "config.json"
            task = json.loads(config.read_text()).get("task") if config.is_file() else None
            if task not in ("forecast", "classify"):
                raise RunError(f"{model}: a model of task {task!r}; {_SERVES}")
            model = (Forecaster if task == "forecast" else Classifier).load(model)
        else:
            settings, models = load_run(model)
            if settings["task"] not in ("forecast", "classify"):
                raise RunError(f"{model}: a run of task {settings['task']!r}; {_SERVES}")
            model = models[settings["model"]]
    if isinstance(model, (CfC, LTC)):
        return model, None, None
    net = getattr(model, "net", None)
    if isinstance(net, _models.FromLastValue):  # a forecaster's network
        if net.windowed:
            raise ValueError(
                "export: this forecaster reads its whole window (a seasonal base or the linear "
                "map of its target history), which a step model cannot carry yet; train it "
                "with base='last' and linear=False (liquidnets train --base last --no-linear)"
            )
        net = net.net
    pooled = isinstance(net, _models.LiquidNet) and net.pool != ("last",)
    several = isinstance(net, (_models.Ensemble, _models.Stemmed))
    if pooled or getattr(model, "downsample", 1) > 1 or several:
        raise ValueError(
            "export: this classifier pools its outputs over time, reads patches of rows "
            "(through convolutions) or averages several members (the defaults of "
            "per='series'), which a step model cannot carry yet; train it with pool='last', "
            "max_steps=None, stem=None and ensemble=1"
        )
    if isinstance(net, _models.LiquidNet):
        return net.rnn, net.head, model
    raise TypeError(
        "export takes a CfC or LTC layer, or a liquid Forecaster or Classifier (or a run or "
        f"model folder of one); got {type(model).__name__}"
        + (f" ({model.model})" if isinstance(getattr(model, "model", None), str) else "")
    )


def _meta(layer, head, task, window: int | None) -> dict:
    cell_state = layer.state_size
    out = layer.out_features if head is None else head.out_features
    state_size = 2 * cell_state if layer.use_mixed else cell_state
    meta = {
        "format": FORMAT,
        "format_version": VERSION,
        "window": window,
        "inputs": {"x": "(B, input_size)", "h": "(B, state_size)", "dt": "(B, 1)"},
        "outputs": {"y": "(B, output_size)", "h_next": "(B, state_size)"},
        "input_size": layer.input_size,
        "state_size": state_size,
        "cell_state_size": cell_state,
        "output_size": out,
        "mixed_memory": bool(layer.use_mixed),
        "cell": _cell_config(layer.rnn_cell),
        "opset": OPSET,
        "task": None,
    }
    if window is not None:
        meta["inputs"] = {"x": f"(B, {window}, input_size)", "dt": f"(B, {window})"}
        meta["outputs"] = {"y": "(B, output_size)"}
    if task is not None:
        spec = task.spec
        meta.update(
            task="classify" if hasattr(task, "classes") else "forecast",
            lookback=task.lookback,
            features=list(spec["columns"]),
            missing=spec["missing"],
            time_unit=spec["time_unit"],
            # dt is counted in time_unit: for timestamps, this many seconds (None for a time
            # column of plain numbers, whose unit is a number, or for row order)
            time_unit_seconds=_seconds(spec["time_unit"]),
            scaling={"mean": task.scaler.mean.tolist(), "std": task.scaler.std.tolist()},
        )
        if meta["task"] == "classify":
            meta["classes"] = list(task.classes)
        else:
            meta.update(
                targets=list(spec["targets"]),
                target_index=[spec["columns"].index(t) for t in spec["targets"]],
                horizon=task.horizon,
            )
    return meta


def _seconds(unit) -> float | None:
    if not isinstance(unit, str):
        return None
    import pandas as pd

    return float(pd.Timedelta(unit).total_seconds())


def _weights(layer, head) -> dict[str, np.ndarray]:
    out = {}
    for name, value in layer.rnn_cell.state_dict().items():
        out[f"cell.{name}"] = value
    if layer.use_mixed:
        for name, value in layer.lstm.state_dict().items():
            out[f"lstm.{name}"] = value
    if isinstance(layer.fc, nn.Linear):
        out["proj.weight"], out["proj.bias"] = layer.fc.weight, layer.fc.bias
    if head is not None:
        out["head.weight"], out["head.bias"] = head.weight, head.bias
    return {k: v.detach().to("cpu", torch.float32).numpy() for k, v in out.items()}


def _int8_rows(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`w (rows, cols)` as int8 with one float32 scale per row (max |w| / 127 of the row)."""
    scale = np.abs(w).max(axis=1) / 127.0
    scale[scale == 0] = 1.0
    q = np.clip(np.rint(w / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale.astype(np.float32)


def _quantize(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Weight-only int8: every matrix of at least 256 entries becomes int8 with one float32
    scale per row (`<name>.__scale__`); the rest stays float32."""
    out = {}
    for name, w in weights.items():
        if w.ndim == 2 and w.size >= 256 and "mask" not in name:
            out[name], out[f"{name}.__scale__"] = _int8_rows(w)
        else:
            out[name] = w
    return out


def export(
    model,
    path,
    *,
    format: str | None = None,
    quantize: str | None = None,
    window: int | bool | None = None,
    overwrite: bool = True,
) -> Path:
    """Write the step model of `model` to `path`, and its sidecar to `<path>.json`.

    Args:
        model: a `CfC` or `LTC` layer (any wiring, mode, solver, mixed memory, projection), a
            liquid `Forecaster` or `Classifier`, a forecast or classification run folder (its
            main model) or a model folder saved by `Forecaster.save` or `Classifier.save`.
        path: the file to write: `.onnx` or `.npz`.
        format: `onnx` or `numpy`; by default from the suffix.
        quantize: None (float32) or `int8`: weight-only int8, one scale per row of every
            matrix (dequantised when loaded: numpy's `__scale__` arrays, ONNX's
            `DequantizeLinear`); the arithmetic stays float32, so the state is never rounded.
        window: None (a step model), or export a whole window of this many readings from a
            zero state, `(x (B, T, C), dt (B, T)) -> y`; `True` takes a forecaster's or
            classifier's lookback.
        overwrite: replace existing files (both are written beside their place and renamed).

    Returns:
        `path`.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"--out {path} is a folder; give the file to write")
    suffixes = {"onnx": ".onnx", "numpy": ".npz"}
    format = format or {v: k for k, v in suffixes.items()}.get(path.suffix)
    if format not in suffixes:
        raise ValueError(f"{path}: say format='onnx' or 'numpy' (or use .onnx / .npz)")
    if path.suffix != suffixes[format]:  # loaders go by the name: an ONNX file named .npz fails
        raise ValueError(
            f"{path}: a {format} export is named *{suffixes[format]}; got {path.suffix or 'none'}"
        )
    if isinstance(model, (str, Path)):
        distinct({"--out": path, "its sidecar": path.with_name(path.name + ".json")},
                 {"the model folder": model}, inside=False)  # fmt: skip
    sidecar = path.with_name(path.name + ".json")
    if not overwrite and (path.exists() or sidecar.exists()):
        raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
    if (path.exists() or sidecar.exists()) and not _is_export(sidecar):
        raise ValueError(
            f"{path} exists and is not a liquidnets export (no sidecar {sidecar.name} of one); "
            "--overwrite replaces only that, so choose another name"
        )
    if quantize not in (None, "int8"):
        raise ValueError(f"quantize must be None or 'int8'; got {quantize!r}")
    layer, head, task = _resolve(model)
    if window is True:
        if task is None:
            raise ValueError("window=True takes a forecaster's or classifier's lookback; "
                             "for a layer, give the window's length")  # fmt: skip
        if getattr(task, "whole", False):
            raise ValueError("window=True: a classifier of whole series has no lookback; "
                             "give the window's length")  # fmt: skip
        window = task.lookback
    if window is not None and (isinstance(window, bool) or int(window) != window or window < 1):
        raise ValueError(f"window must be a positive number of readings; got {window!r}")
    window = None if window is None else int(window)
    meta = {**_meta(layer, head, task, window), "quantized": quantize}
    with new_file(path) as tmp:
        if format == "numpy":
            weights = _weights(layer, head)
            with open(tmp, "wb") as f:
                np.savez(f, **(_quantize(weights) if quantize else weights))
        else:
            _onnx(layer, head, meta, tmp)
            if quantize:
                _onnx_int8_weights(tmp)
    with new_file(sidecar) as tmp:
        tmp.write_text(dumps(meta) + "\n")
    return path


def _is_export(sidecar: Path) -> bool:
    try:
        return json.loads(sidecar.read_text(encoding="utf-8")).get("format") == FORMAT
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return False


def _onnx(layer, head, meta: dict, target: Path) -> None:
    import warnings

    from liquidnets import fast

    step = StepModule(layer, head).eval()
    B, T = 2, meta["window"]  # a batch of 2 traces the batched branches; the batch axis is dynamic
    if T is None:
        module, names = step, (["x", "h", "dt"], ["y", "h_next"])
        args = (
            torch.zeros(B, meta["input_size"]),
            torch.zeros(B, meta["state_size"]),
            torch.ones(B, 1),
        )
    else:
        module, names = WindowModule(step, T, meta["state_size"]), (["x", "dt"], ["y"])
        args = (torch.zeros(B, T, meta["input_size"]), torch.ones(B, T))
    with fast.disabled(), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python branches
        torch.onnx.export(
            module,
            args,
            str(target),
            dynamo=False,
            opset_version=OPSET,
            input_names=names[0],
            output_names=names[1],
            dynamic_axes={name: {0: "batch"} for name in names[0] + names[1]},
        )


def _onnx_int8_weights(path: Path) -> None:
    """Rewrite the ONNX file at `path` with weight-only int8: each float matrix initializer of
    at least 256 entries becomes int8 with a scale per row, and a `DequantizeLinear` node gives
    the float matrix back to the nodes that read it."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    keep, nodes = [], []
    for init in graph.initializer:
        w = numpy_helper.to_array(init)
        if w.dtype != np.float32 or w.ndim != 2 or w.size < 256:
            keep.append(init)
            continue
        q, scale = _int8_rows(w)
        name = init.name
        keep += [
            numpy_helper.from_array(q, f"{name}__int8"),
            numpy_helper.from_array(scale, f"{name}__scale"),
            numpy_helper.from_array(np.zeros(len(scale), np.int8), f"{name}__zero"),
        ]
        nodes.append(
            helper.make_node(
                "DequantizeLinear",
                [f"{name}__int8", f"{name}__scale", f"{name}__zero"],
                [name],
                axis=0,
                name=f"{name}__dequantize",
            )
        )
    del graph.initializer[:]
    graph.initializer.extend(keep)
    rest = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + rest)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))

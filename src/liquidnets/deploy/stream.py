"""Streaming forecasts from a saved model, one reading at a time, for many streams at once,
learning online as the truth arrives.

    >>> import numpy as np, pandas as pd
    >>> from liquidnets.tasks import Forecaster
    >>> t = np.arange(200)
    >>> frame = pd.DataFrame({"t": t, "temp": np.sin(t / 8)})
    >>> model = Forecaster("cfc", lookback=16, horizon=2, units=8, train={"max_epochs": 1})
    >>> model = model.fit(frame, targets="temp", time="t")
    >>> live = StreamPredictor(model, adapt="every:10")
    >>> step = live.update({"temp": 0.5}, timestamp=200)
    >>> step.forecast.shape  # the next 2 steps of 1 target, in the data's units
    (2, 1)
    >>> [
    ...     live.update({"temp": float(np.sin(k / 8))}, timestamp=k).error is not None
    ...     for k in (201, 202)
    ... ]  # each reading scores the forecast made one step before
    [True, True]

Each stream keeps its recurrent state, so a reading costs one step of the network, not a whole
window. The elapsed time comes from the timestamps, so readings may arrive irregularly; a
missing value follows the model's missing-value policy.
"""

from __future__ import annotations

import copy
import json
import math
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from liquidnets.data import DataError
from liquidnets.data.table import MASK_SUFFIX
from liquidnets.deploy import adapt as _adapt
from liquidnets.deploy.drift import detector_from_state, make_detector
from liquidnets.io import hand_edits
from liquidnets.io.atomic import Kind, claim, dumps
from liquidnets.tasks import models as _models
from liquidnets.tasks.forecast import Forecaster

FORMAT = "liquidnets-stream"
VERSION = 1
SNAPSHOT = Kind(
    "stream snapshot",
    "stream.json",
    frozenset({"model", "stream.st", "stream.json", "frozen"}),
    lambda meta: meta.get("format") == FORMAT,
)


@dataclass
class Step:
    """What one reading of one stream gave.

    Args:
        stream: the stream's id.
        time: the reading's timestamp, as given.
        forecast: `(horizon, n_targets)` the forecast of the next `horizon` readings, in the
            data's units. A reading dropped by `missing="drop"` moves nothing: the forecast
            still standing is given again (None before the stream's first).
        error: `(n_targets,)` this reading's targets minus the forecast made one reading
            before (None for a stream's first reading, or a missing target).
        drift: a drift was detected at this reading.
        update: the online update made right after this call's readings: `applied`,
            `rolled_back`, `reverted`, `skipped`, or None when there was none.
    """

    stream: str
    time: object
    forecast: np.ndarray | None
    error: np.ndarray | None = None
    drift: bool = False
    update: str | None = None


@dataclass
class _Stream:
    state: object = None  # the network's recurrent state, batch of 1 row (or a pair)
    last_time: float | int | None = None  # numbers, or nanoseconds for timestamps
    filled: np.ndarray | None = None  # the last value of every data column (forward fill)
    rows: deque = field(default_factory=deque)  # scaled input rows, newest last
    dts: deque = field(default_factory=deque)
    seen: deque = field(default_factory=deque)  # whether each row's targets were observed
    pending: deque = field(default_factory=deque)  # scaled forecasts made, newest last
    feats: deque = field(default_factory=deque)  # the head's input at each row but the newest
    offs: deque = field(default_factory=deque)  # a windowed net's offset at those rows


class _Stepper:
    """One step of a task network (`FromLastValue` over a liquid or recurrent net) with a
    carried state: `(x (B, C), dt (B,) or a number, state) -> (out (B, horizon * n_targets),
    state, feature)`, the feature being the head's input."""

    def __init__(self, net: torch.nn.Module):
        if not isinstance(net, _models.FromLastValue):
            raise ValueError(
                "streaming needs a trained network; naive and seasonal_naive keep no state"
            )
        self.net = net
        self.inner = net.net

    def zeros(self, batch: int):
        inner = self.inner
        if isinstance(inner, _models.LiquidNet):
            return inner.rnn.init_state(batch)
        hidden = inner.rnn.hidden_size
        h = torch.zeros(batch, hidden)
        return (h, torch.zeros(batch, hidden)) if isinstance(inner.rnn, torch.nn.LSTM) else h

    def __call__(self, x: Tensor, dt: Tensor | float, state, window: Tensor | None = None):
        """`window (B, lookback, C)`: the recent rows, newest last, for a net whose offset
        reads the window (a seasonal base or the linear map; `FromLastValue.windowed`)."""
        inner = self.inner
        if isinstance(inner, _models.LiquidNet):
            rnn = inner.rnn
            fused = rnn._fused()
            if fused is None:
                y, state = rnn.step(x, state, dt)
            else:  # the layer's own fused step, without its per-call argument checks
                y, state = fused.step(rnn.rnn_cell, x, state, dt)
                if rnn.proj_size is not None:
                    y = rnn.fc(y)
        else:
            dt = dt if isinstance(dt, Tensor) else torch.full((x.shape[0],), dt)
            inp = torch.cat([x, dt.unsqueeze(-1)], dim=-1).unsqueeze(1)  # (B, 1, C + 1)
            if isinstance(state, tuple):
                out, (h, c) = inner.rnn(inp, (state[0].unsqueeze(0), state[1].unsqueeze(0)))
                state = (h[0], c[0])
            else:
                out, h = inner.rnn(inp, state.unsqueeze(0))
                state = h[0]
            y = out[:, -1]
        if self.net.windowed:
            last = self.net.offset(window)
        else:
            last = x[:, self.net.target_index]
            if self.net.horizon > 1:
                last = last.repeat(1, self.net.horizon)
        self.offset = last
        return inner.head(y) + last, state, y


def _stack(states: list):
    if isinstance(states[0], tuple):
        return tuple(torch.stack(parts) for parts in zip(*states))
    return torch.stack(states)


def _row(state, i: int):
    if isinstance(state, tuple):
        return tuple(s[i].clone() for s in state)
    return state[i].clone()


class StreamPredictor:
    """A fitted `Forecaster` serving live readings, with online learning.

    Args:
        model: the fitted forecaster (`Forecaster.load(...)`, or from a run folder with
            `from_run`); the predictor adapts a copy of it (`predictor.model`).
        adapt: `off`, `every:N`, `drift`, `drift:N`, or an `AdaptConfig`.
        **adapt_fields: fields of `AdaptConfig` (params, lr, steps, detector, ...).
    """

    def __init__(self, model: Forecaster, adapt="off", **adapt_fields):
        if model.net is None:
            raise ValueError("the forecaster is not fitted")
        ahead = [*model.spec.get("futr_exog", []), *model.spec.get("calendar", [])]
        if ahead:
            raise ValueError(
                f"the model reads future covariates ({', '.join(ahead)}), which a stream of "
                "readings does not carry; train without --future and --calendar to stream"
            )
        self.model = model = copy.deepcopy(model)  # online updates never touch the caller's
        self.config = _adapt.AdaptConfig.parse(adapt, **adapt_fields)
        self.stepper = _Stepper(model.net)
        self._zeros = _row(self.stepper.zeros(1), 0)
        self.learner = None
        if self.config.policy != "off":
            # fails early when the model has no such parameters
            self.learner = _adapt.Learner(model.net, self.config, window=model.lookback)
        spec = model.spec
        self.columns = list(spec["columns"])
        self.data_columns = [c for c in self.columns if not c.endswith(MASK_SUFFIX)]
        self.mask_of = {
            self.data_columns.index(c[: -len(MASK_SUFFIX)]): j
            for j, c in enumerate(self.columns)
            if c.endswith(MASK_SUFFIX)
        }
        self.target_index = [self.columns.index(t) for t in spec["targets"]]
        self.targets = list(spec["targets"])
        self.lookback, self.horizon = model.lookback, model.horizon
        self.time_kind, self.time_scale = _time_kind(spec)
        self.streams: dict[str, _Stream] = {}
        self.buffer = _adapt.ReplayBuffer(self.config.buffer)
        self.detector = make_detector(self.config.detector, **self.config.detector_params)
        self.readings = 0  # readings taken, all streams
        self.since_update = 0
        self.recovery_until = 0  # the drift policy adapts while readings < this
        self.drift_at = 0  # reading count at the last detected drift
        self.events: list[dict] = []  # drifts and updates, in order
        model.net.eval()

    @classmethod
    def from_run(cls, run_dir, model: str | None = None, adapt="off", **adapt_fields):
        """The forecaster of a run folder (`liquidnets train`): its main model, or the one
        named `model` (a baseline such as `lstm`)."""
        from liquidnets.tasks.run import RunError, load_run

        settings, models = load_run(run_dir)
        if settings["task"] != "forecast":
            raise RunError(f"{run_dir}: a {settings['task']} run; streaming serves forecasts")
        name = model or settings["model"]
        if name not in models:
            raise RunError(f"{run_dir}: no model {name!r}; it has {', '.join(models)}")
        return cls(models[name], adapt=adapt, **adapt_fields)

    # -- readings ------------------------------------------------------------------------
    def _vector(self, readings, stream: str) -> np.ndarray:
        """The readings of the data columns as float64, NaN where missing."""
        cols = self.data_columns
        if isinstance(readings, dict):
            unknown = [k for k in readings if k not in cols]
            absent = [c for c in cols if c not in readings]
            if unknown or absent:
                raise DataError(
                    f"stream {stream!r}: readings must have the columns {cols}; "
                    + (f"unknown {unknown}" if unknown else f"missing {absent}")
                )
            values = [readings[c] for c in cols]
        else:
            values = list(np.asarray(readings, dtype=object).reshape(-1))
            if len(values) != len(cols):
                raise DataError(
                    f"stream {stream!r}: expected {len(cols)} readings ({', '.join(cols)}); "
                    f"got {len(values)}"
                )
        out = np.empty(len(cols))
        for j, v in enumerate(values):
            try:
                out[j] = np.nan if v is None else float(v)
            except (TypeError, ValueError):
                raise DataError(
                    f"stream {stream!r}: column {cols[j]!r}: {v!r} is not a number"
                ) from None
            if np.isinf(out[j]):
                raise DataError(f"stream {stream!r}: column {cols[j]!r}: {v!r} is infinite")
        return out

    def _elapsed(self, s: _Stream, timestamp, stream: str) -> tuple[float, object]:
        """(dt in the model's time unit, the time to remember)."""
        if self.time_kind == "none":
            return 1.0, None
        if timestamp is None:
            raise DataError(f"stream {stream!r}: the model reads time, so give a timestamp")
        now = _as_time(timestamp, self.time_kind, stream)
        if s.last_time is None:
            return 1.0, now
        if now <= s.last_time:
            raise DataError(
                f"stream {stream!r}: timestamp {timestamp!r} is not after the previous reading's"
            )
        return float(now - s.last_time) / self.time_scale, now

    def update(self, readings, timestamp=None, *, stream: str = "0") -> Step:
        """Take one reading of one stream: score the past forecast, step the network, learn
        if the policy says so, and return the forecast of the next `horizon` readings.

        Args:
            readings: `{column: value}` for every input column of the model (None or NaN:
                missing), or the values in `data_columns` order.
            timestamp: when it was read (a number, or a timestamp string/datetime, as the
                model's time column); needed when the model reads time.
            stream: the stream's id; each id keeps its own state.
        """
        return self.update_many([stream], [readings], [timestamp])[0]

    def update_many(self, streams, readings, timestamps=None) -> list[Step]:
        """Take one reading from each of several streams, in one batched network step.
        `streams`: ids (each at most once); `readings`, `timestamps`: one per stream."""
        streams = [str(s) for s in streams]
        if len(set(streams)) != len(streams):
            raise ValueError("update_many: each stream at most once per call")
        timestamps = [None] * len(streams) if timestamps is None else list(timestamps)
        if not (len(readings) == len(timestamps) == len(streams)):
            raise ValueError("update_many: one reading and one timestamp per stream")
        steps, live = [], []
        prepared = []
        for sid, reading, ts in zip(streams, readings, timestamps):
            s = self.streams.get(sid) or _Stream()
            raw = self._vector(reading, sid)
            self._check_missing(raw, sid)
            dt, now = self._elapsed(s, ts, sid)
            prepared.append((sid, s, raw, dt, now, ts))
        drift = False
        for sid, s, raw, dt, now, ts in prepared:  # nothing is changed before all are valid
            self.streams[sid] = s
            step = Step(sid, ts, None)
            steps.append(step)
            row, observed = self._fill(s, raw)
            if row is None:  # dropped: no step; the next dt spans the gap
                step.forecast = self._unscale(s.pending[-1]) if s.pending else None
                continue
            s.last_time = now
            self.readings += 1
            self.since_update += 1
            if s.pending and observed:
                err = row[self.target_index] - s.pending[-1][0]  # (n_targets,) scaled
                step.error = self._unscale_delta(err)
                if self.detector.update(float(np.mean(np.abs(err)))):
                    step.drift = drift = True
                    self.drift_at = self.readings
                    self.events.append({"reading": self.readings, "event": "drift", "stream": sid})
            self._remember(s, row, dt, observed)
            live.append((step, s, row, dt))
        if live:
            self._forward(live)
        if drift and self.config.policy == "drift":
            self.buffer.drop_before(self.drift_at)
            self.recovery_until = self.drift_at + self.config.recovery
            self.since_update = 0
        result = self._maybe_update()
        if result is not None:
            for step in steps:
                step.update = result
        return steps

    def _check_missing(self, raw: np.ndarray, sid: str) -> None:
        gaps = np.isnan(raw)
        if gaps.any() and self.model.spec["missing"] == "error":
            col = self.data_columns[int(np.flatnonzero(gaps)[0])]
            raise DataError(
                f"stream {sid!r}: column {col!r} is missing; the model was trained with "
                "missing='error' (choose mask, interpolate or drop when training)"
            )

    def _fill(self, s: _Stream, raw: np.ndarray):
        """The scaled model row for `raw` under the missing-value policy, and whether all its
        targets were observed; (None, False) when the policy drops the reading."""
        gaps = np.isnan(raw)
        if gaps.any() and self.model.spec["missing"] == "drop":
            return None, False
        # mask and interpolate hold the last value online (interpolating would need the future)
        mean = self.model.scaler.mean[: len(self.data_columns)]
        held = s.filled if s.filled is not None else mean
        filled = np.where(gaps, held, raw)
        s.filled = filled
        values = np.zeros(len(self.columns))
        values[: len(self.data_columns)] = filled
        for j, m in self.mask_of.items():
            values[m] = float(gaps[j])
        row = self.model.scaler.transform(values[None])[0].astype(np.float32)
        observed = not gaps[[self.data_columns.index(t) for t in self.targets]].any()
        return row, observed

    def _remember(self, s: _Stream, row, dt: float, observed: bool) -> None:
        """Keep the row; a window whose targets have now all arrived goes to the buffer."""
        size = self.lookback + self.horizon
        for q, v in ((s.rows, row), (s.dts, dt), (s.seen, observed)):
            q.append(v)
            while len(q) > size:
                q.popleft()
        if self.learner is None:
            return  # windows feed only the online updates
        if len(s.rows) == size and all(list(s.seen)[self.lookback :]):
            end = self.lookback - 1  # the window's last input row
            targets = [s.rows[k][self.target_index] for k in range(self.lookback, len(s.rows))]
            whole = not self.learner.head_only  # head-only updates need no input windows
            self.buffer.add(
                x=np.stack(list(s.rows)[: self.lookback]) if whole else None,
                dt=np.asarray(list(s.dts)[: self.lookback], np.float32) if whole else None,
                y=np.concatenate(targets),  # step-major
                step=self.readings,
                feature=s.feats[end],
                last=s.offs[end]
                if s.offs
                else np.tile(s.rows[end][self.target_index], self.horizon),
            )

    def _forward(self, live: list) -> None:
        x = torch.from_numpy(np.stack([row for _, _, row, _ in live]))
        dts = [dt for *_, dt in live]
        # one number when all streams share it: the kernels' cheaper constant-timespan path
        dt = dts[0] if len(set(dts)) == 1 else torch.tensor(dts, dtype=torch.float32)
        zeros = self._zeros
        state = _stack([s.state if s.state is not None else zeros for _, s, _, _ in live])
        window = None
        if self.stepper.net.windowed:  # the recent rows; a young stream repeats its first
            rows = [list(s.rows)[-self.lookback :] for _, s, _, _ in live]
            rows = [[r[0]] * (self.lookback - len(r)) + r for r in rows]
            window = torch.from_numpy(np.stack([np.stack(r) for r in rows]))
        with torch.no_grad():
            out, state, feature = self.stepper(x, dt, state, window)
        offset = self.stepper.offset.numpy() if window is not None else None
        out = out.numpy().reshape(len(live), self.horizon, len(self.targets))
        feature = feature.numpy()
        for i, (step, s, _, _) in enumerate(live):
            s.state = _row(state, i)
            keep = self.lookback + self.horizon - 1
            queues = [(s.pending, out[i], self.horizon), (s.feats, feature[i], keep)]
            if offset is not None:
                queues.append((s.offs, offset[i], keep))
            for q, value, size in queues:
                q.append(value)
                while len(q) > size:
                    q.popleft()
            step.forecast = self._unscale(out[i])

    def _maybe_update(self) -> str | None:
        c = self.config
        if c.policy == "off" or self.since_update < c.every:
            return None
        if c.policy == "drift" and self.readings > self.recovery_until:
            return None
        if len(self.buffer) < c.min_windows:
            return None
        self.since_update = 0
        report = self.learner.update(self.buffer)
        self.model.net.eval()
        self.events.append({"reading": self.readings, "event": "update", **report})
        return report["result"] if report["result"] != "too_few" else None

    # -- units -----------------------------------------------------------------------------
    def _unscale(self, y: np.ndarray) -> np.ndarray:
        return self.model.scaler.inverse(y.astype(np.float64), index=self.target_index)

    def _unscale_delta(self, d: np.ndarray) -> np.ndarray:
        return d.astype(np.float64) * self.model.scaler.std[self.target_index]

    def reset(self, stream: str | None = None) -> None:
        """Forget one stream's state and history (or every stream's); weights stay."""
        if stream is None:
            self.streams.clear()
        else:
            self.streams.pop(str(stream), None)

    # -- snapshots ---------------------------------------------------------------------------
    def save(self, path, *, overwrite: bool = True, frozen: StreamPredictor | None = None):
        """Snapshot everything to the folder `path`, atomically (written beside it, then
        swapped in): the current weights (`model/`, a model bundle), every stream's state and
        recent rows, the replay buffer, the detector and the counters. An earlier snapshot
        there is replaced (unless `overwrite=False`); any other folder is refused (see
        `liquidnets.io.atomic.claim`). `frozen`: a second predictor saved with it, in
        `frozen/` (the non-adapting twin a replay compares against). Returns `path`."""
        path = Path(path)
        with claim(path, SNAPSHOT, overwrite=overwrite) as tmp:
            self._write(tmp)
            if frozen is not None:
                frozen._write(tmp / "frozen")
        return path

    def _write(self, folder: Path) -> None:
        from safetensors.numpy import save_file

        folder.mkdir(parents=True, exist_ok=True)
        tensors: dict[str, np.ndarray] = {}
        streams = []
        for k, (sid, s) in enumerate(self.streams.items()):
            if s.state is not None:
                parts = s.state if isinstance(s.state, tuple) else (s.state,)
                for j, part in enumerate(parts):
                    tensors[f"s{k}.state{j}"] = part.numpy()
            if s.rows:
                tensors[f"s{k}.rows"] = np.stack(s.rows)
            if s.pending:
                tensors[f"s{k}.pending"] = np.stack(s.pending)
            if s.feats:
                tensors[f"s{k}.feats"] = np.stack(s.feats)
            if s.offs:
                tensors[f"s{k}.offs"] = np.stack(s.offs)
            if s.filled is not None:
                tensors[f"s{k}.filled"] = s.filled
            streams.append(
                {
                    "id": sid,
                    "last_time": s.last_time,
                    "dts": list(s.dts),
                    "seen": list(s.seen),
                    "state_parts": 0
                    if s.state is None
                    else len(s.state)
                    if isinstance(s.state, tuple)
                    else 1,
                }
            )
        for key, value in self.buffer.arrays().items():
            tensors[f"buffer.{key}"] = value
        learner = None
        if self.learner is not None:
            arrays, learner = self.learner.state()
            tensors.update(arrays)
        meta = {
            "format": FORMAT,
            "format_version": VERSION,
            "adapt": self.config.to_dict(),
            "streams": streams,
            "detector": self.detector.state(),
            "learner": learner,
            "readings": self.readings,
            "since_update": self.since_update,
            "recovery_until": self.recovery_until,
            "drift_at": self.drift_at,
            "events": self.events,
        }
        self.model.save(folder / "model")
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, folder / "stream.st")
        (folder / "stream.json").write_text(dumps(meta, indent=1) + "\n")

    @classmethod
    @hand_edits
    def load(cls, path) -> StreamPredictor:
        """A predictor restored from `save`: it continues exactly where the snapshot was."""
        from safetensors.numpy import load_file

        path = Path(path)
        meta_file = path / "stream.json"
        if not meta_file.is_file():
            raise ValueError(f"{path}: not a stream snapshot (no stream.json)")
        try:
            meta = json.loads(meta_file.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{meta_file}: not valid JSON ({exc})") from None
        if meta.get("format") != FORMAT or meta.get("format_version", 99) > VERSION:
            raise ValueError(f"{meta_file}: not a stream snapshot this version can read")
        tensors = load_file(path / "stream.st")
        self = cls(Forecaster.load(path / "model"), adapt=_adapt.AdaptConfig(**meta["adapt"]))
        for k, info in enumerate(meta["streams"]):
            s = _Stream()
            parts = [torch.as_tensor(tensors[f"s{k}.state{j}"]) for j in range(info["state_parts"])]
            s.state = None if not parts else parts[0] if len(parts) == 1 else tuple(parts)
            s.last_time = info["last_time"]
            s.filled = tensors.get(f"s{k}.filled")
            s.rows = deque(tensors.get(f"s{k}.rows", ()))
            s.pending = deque(tensors.get(f"s{k}.pending", ()))
            s.feats = deque(tensors.get(f"s{k}.feats", ()))
            s.offs = deque(tensors.get(f"s{k}.offs", ()))
            s.dts, s.seen = deque(info["dts"]), deque(info["seen"])
            self.streams[info["id"]] = s
        buffer = {k[len("buffer.") :]: v for k, v in tensors.items() if k.startswith("buffer.")}
        self.buffer = _adapt.ReplayBuffer.from_arrays(self.config.buffer, buffer)
        self.detector = detector_from_state(meta["detector"])
        if self.learner is not None:
            self.learner.load_state(tensors, meta["learner"])
        for key in ("readings", "since_update", "recovery_until", "drift_at", "events"):
            setattr(self, key, meta[key])
        return self


def _time_kind(spec: dict) -> tuple[str, float]:
    """(`none`, `number` or `timestamp`, the time unit: a number, or nanoseconds)."""
    if not spec.get("time"):
        return "none", 1.0
    unit = spec["time_unit"]
    if isinstance(unit, str):
        import pandas as pd

        return "timestamp", float(pd.Timedelta(unit).value)
    return "number", float(unit)


def _as_time(value, kind: str, stream: str):
    if kind == "number":
        try:
            t = float(value)
        except (TypeError, ValueError):
            t = math.nan
        if not math.isfinite(t):
            raise DataError(f"stream {stream!r}: timestamp {value!r} is not a finite number")
        return t
    import pandas as pd

    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        stamp = None
    if stamp is None or stamp is pd.NaT or isinstance(value, (int, float)):
        raise DataError(f"stream {stream!r}: timestamp {value!r} is not a date and time")
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return int(stamp.value)

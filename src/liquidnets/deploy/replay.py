"""Replay a file of readings as a live stream through a run's forecaster: the `liquidnets
stream` command.

Every reading goes through `StreamPredictor.update` in time order (readings of several series
at the same time in one batched step). With adaptation on, a frozen copy of the model runs
beside the adaptive one on the same readings, so that each detected drift can be judged: the
error of both before it and after it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from liquidnets.data.table import MASK_SUFFIX
from liquidnets.deploy.stream import SNAPSHOT, StreamPredictor
from liquidnets.io.atomic import distinct, new_file
from liquidnets.tasks._common import load_like
from liquidnets.tasks.metrics import format_table
from liquidnets.tasks.run import RunError


def _raw_readings(series, data_columns: list[str]) -> list[np.ndarray]:
    """Each series' data columns with NaN where the file had a gap (the mask columns that
    `missing="mask"` loading adds say where)."""
    out = []
    for values in series.values:
        raw = np.full((len(values), len(data_columns)), np.nan)
        for j, c in enumerate(data_columns):
            raw[:, j] = values[:, series.columns.index(c)]
            mask = c + MASK_SUFFIX
            if mask in series.columns:
                raw[values[:, series.columns.index(mask)] > 0.5, j] = np.nan
        out.append(raw)
    return out


def replay(
    run_dir,
    data,
    out,
    *,
    adapt="off",
    model: str | None = None,
    overwrite: bool = False,
    window: int = 200,
    snapshot=None,
    snapshot_every: int | None = None,
    **adapt_fields,
) -> dict:
    """Stream `data` (a file or DataFrame with the run's columns) through the run's model.

    Args:
        run_dir: a forecast run folder (`liquidnets train`).
        data: the readings to replay, as a path or a DataFrame.
        out: the CSV to write (atomically), a row per reading: `id`, `time`, the targets'
            actual values, forecasts `<target>_t+k` for k = 1..horizon, the one-step error
            `<target>_error` (and `<target>_frozen_error` beside adaptation), `drift` (0/1) and
            `update` (applied, rolled_back, skipped).
        adapt: `off`, `every:N`, `drift` or `drift:N`.
        model: a model of the run other than its main one (e.g. `lstm`).
        overwrite: replace an existing `out` (and `snapshot`).
        window: readings before and after each drift over which the errors are compared.
        snapshot: a folder to save the adapted predictor to at the end (`StreamPredictor.load`
            continues from it, and so does `replay` given it as `run_dir`).
        snapshot_every: also snapshot (atomically) after every this many readings, and write
            `out` as far as it has got: a kill loses at most that many readings of work.
        **adapt_fields: more `AdaptConfig` fields (params, lr, detector, ...).

    Returns:
        `{"mae": {"adaptive": ..., "frozen": ...}, "drifts": [{"reading", "time", "frozen_before",
        "adaptive_before", "frozen_after", "adaptive_after"}], "updates": {result: count},
        "table": str}` with errors as mean absolute one-step errors over all targets.
    """
    out = Path(out)
    resumed = run_dir is not None and SNAPSHOT.recognises(Path(run_dir))
    inputs = {"--data": data, "the run folder": run_dir}
    distinct({"--out": out}, inputs)
    # a snapshot continued may be written over again (it is what the replay carries on)
    again = resumed and snapshot is not None and Path(snapshot).resolve() == Path(run_dir).resolve()
    distinct({"--snapshot": snapshot}, {"--data": data, **({} if again else inputs), "--out": out})
    if out.is_dir():
        raise RunError(f"--out {out} is a folder; give the CSV file to write")
    for path in (out, None if again else snapshot):
        if path is not None and Path(path).exists() and not overwrite:
            raise RunError(f"{path} exists; pass --overwrite to replace it")
    if snapshot is not None and Path(snapshot).exists() and not SNAPSHOT.recognises(Path(snapshot)):
        raise RunError(
            f"--snapshot {snapshot} is not a stream snapshot; --overwrite replaces only one"
        )
    every = snapshot_every
    if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
        raise RunError(f"--snapshot-every must be a whole number >= 1; got {every!r}")
    if every is not None and snapshot is None:
        raise RunError("--snapshot-every needs --snapshot, the folder to write to")
    if resumed:  # continue a snapshot: its adapted weights, states and counters
        live = StreamPredictor.load(run_dir)
        twin = Path(run_dir) / "frozen"
        frozen = StreamPredictor.load(twin) if (twin / "stream.json").is_file() else None
    else:
        live = StreamPredictor.from_run(run_dir, model=model, adapt=adapt, **adapt_fields)
        frozen = None
        if live.config.policy != "off":
            frozen = StreamPredictor.from_run(run_dir, model=model)
    spec = live.model.spec
    policy = "error" if spec["missing"] == "error" else "mask"
    series = load_like(data, {**spec, "missing": policy}, split=False)
    raw = _raw_readings(series, live.data_columns)
    order = sorted(
        (t, k, i) for k, times in enumerate(series.times) for i, t in enumerate(times)
    )  # time order; series, then row, break ties
    if resumed and live.time_kind == "none":  # the same file again: its first readings
        order = order[live.readings :]
    elif resumed:  # the readings the snapshot has already taken are not taken again
        seen = {sid: st.last_time for sid, st in live.streams.items()}
        order = [(t, k, i) for t, k, i in order if not _taken(seen, series, k, t, live)]
    if resumed and not order:
        raise RunError(
            f"the snapshot {run_dir} has taken every reading of the data already; give the "
            "readings that came after it"
        )
    records = []
    start, since = 0, 0
    while start < len(order):
        stop = start + 1
        while (
            stop < len(order)
            and order[stop][0] == order[start][0]
            and order[stop][1] != order[stop - 1][1]
        ):
            stop += 1
        batch = order[start:stop]
        ids = [series.ids[k] or "0" for _, k, _ in batch]
        readings = [raw[k][i] for _, k, i in batch]
        stamps = [t if series.time_column else None for t, _, _ in batch]
        steps = live.update_many(ids, readings, stamps)
        fsteps = frozen.update_many(ids, readings, stamps) if frozen else [None] * len(batch)
        for (_, k, i), step, fstep in zip(batch, steps, fsteps):
            records.append(_record(live, series, k, i, raw[k][i], step, fstep))
        start, since = stop, since + len(batch)
        if every is not None and since >= every:
            _write_csv(out, records)  # first: the snapshot never runs ahead of the output
            live.save(snapshot, frozen=frozen)
            since = 0
    import pandas as pd

    frame = pd.DataFrame.from_records(records)
    _write_csv(out, records)
    if snapshot is not None:
        live.save(snapshot, frozen=frozen)
    return _summary(live, frame, records, window, frozen is not None)


def _taken(seen: dict, series, k: int, t, live) -> bool:
    """Whether the snapshot's stream has a reading at or after time `t` already."""
    last = seen.get(series.ids[k] or "0")
    if last is None:
        return False
    now = int(np.datetime64(t, "ns").astype(np.int64)) if live.time_kind == "timestamp" else t
    return now <= last


def _write_csv(out: Path, records: list) -> None:
    import pandas as pd

    with new_file(out) as tmp:
        pd.DataFrame.from_records(records).to_csv(tmp, index=False)


def _record(live, series, k: int, i: int, raw, step, fstep) -> dict:
    time = series.times[k][i]
    rec = {"id": series.ids[k], "time": time if series.time_column else int(time)}
    target_cols = [live.data_columns.index(t) for t in live.targets]
    for j, name in enumerate(live.targets):
        rec[name] = raw[target_cols[j]]
    for j, name in enumerate(live.targets):
        for h in range(live.horizon):
            value = np.nan if step.forecast is None else step.forecast[h, j]
            rec[f"{name}_t+{h + 1}"] = value
    for j, name in enumerate(live.targets):
        rec[f"{name}_error"] = np.nan if step.error is None else step.error[j]
        if fstep is not None:
            rec[f"{name}_frozen_error"] = np.nan if fstep.error is None else fstep.error[j]
    rec["drift"] = int(step.drift)
    rec["update"] = step.update or ""
    return rec


def _mae(frame, columns: list[str], rows) -> float:
    values = frame.loc[rows, columns].to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    return float(np.abs(values).mean()) if values.size else float("nan")


def _summary(live, frame, records, window: int, compare: bool) -> dict:
    adaptive = [f"{t}_error" for t in live.targets]
    frozen = [f"{t}_frozen_error" for t in live.targets]
    mae = {"adaptive" if compare else "model": _mae(frame, adaptive, frame.index)}
    if compare:
        mae["frozen"] = _mae(frame, frozen, frame.index)
    drifts = []
    for pos in np.flatnonzero(frame["drift"].to_numpy() == 1):
        before = frame.index[max(0, pos - window) : pos]
        after = frame.index[pos : pos + window]
        row = {"reading": int(pos), "time": str(frame["time"].iloc[pos])}
        row["adaptive_before"] = _mae(frame, adaptive, before)
        row["adaptive_after"] = _mae(frame, adaptive, after)
        if compare:
            row["frozen_before"] = _mae(frame, frozen, before)
            row["frozen_after"] = _mae(frame, frozen, after)
        drifts.append(row)
    results = [e["result"] for e in live.events if e["event"] == "update"]
    updates = {r: results.count(r) for r in sorted(set(results))}
    lines = [f"{len(records)} readings; mean absolute one-step error: "
             + ", ".join(f"{k} {v:.4g}" for k, v in mae.items())]  # fmt: skip
    if updates:
        lines.append("online updates: " + ", ".join(f"{v} {k}" for k, v in updates.items()))
    if drifts:
        columns = ["time", "adaptive_before", "adaptive_after"]
        if compare:
            columns = ["time", "frozen_before", "adaptive_before", "frozen_after", "adaptive_after"]
        rows = [{"model": f"drift at reading {d['reading']}", **d} for d in drifts]
        lines.append(format_table(rows, columns, title=f"Errors {window} readings around drifts"))
    else:
        lines.append("no drift detected")
    return {"mae": mae, "drifts": drifts, "updates": updates, "table": "\n".join(lines)}

"""Covariates of a forecast, in the conventions of neuralforecast (and darts):

- past covariates (`hist_exog_list`, darts' `past_covariates`): columns known up to the
  present, read by the network as inputs (the `features` of `load_series`);
- future covariates (`futr_exog_list`, darts' `future_covariates`): columns known ahead over
  the horizon, a planned set point or a holiday flag, say, and calendar features derived
  from the timestamps;
- static covariates (`stat_exog_list`, darts' static covariates): one value per series (per
  `--id`), read as a constant input.

A future covariate reaches the model as a *lead*: the column `"<col>__ahead"` whose row t holds
the value `horizon` rows later. A window ending at T then carries, in its last `horizon` rows,
the covariate at T+1 ... T+horizon: the values over the forecast steps, beside the past.
Windows keep their shape, so training, backtests and the run folder need nothing new; the
leads of a series' last `horizon` rows come from the user (`future=`), or from the calendar.

numpy only.

>>> import numpy as np
>>> hours = np.datetime64("2024-01-01T00", "ns") + np.arange(4).astype("timedelta64[h]") * 6
>>> calendar_names(np.timedelta64(6, "h"))
['hour_sin', 'hour_cos', 'weekday_sin', 'weekday_cos']
>>> np.round(calendar_values(hours, ["hour_sin", "hour_cos"]), 3).tolist()
[[0.0, 1.0], [1.0, 0.0], [0.0, -1.0], [-1.0, -0.0]]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from liquidnets.data.errors import DataError
from liquidnets.data.table import SeriesSet

__all__ = ["AHEAD", "CALENDAR", "calendar_names", "calendar_values", "check_static", "with_future"]

AHEAD = "__ahead"  # the suffix of a lead column
CALENDAR = "calendar_"  # the prefix of a calendar feature's lead column
_DAY = np.timedelta64(1, "D")
_YEAR_DAYS = 365.25


def calendar_names(step: np.timedelta64) -> list[str]:
    """The calendar features that vary at a sampling step: the hour of the day and the day of
    the week below a day; the day of the week and of the year for daily readings; the day of
    the year for weekly ones; the month for monthly or quarterly ones; none for a year or
    more. Each is a sine and a cosine pair, so that 23 h and 0 h are neighbours."""
    days = step / _DAY
    if days < 1:
        parts = ["hour", "weekday"]
    elif days < 7:
        parts = ["weekday", "yearday"]
    elif days < 28:
        parts = ["yearday"]
    elif days < 365:
        parts = ["month"]
    else:
        parts = []
    return [f"{p}_{f}" for p in parts for f in ("sin", "cos")]


def calendar_values(times: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """`(len(times), len(names))` float32: the features `names` (of `calendar_names`) of
    datetime64 `times`."""
    t = np.asarray(times).astype("datetime64[ns]")
    days = (t - t.astype("datetime64[D]")) / _DAY  # fraction of the day
    date = t.astype("datetime64[D]")
    phase = {
        "hour": days,
        "weekday": ((date.astype(np.int64) + 3) % 7 + days) / 7,  # 1970-01-01 was a Thursday
        "yearday": (date - date.astype("datetime64[Y]")).astype(np.int64) / _YEAR_DAYS,
        "month": (t.astype("datetime64[M]").astype(np.int64) % 12) / 12,
    }
    out = np.empty((len(t), len(names)), np.float32)
    for j, name in enumerate(names):
        part, fn = name.rsplit("_", 1)
        angle = 2 * np.pi * phase[part]
        out[:, j] = np.sin(angle) if fn == "sin" else np.cos(angle)
    return out


def check_static(series: SeriesSet, columns: Sequence[str]) -> None:
    """A DataError unless every column of `columns` holds one value per series."""
    for c in columns:
        if c not in series.columns:
            raise DataError(f"{series.source}: static covariate {c!r} is not an input column")
        j = series.columns.index(c)
        for sid, values, rows in zip(series.ids, series.values, series.rows, strict=True):
            bad = np.flatnonzero(values[:, j] != values[0, j])
            if len(bad):
                where = f"series {sid!r}" if sid else "the series"
                raise DataError(
                    f"{series.source}: row {int(rows[bad[0]]) + 1}, column {c!r}: a static "
                    f"covariate must be constant within {where}; got {values[0, j]:g} and "
                    f"{values[bad[0], j]:g}"
                )


def with_future(
    series: SeriesSet,
    columns: Sequence[str],
    calendar: Sequence[str],
    horizon: int,
    step: np.timedelta64 | None = None,
    future: dict[str, np.ndarray] | None = None,
) -> SeriesSet:
    """`series` with its future covariates as leads: each column of `columns` replaced by
    `"<col>__ahead"` (its value `horizon` rows later) and a lead `"calendar_<name>__ahead"`
    added per calendar feature, after the other inputs.

    Args:
        columns: user columns known ahead (not targets).
        calendar: names from `calendar_names`; needs datetime timestamps.
        horizon: the forecast steps.
        step: the sampling step used past a series' last row (default: its median step).
        future: per series id, `(horizon, len(columns))` values of `columns` over the
            `horizon` steps after the series' end (what a forecast after the end needs);
            without it the leads of the last `horizon` rows repeat the last known one, which
            no training or backtest window reads (their targets lie inside the series).
    """
    columns, calendar = list(columns), list(calendar)
    if not columns and not calendar:
        return series
    for c in columns:
        if c not in series.columns:
            raise DataError(f"{series.source}: future covariate {c!r} is not an input column")
        if c in series.targets:
            raise DataError(f"{series.source}: {c!r} is a target; it cannot be known ahead")
    if calendar and any(t.dtype.kind != "M" for t in series.times):
        raise DataError(
            f"{series.source}: calendar features need timestamps in the time column "
            f"({series.time_column or 'no --time given'})"
        )
    keep = [j for j, c in enumerate(series.columns) if c not in columns]
    src = [series.columns.index(c) for c in columns]
    values = []
    for k, (v, t) in enumerate(zip(series.values, series.times, strict=True)):
        n = len(v)
        lead = np.full((n, len(src)), np.nan, np.float32)
        lead[: max(0, n - horizon)] = v[horizon:, src]
        given = None if future is None else future.get(series.ids[k])
        if given is not None and len(src):
            given = np.asarray(given, np.float32).reshape(horizon, len(src))
            lead[max(0, n - horizon) :] = given[max(0, horizon - n) :]
        elif n > horizon:
            lead[n - horizon :] = lead[n - horizon - 1]
        else:
            lead[:] = 0.0
        parts = [v[:, keep], lead]
        if calendar:
            parts.append(calendar_values(_times_ahead(t, horizon, step), calendar))
        values.append(np.concatenate(parts, axis=1).astype(np.float32))
    names = [series.columns[j] for j in keep]
    names += [c + AHEAD for c in columns] + [CALENDAR + c + AHEAD for c in calendar]
    return dataclasses.replace(series, columns=names, values=values)


def _times_ahead(t: np.ndarray, horizon: int, step) -> np.ndarray:
    """The time `horizon` rows after each row: read off the series, extrapolated with the
    step past its end."""
    n = len(t)
    if step is None:
        step = np.median(np.diff(t)) if n > 1 else np.timedelta64(1, "D")
    out = np.empty(n, dtype=t.dtype)
    inside = max(0, n - horizon)
    out[:inside] = t[horizon:]
    extra = np.arange(inside + horizon - (n - 1), n + horizon - (n - 1))[: n - inside]
    out[inside:] = t[-1] + extra * step
    return out

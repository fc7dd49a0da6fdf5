"""The data layer: a CSV or Parquet file of sensor readings -> validated float32 series -> windows.

`load_series` reads and checks the table (columns, numbers, times, ids, missing values) and
raises `DataError` with a one-line message for anything wrong in it; `split_by_time`, `Scaler`
and `make_windows` turn the series into model inputs `x (N, T, C)`, `dt (N, T)` and targets
`y (N, horizon, n_targets)`. numpy only; pandas (and pyarrow for Parquet) is imported when a
table is read.

Example:
    >>> import pandas as pd
    >>> frame = pd.DataFrame(
    ...     {
    ...         "time": pd.date_range("2024-01-01", periods=8, freq="15min"),
    ...         "temp": [20.0, 20.5, 21.0, None, 22.0, 22.5, 23.0, 23.5],
    ...     }
    ... )
    >>> s = load_series(frame, targets="temp", time="time", missing="interpolate")
    >>> s.columns, s.time_unit, float(s.values[0][3, 0])
    (['temp'], '15min', 21.5)
    >>> parts = split_by_time(s, val=0.25, test=0.25)
    >>> train = [v[p] for v, p in zip(s.values, parts["train"])]
    >>> scaler = Scaler.fit(train, s.columns)
    >>> w = make_windows(s, lookback=3, horizon=1, parts=parts["test"], scaler=scaler)
    >>> w.x.shape, w.y.shape, w.end.tolist()
    ((2, 3, 1), (2, 1, 1), [5, 6])
"""

from liquidnets.data.errors import DataError
from liquidnets.data.season import auto_lookback, infer_season, season_room
from liquidnets.data.table import MISSING_POLICIES, SPLITS, SeriesSet, load_series, read_table
from liquidnets.data.windows import (
    Scaler,
    Windows,
    WindowView,
    make_windows,
    pad_series,
    rows_until,
    split_by_column,
    split_by_series,
    split_by_time,
)
from liquidnets.data.xor import event_xor

__all__ = [
    "DataError",
    "MISSING_POLICIES",
    "SPLITS",
    "SeriesSet",
    "read_table",
    "load_series",
    "Scaler",
    "split_by_time",
    "rows_until",
    "split_by_column",
    "split_by_series",
    "Windows",
    "WindowView",
    "make_windows",
    "pad_series",
    "infer_season",
    "auto_lookback",
    "season_room",
    "event_xor",
]

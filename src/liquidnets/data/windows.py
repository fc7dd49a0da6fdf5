"""From validated series to training arrays: a chronological split (`split_by_time`, or the
user's own by rows, `split_by_column`), a split of whole series stratified by class
(`split_by_series`), a scaler fitted on training rows only (`Scaler`), sliding windows
(`make_windows`) and whole series padded into one batch (`pad_series`). numpy only."""

from __future__ import annotations

import math
import operator
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from liquidnets.data.errors import DataError
from liquidnets.data.table import MASK_SUFFIX, SPLITS, SeriesSet

__all__ = [
    "Scaler",
    "Windows",
    "make_windows",
    "pad_series",
    "rows_until",
    "split_by_column",
    "split_by_series",
    "split_by_time",
]


@dataclass
class Scaler:
    """Per-column standardisation `(x - mean) / std`, fitted on training rows only.

    A constant column gets std 1 (it becomes 0, not NaN); mask columns (names ending in
    `"__missing"`) are left as they are (mean 0, std 1).

    Args:
        mean: `(n_columns,)` float64.
        std: `(n_columns,)` float64, positive.

    Example:
        >>> import numpy as np
        >>> s = Scaler.fit([np.array([[1.0, 5.0], [3.0, 5.0]])], ["a", "b"])
        >>> s.transform(np.array([[2.0, 5.0]])).tolist()
        [[0.0, 0.0]]
        >>> s.inverse(np.array([[1.0]]), index=[0]).tolist()
        [[3.0]]
        >>> Scaler.from_dict(s.to_dict()) == s
        True
    """

    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        self.mean = np.asarray(self.mean, dtype=np.float64).reshape(-1)
        self.std = np.asarray(self.std, dtype=np.float64).reshape(-1)
        if self.mean.shape != self.std.shape:
            raise ValueError(f"Scaler: mean {self.mean.shape} and std {self.std.shape} differ")
        if not (np.isfinite(self.mean).all() and (self.std > 0).all()):
            raise ValueError("Scaler: mean must be finite and std positive")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Scaler):
            return NotImplemented
        return np.array_equal(self.mean, other.mean) and np.array_equal(self.std, other.std)

    @classmethod
    def fit(cls, arrays: Sequence[np.ndarray], columns: Sequence[str]) -> Scaler:
        """Fit on the rows of `arrays`, each `(rows, len(columns))` (e.g. the training part of
        each series)."""
        arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
        for a in arrays:
            if a.ndim != 2 or a.shape[1] != len(columns):
                raise ValueError(
                    f"Scaler.fit: arrays must be (rows, {len(columns)}); got {a.shape}"
                )
        rows = np.concatenate(arrays) if arrays else np.empty((0, len(columns)))
        if len(rows) == 0:
            raise DataError("Scaler.fit: no training rows to fit the scaler on")
        mean = rows.mean(axis=0)
        std = rows.std(axis=0)
        # "Constant" relative to the column's size: float rounding in the mean can leave a
        # std of ~1e-16 * |mean| for a column of identical values, which must not be amplified.
        std = np.where(std > 1e-10 * np.abs(mean), std, 1.0)
        is_mask = np.array([c.endswith(MASK_SUFFIX) for c in columns], dtype=bool)
        mean[is_mask], std[is_mask] = 0.0, 1.0
        return cls(mean, std)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Scale `x (..., n_columns)`; float inputs keep their dtype."""
        x = np.asarray(x)
        self._check(x, len(self.mean))
        return self._cast((x - self.mean) / self.std, x)

    def inverse(self, x: np.ndarray, index: Sequence[int] | None = None) -> np.ndarray:
        """Undo `transform`. `index`: the column positions the last axis of `x` holds (e.g.
        `series.target_index` for predictions); None: all columns."""
        x = np.asarray(x)
        idx = slice(None) if index is None else np.asarray(index, dtype=np.int64)
        mean, std = self.mean[idx], self.std[idx]
        self._check(x, len(mean))
        return self._cast(x * std + mean, x)

    def to_dict(self) -> dict[str, list[float]]:
        """JSON-safe: `{"mean": [...], "std": [...]}`."""
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scaler:
        """The inverse of `to_dict`."""
        if not isinstance(d, dict) or not {"mean", "std"} <= d.keys():
            raise ValueError("Scaler.from_dict: needs a dict with 'mean' and 'std' lists")
        return cls(np.asarray(d["mean"], dtype=np.float64), np.asarray(d["std"], dtype=np.float64))

    @staticmethod
    def _check(x: np.ndarray, n: int) -> None:
        if x.ndim == 0 or x.shape[-1] != n:
            raise ValueError(f"Scaler: the last axis must hold {n} columns; got shape {x.shape}")

    @staticmethod
    def _cast(out: np.ndarray, like: np.ndarray) -> np.ndarray:
        return out.astype(like.dtype) if np.issubdtype(like.dtype, np.floating) else out


def _series_name(series: SeriesSet, i: int) -> str:
    return f"series {series.ids[i]!r}" if series.id_column is not None else "the series"


def _part_size(n: int, fraction: float) -> int:
    # round half up, and at least one row for a part that was asked for
    return 0 if fraction == 0 else max(1, math.floor(n * fraction + 0.5))


def split_by_time(
    series: SeriesSet, val: float = 0.15, test: float = 0.15, *, until: Any = None
) -> dict[str, list[slice]]:
    """Split every series in time: the first `1 - val - test` of its rows train, then
    validation, then test; or, with `until`, everything up to it for training and validation
    and everything after it for testing.

    Args:
        series: the validated series.
        val: the fraction of each series for validation (0 for none); with `until`, the
            fraction of the rows up to it, carved from their end.
        test: the fraction of each series for testing (0 for none); not used with `until`.
        until: where the training data ends (see `rows_until`): a time of the time column
            (its rows at or before it train), or `"rows:N"` (the first N rows of every series
            train); None (default) for the fractions.

    Returns:
        `{"train": [slice per series], "val": [...], "test": [...]}`.

    Raises:
        DataError: fractions out of range, or a series too short to give each part a row.

    Example:
        >>> import numpy as np
        >>> s = SeriesSet(
        ...     ["x"],
        ...     ["x"],
        ...     [""],
        ...     [np.zeros((10, 1), np.float32)],
        ...     [np.arange(10.0)],
        ...     [np.ones(10, np.float32)],
        ...     [np.arange(10)],
        ...     None,
        ...     None,
        ...     None,
        ...     None,
        ...     "f",
        ... )
        >>> split_by_time(s, val=0.2, test=0.2)
        {'train': [slice(0, 6, None)], 'val': [slice(6, 8, None)], 'test': [slice(8, 10, None)]}
        >>> split_by_time(s, val=0.25, until="rows:4")
        {'train': [slice(0, 3, None)], 'val': [slice(3, 4, None)], 'test': [slice(4, 10, None)]}
    """
    for name, fraction in (("val", val), ("test", test)):
        if not 0 <= fraction < 1:
            raise DataError(f"split_by_time: {name} must be in [0, 1); got {fraction}")
    if until is not None:
        return _split_until(series, val, until)
    if val + test >= 1:
        raise DataError(f"split_by_time: val + test must be below 1; got {val} + {test}")
    parts: dict[str, list[slice]] = {"train": [], "val": [], "test": []}
    for i, values in enumerate(series.values):
        n = len(values)
        n_val, n_test = _part_size(n, val), _part_size(n, test)
        while n - n_val - n_test < 1 and max(n_val, n_test) > 1:  # keep a training row
            if n_val >= n_test:
                n_val -= 1
            else:
                n_test -= 1
        n_train = n - n_val - n_test
        if n_train < 1:
            need = 1 + (val > 0) + (test > 0)
            raise DataError(
                f"{series.source}: {_series_name(series, i)} has {n} rows: too few to split "
                f"into train, validation and test parts of at least one row (needs {need})"
            )
        parts["train"].append(slice(0, n_train))
        parts["val"].append(slice(n_train, n_train + n_val))
        parts["test"].append(slice(n_train + n_val, n))
    return parts


ROWS_PREFIX = "rows:"


def rows_until(series: SeriesSet, until: Any) -> list[int]:
    """Per series, how many of its first rows lie at or before `until`.

    `until` is either `"rows:N"` (the first N rows of every series, N >= 1; for a file of one
    series its data rows 0 .. N-1), or a time read like the time column: a timestamp (a string
    such as `"2024-03-01 12:00"`, a `datetime` or `numpy.datetime64`; without a time zone it is
    UTC, as the column's are) or a number for a numeric time column. A bare value needs a time
    column: without one, `rows:N` is the only form, so that a number never means a time for
    one file and a row count for another.

    Raises:
        DataError: a value that cannot be read, a bare value without a time column, or one
            that leaves no rows at or before it, or none after it, in every series.

    Example:
        >>> import numpy as np
        >>> s = SeriesSet(
        ...     ["x"],
        ...     ["x"],
        ...     [""],
        ...     [np.zeros((5, 1), np.float32)],
        ...     [np.array([0.0, 10.0, 20.0, 30.0, 40.0])],
        ...     [np.ones(5, np.float32)],
        ...     [np.arange(5)],
        ...     "t",
        ...     None,
        ...     10.0,
        ...     None,
        ...     "f",
        ... )
        >>> rows_until(s, 25), rows_until(s, "30"), rows_until(s, "rows:2")
        ([3], [4], [2])
    """
    shown = str(until)
    head = f"{series.source}: --train-until {shown}"
    if isinstance(until, str) and until.strip().lower().startswith(ROWS_PREFIX):
        count = until.strip()[len(ROWS_PREFIX) :].strip()
        if not count.isdigit() or int(count) < 1:
            raise DataError(f"{head}: rows:N needs a whole number of rows N >= 1; got {count!r}")
        cuts = [min(int(count), len(v)) for v in series.values]
    else:
        if series.time_column is None:
            raise DataError(
                f"{head}: the data has no time column (--time), so give the number of "
                f"training rows as rows:N (e.g. rows:{shown.strip()})"
            )
        cut = _as_time(until, series, head)
        cuts = [int(np.searchsorted(t, cut, side="right")) for t in series.times]
    by_rows = series.time_column is None or shown.strip().lower().startswith(ROWS_PREFIX)
    if not any(cuts):  # only a time can come before every row
        first = _show_time(min(t[0] for t in series.times))
        raise DataError(f"{head}: no rows at or before it to train on (the data starts at {first})")
    if all(c == len(v) for c, v in zip(cuts, series.values)):
        if by_rows:
            where = f"the longest series has {max(len(v) for v in series.values)} rows"
        else:
            where = f"the data ends at {_show_time(max(t[-1] for t in series.times))}"
        raise DataError(f"{head}: no rows after it to score ({where})")
    return cuts


def until_json(until: Any) -> Any:
    """`until` in a form JSON keeps and `rows_until` reads back: strings and numbers as they
    are, timestamps as ISO strings."""
    if until is None or isinstance(until, str):
        return until
    if isinstance(until, (int, float, np.integer, np.floating)) and not isinstance(until, bool):
        return until.item() if isinstance(until, np.generic) else until
    import pandas as pd

    return pd.Timestamp(until).isoformat()


def _as_time(until: Any, series: SeriesSet, head: str) -> Any:
    """`until` as a value comparable with the series' times (float64 or datetime64[ns])."""
    col = series.time_column
    numeric = series.times[0].dtype.kind == "f"
    if isinstance(until, bool):
        raise DataError(f"{head}: expected a time of column {col!r}; got a bool")
    if numeric:
        try:
            value = float(until)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value):
            raise DataError(f"{head}: time column {col!r} holds numbers; got {until!r}")
        return value
    import pandas as pd

    try:
        if isinstance(until, (int, float, np.number)):
            raise ValueError
        stamp = pd.Timestamp(until)
        if stamp is pd.NaT:
            raise ValueError
        if stamp.tzinfo is not None:  # the column's times are naive UTC
            stamp = stamp.tz_convert("UTC").tz_localize(None)
        return np.datetime64(stamp.as_unit("ns"))
    except (TypeError, ValueError, OverflowError):  # OutOfBoundsDatetime is a ValueError
        hint = f" (for the first {until} rows: rows:{until})" if str(until).isdigit() else ""
        raise DataError(
            f"{head}: time column {col!r} holds timestamps; cannot read {until!r} as one{hint}"
        ) from None


def _show_time(t: Any) -> Any:
    if isinstance(t, np.datetime64):
        import pandas as pd

        return str(pd.Timestamp(t))
    return float(t) if not float(t).is_integer() else int(t)


def _split_until(series: SeriesSet, val: float, until: Any) -> dict[str, list[slice]]:
    cuts = rows_until(series, until)
    parts: dict[str, list[slice]] = {"train": [], "val": [], "test": []}
    for i, (values, cut) in enumerate(zip(series.values, cuts)):
        n_val = _part_size(cut, val) if cut else 0
        if cut and cut - n_val < 1:
            raise DataError(
                f"{series.source}: --train-until {until}: {_series_name(series, i)} has {cut} "
                f"row{'s' * (cut != 1)} at or before it: too few for training and validation "
                "parts of at least one row (needs 2)"
            )
        parts["train"].append(slice(0, cut - n_val))
        parts["val"].append(slice(cut - n_val, cut))
        parts["test"].append(slice(cut, len(values)))
    return parts


def _no_splits(series: SeriesSet) -> DataError:
    return DataError(
        f"{series.source}: the series have no split column; load them with split=COLUMN "
        "(--split-column)"
    )


def split_by_column(series: SeriesSet, val: float = 0.15) -> dict[str, list[slice]]:
    """Split every series by rows as its split column says (`load_series(split=...)`): its
    `train` rows, then its `val` rows, then its `test` rows, in time order. A series may lack
    any of the parts (a series of `test` rows only is forecast from its own first rows).

    When no row of any series says `val`, validation is carved from the end of each series'
    training rows: the last `val` fraction of them, as `split_by_time` would take it.

    Args:
        series: the validated series, loaded with a split column.
        val: the fraction of each series' training rows to validate on, when the column
            names no `val` rows.

    Returns:
        `{"train": [slice per series], "val": [...], "test": [...]}`.

    Raises:
        DataError: no split column, no `train` row at all, or the parts of a series out of
            time order (a `train` row after a `val` or `test` one, a `val` row after a `test`
            one), naming the row.

    Example:
        >>> import numpy as np
        >>> s = SeriesSet(
        ...     ["x"],
        ...     ["x"],
        ...     [""],
        ...     [np.zeros((6, 1), np.float32)],
        ...     [np.arange(6.0)],
        ...     [np.ones(6, np.float32)],
        ...     [np.arange(6)],
        ...     None,
        ...     None,
        ...     None,
        ...     None,
        ...     "f",
        ...     splits=[np.array(["train"] * 3 + ["val", "test", "test"], dtype=object)],
        ...     split_column="part",
        ... )
        >>> split_by_column(s)
        {'train': [slice(0, 3, None)], 'val': [slice(3, 4, None)], 'test': [slice(4, 6, None)]}
    """
    if series.splits is None:
        raise _no_splits(series)
    if not 0 <= val < 1:
        raise DataError(f"split_by_column: val must be in [0, 1); got {val}")
    order = {name: k for k, name in enumerate(SPLITS)}
    carve = not any((s == "val").any() for s in series.splits)
    parts: dict[str, list[slice]] = {"train": [], "val": [], "test": []}
    for i, values in enumerate(series.splits):
        codes = np.array([order[v] for v in values], dtype=np.int64)  # (n,) 0 train .. 2 test
        back = np.flatnonzero(np.diff(codes) < 0)
        if back.size:
            k = int(back[0]) + 1
            rows = series.rows[i]
            where = f" ({_series_name(series, i)})" if series.id_column is not None else ""
            raise DataError(
                f"{series.source}: split column {series.split_column!r}, row {rows[k]}{where}: "
                f"{values[k]!r} after {values[k - 1]!r} at row {rows[k - 1]}; the rows of each "
                "series must go train, then val, then test in time"
            )
        n_train, n_val = int((codes == 0).sum()), int((codes == 1).sum())
        if carve and n_train > 1:
            n_val = min(_part_size(n_train, val), n_train - 1)
            n_train -= n_val
        parts["train"].append(slice(0, n_train))
        parts["val"].append(slice(n_train, n_train + n_val))
        parts["test"].append(slice(n_train + n_val, len(values)))
    if not any(p.stop > 0 for p in parts["train"]):
        raise DataError(f"{series.source}: split column {series.split_column!r} marks no row train")
    return parts


def _series_labels(series: SeriesSet) -> list[str]:
    """The one label of each series (the labels must not vary within a series)."""
    if series.labels is None:
        raise DataError(f"{series.source}: no label column")
    return [str(labels[0]) if len(labels) else "" for labels in series.labels]


def _draw(index: list[int], series: SeriesSet, fraction: float, seed: int) -> set[int]:
    """A `fraction` of the series in `index`, per class (rounded half up, at least one of a
    class that has two or more; a class's last series is never drawn). Which ones depends on
    the seed and on the series' ids only, not on their order in the file."""
    labels = _series_labels(series)
    drawn: set[int] = set()
    for c in sorted({labels[i] for i in index}):
        members = [i for i in index if labels[i] == c]
        members.sort(key=lambda i: (zlib.crc32(f"{seed}/{series.ids[i]}".encode()), i))
        drawn.update(members[: min(_part_size(len(members), fraction), len(members) - 1)])
    return drawn


def split_by_series(
    series: SeriesSet,
    val: float = 0.15,
    test: float = 0.15,
    seed: int = 0,
    val_seed: int | None = None,
) -> dict[str, list[int]]:
    """Split whole series, stratified by class: for sequence classification, one label per
    series.

    Without a split column, a `test` fraction of each class's series is drawn for testing,
    then a `val` fraction of each class's series for validation, the rest trains; each class
    keeps at least one training series. With a split column (`load_series(split=...)`), each
    series goes where its rows say (all of them must say the same); when none says `val`,
    validation is a `val` fraction of each class's training series. The draw depends on
    `seed` and the series' ids only, so the same file always splits the same way.

    Args:
        series: the validated series, with a label column.
        val: the fraction of each class's series (of its training series with a split
            column) to validate on.
        test: the fraction of each class's series to test on (ignored with a split column).
        seed: which series are drawn.
        val_seed: which series are drawn for validation (None: from `seed`); with the
            same `seed` and another `val_seed`, the test series stay and the validation
            series change (the members of an ensemble each validate on other series).

    Returns:
        `{"train": [series index, ...], "val": [...], "test": [...]}`, each in file order.

    Raises:
        DataError: no label column, a series whose rows carry different split values (the
            row is named), or too few series to train and validate on.

    Example:
        >>> import numpy as np
        >>> n = 20
        >>> s = SeriesSet(
        ...     ["x"],
        ...     [],
        ...     [f"s{i}" for i in range(n)],
        ...     [np.zeros((3, 1), np.float32)] * n,
        ...     [np.arange(3.0)] * n,
        ...     [np.ones(3, np.float32)] * n,
        ...     [np.arange(3)] * n,
        ...     None,
        ...     "id",
        ...     None,
        ...     [np.array(["ab"[i % 2]] * 3, dtype=object) for i in range(n)],
        ...     "f",
        ... )
        >>> parts = split_by_series(s, val=0.2, test=0.2)
        >>> {k: len(v) for k, v in parts.items()}
        {'train': 12, 'val': 4, 'test': 4}
    """
    for name, fraction in (("val", val), ("test", test)):
        if not 0 <= fraction < 1:
            raise DataError(f"split_by_series: {name} must be in [0, 1); got {fraction}")
    everything = list(range(len(series)))
    val_seed = seed + 1 if val_seed is None else val_seed
    if series.splits is None:
        tested = _draw(everything, series, test, seed)
        rest = [i for i in everything if i not in tested]
        # the validation fraction is of all the class's series, like the test fraction
        left = 1 - test
        validated = _draw(rest, series, min(val / left, 0.99) if left else 0, val_seed)
        place = {i: "test" if i in tested else "val" if i in validated else "train"
                 for i in everything}  # fmt: skip
    else:
        place = {}
        for i, values in enumerate(series.splits):
            differs = np.flatnonzero(values != values[0])
            if differs.size:
                k = int(differs[0])
                raise DataError(
                    f"{series.source}: split column {series.split_column!r}, row "
                    f"{series.rows[i][k]} ({_series_name(series, i)}): {values[k]!r} where the "
                    f"series' first row says {values[0]!r}; a series is split whole, so all its "
                    "rows must carry the same split"
                )
            place[i] = str(values[0]) if len(values) else "train"
        if "val" not in place.values():
            training = [i for i in everything if place[i] == "train"]
            for i in _draw(training, series, val, val_seed):
                place[i] = "val"
    parts = {name: [i for i in everything if place[i] == name] for name in SPLITS}
    for name in ("train", "val"):
        if not parts[name]:
            raise DataError(
                f"{series.source}: {len(series)} series with {len(parts['train'])} to train on "
                f"leave no {'validation' if name == 'val' else 'training'} series; a "
                "classifier of whole series needs at least two series of a class (--id)"
            )
    return parts


def pad_series(
    series: SeriesSet,
    index: Sequence[int] | None = None,
    scaler: Scaler | None = None,
    downsample: int = 1,
    reduce: str = "patch",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Whole series as one batch, padded at the end to the longest: the inputs of a
    classifier of whole series, `net(x, dt, mask)`.

    With `downsample=k`, every `k` consecutive rows become one step, whose elapsed time is
    the sum of theirs counted in units of `k` (so a regular series keeps `dt = 1`: the time
    constants a liquid cell learns are in steps, and padding a step with more rows does not
    saturate its time gates). The step holds, with
    `reduce="patch"`, the `k` rows' values side by side (`k * C` features; a series' last,
    shorter patch repeats its last row), as the patches of PatchTST (Nie et al., ICLR 2023)
    or the segments of SegRNN (Lin et al., 2023); with `reduce="mean"`, their mean (the
    piecewise aggregate approximation of Keogh et al., 2001; `C` features).

    Args:
        series: the validated series.
        index: which series, in this order (None: all).
        scaler: scales the values when given.
        downsample: rows per step (1: every row).
        reduce: `patch` or `mean`.

    Returns:
        `(x (N, T, F) float32, dt (N, T) float32, mask (N, T) bool)`, `F = k * C` for
        patches, else `C`; `mask` True at the real steps; padded steps have `x = 0` and
        `dt = 0`.

    Example:
        >>> import numpy as np
        >>> s = SeriesSet(
        ...     ["x"],
        ...     [],
        ...     ["a", "b"],
        ...     [np.arange(4.0)[:, None], np.arange(3.0)[:, None]],
        ...     [np.arange(4.0), np.arange(3.0)],
        ...     [np.ones(4), np.ones(3)],
        ...     [np.arange(4), np.arange(4, 7)],
        ...     None,
        ...     "id",
        ...     None,
        ...     None,
        ...     "f",
        ... )
        >>> x, dt, mask = pad_series(s, downsample=2, reduce="mean")
        >>> x[..., 0].tolist(), dt.tolist(), mask.tolist()
        ([[0.5, 2.5], [0.5, 2.0]], [[1.0, 1.0], [1.0, 0.5]], [[True, True], [True, True]])
        >>> pad_series(s, downsample=2)[0].tolist()  # patches: two rows per step
        [[[0.0, 1.0], [2.0, 3.0]], [[0.0, 1.0], [2.0, 2.0]]]
    """
    k = _count("downsample", downsample, 1)
    if reduce not in ("patch", "mean"):
        raise DataError(f"pad_series: reduce must be 'patch' or 'mean'; got {reduce!r}")
    index = range(len(series)) if index is None else index
    steps_x, steps_dt = [], []
    for i in index:
        values = series.values[i] if scaler is None else scaler.transform(series.values[i])
        values, dt = np.asarray(values, np.float64), np.asarray(series.dt[i], np.float64)
        if k > 1:
            starts = np.arange(0, len(values), k)
            dt = np.add.reduceat(dt, starts) / k  # (m,) in units of k rows
            if reduce == "patch":
                m = len(starts)
                rows = np.minimum(np.arange(m * k), len(values) - 1)  # the last row repeated
                values = values[rows].reshape(m, -1)  # (m, k * C): row-major, k rows of C
            else:
                sizes = np.diff(np.append(starts, len(values)))[:, None]  # (m, 1)
                values = np.add.reduceat(values, starts, axis=0) / sizes  # (m, C)
        steps_x.append(values)
        steps_dt.append(dt)
    longest = max((len(v) for v in steps_x), default=0)
    width = len(series.columns) * (k if reduce == "patch" else 1)
    n = len(steps_x)
    x = np.zeros((n, longest, width), np.float32)
    dt = np.zeros((n, longest), np.float32)
    mask = np.zeros((n, longest), bool)
    for j, (values, elapsed) in enumerate(zip(steps_x, steps_dt, strict=True)):
        x[j, : len(values)] = values
        dt[j, : len(values)] = elapsed
        mask[j, : len(values)] = True
    return x, dt, mask


class WindowView:
    """Windows read on demand from one array of rows: `view[i]` is `rows[ends[i] + offsets]`,
    gathered when indexed, so that a million windows of 32 rows hold the rows once (memory
    O(rows x columns), not O(rows x lookback x columns)).

    It answers `len`, `shape`, `dtype`, `ndim` and indexing by an integer, a slice or an array
    of window indices (each giving a numpy array); `np.asarray(view)` gathers them all.

    Args:
        rows: `(R, ...)` the rows of every series, one after another.
        ends: `(N,)` the position in `rows` of each window's anchor row.
        offsets: `(L,)` the rows each window takes, relative to its anchor.
        flat: gather `(n, L * ...)` instead of `(n, L, ...)` (what `reshape(len, -1)` gives).

    Example:
        >>> v = WindowView(np.arange(10.0)[:, None], np.array([2, 5]), np.arange(-2, 1))
        >>> v.shape, v[1][:, 0].tolist()
        ((2, 3, 1), [3.0, 4.0, 5.0])
    """

    def __init__(self, rows: np.ndarray, ends: np.ndarray, offsets: np.ndarray, flat=False):
        self.rows, self.ends, self.offsets, self.flat = rows, ends, offsets, flat

    @property
    def shape(self) -> tuple[int, ...]:
        tail = (len(self.offsets), *self.rows.shape[1:])
        return (len(self.ends), int(np.prod(tail))) if self.flat else (len(self.ends), *tail)

    @property
    def dtype(self):
        return self.rows.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, index) -> np.ndarray:
        if isinstance(index, tuple):  # (windows, more...): gather the windows, then the rest
            first = self[index[0]]
            whole = np.ndim(self.ends[index[0]]) == 0  # one window: no leading axis
            return first[index[1:] if whole else (slice(None), *index[1:])]
        ends = self.ends[index]
        out = self.rows[ends[..., None] + self.offsets]  # (n, L, ...) or (L, ...)
        return out.reshape(*ends.shape, -1) if self.flat else out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype, copy=False)

    def reshape(self, *shape):
        """`reshape(len(view), -1)` stays a view (each window's values in one row); any other
        shape gathers every window first."""
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], tuple) else shape
        if tuple(shape) == (len(self), -1):
            return WindowView(self.rows, self.ends, self.offsets, flat=True)
        return np.asarray(self).reshape(shape)


@dataclass
class Windows:
    """Sliding windows, ready for a model `net(x (B, T, C), dt (B, T))`.

    `x`, `dt` and `y` are `WindowView`s: read on demand from the series' rows (index them,
    or `np.asarray` them to hold them all).

    Args:
        x: `(N, lookback, n_columns)` float32 inputs (scaled when a scaler was given).
        dt: `(N, lookback)` float32 elapsed times of the input rows.
        y: `(N, horizon, n_targets)` float32 future targets, scaled likewise
            (`(N, 0, n_targets)` when horizon is 0).
        series: `(N,)` int64 series index of each window.
        end: `(N,)` int64 position in its series of each window's last input row.
        label: `(N,)` object labels of the last input row, or None.
    """

    x: WindowView
    dt: WindowView
    y: WindowView
    series: np.ndarray
    end: np.ndarray
    label: np.ndarray | None

    def __len__(self) -> int:
        return len(self.x)


def _count(name: str, value: Any, minimum: int) -> int:
    try:
        if isinstance(value, bool):
            raise TypeError
        value = operator.index(value)
    except TypeError:
        raise DataError(f"make_windows: {name} must be an integer; got {value!r}") from None
    if value < minimum:
        raise DataError(f"make_windows: {name} must be at least {minimum}; got {value}")
    return value


def make_windows(
    series: SeriesSet,
    lookback: int,
    horizon: int = 1,
    stride: int = 1,
    parts: Sequence[slice] | None = None,
    scaler: Scaler | None = None,
    context: bool = True,
) -> Windows:
    """Sliding windows over each series; a window never crosses from one series to another.

    A window ending at row `e` takes inputs `e - lookback + 1 .. e` and targets
    `e + 1 .. e + horizon`. Windows start at the first row that fits and step by `stride`.

    Args:
        series: the validated series.
        lookback: input rows per window (at least 1).
        horizon: future target rows per window (0: none, for classification or anomaly scores).
        stride: rows between the ends of consecutive windows.
        parts: one slice per series (e.g. `split_by_time(...)["val"]`): only windows whose
            targets (with horizon 0: whose last input row) fall inside the part are made.
        scaler: scales inputs and targets when given.
        context: with `parts`, let inputs reach back before the part's start (True, the usual
            backtesting convention) or keep them inside the part (False).

    Returns:
        The `Windows`.

    Raises:
        DataError: bad sizes, a wrong number of parts, or no window fitting anywhere.

    Example:
        >>> import numpy as np
        >>> s = SeriesSet(
        ...     ["x"],
        ...     ["x"],
        ...     [""],
        ...     [np.arange(6, dtype=np.float32)[:, None]],
        ...     [np.arange(6.0)],
        ...     [np.ones(6, np.float32)],
        ...     [np.arange(6)],
        ...     None,
        ...     None,
        ...     None,
        ...     None,
        ...     "f",
        ... )
        >>> w = make_windows(s, lookback=3, horizon=2)
        >>> w.x.shape, w.y.shape, w.y[:, :, 0].tolist()
        ((2, 3, 1), (2, 2, 1), [[3.0, 4.0], [4.0, 5.0]])
    """
    lookback = _count("lookback", lookback, 1)
    horizon = _count("horizon", horizon, 0)
    stride = _count("stride", stride, 1)
    if parts is not None and len(parts) != len(series):
        raise DataError(
            f"make_windows: {len(parts)} parts for {len(series)} series; give one slice per series"
        )
    targets = series.target_index
    inputs = np.arange(-lookback + 1, 1)  # offsets of the input rows from the window's end
    future = np.arange(1, horizon + 1)  # offsets of the target rows
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("rows", "dt", "series", "end", "label")}
    out["at"] = []  # each window's end as a position in the rows of every series together
    longest, offset = 0, 0
    for i, (values, dt) in enumerate(zip(series.values, series.dt)):
        n = len(values)
        start, stop = 0, n
        if parts is not None:
            start, stop, step = parts[i].indices(n)
            if step != 1:
                raise DataError(f"make_windows: parts must be contiguous slices; got {parts[i]}")
            if stop <= start:
                continue
        first_input = 0 if context else start
        longest = max(longest, stop - first_input)
        # the last input row e: inputs fit from first_input, targets fit in [start, stop)
        lo = max(first_input + lookback - 1, start - min(horizon, 1))
        hi = stop - 1 - horizon
        if hi < lo:
            continue
        ends = np.arange(lo, hi + 1, stride)  # (N_i,)
        # only the rows the windows reach are kept: [first, last]
        first, last = ends[0] + inputs[0], ends[-1] + max(horizon, 0)
        scaled = values[first : last + 1]
        scaled = scaled if scaler is None else scaler.transform(scaled)
        out["rows"].append(np.asarray(scaled, dtype=np.float32))  # (rows_i, C)
        out["dt"].append(np.asarray(dt[first : last + 1], dtype=np.float32))
        out["at"].append(ends - first + offset)
        offset += last + 1 - first
        out["series"].append(np.full(len(ends), i, dtype=np.int64))
        out["end"].append(ends.astype(np.int64))
        if series.labels is not None:
            out["label"].append(np.asarray(series.labels[i], dtype=object)[ends])
    if not out["rows"]:
        what = (
            "series" if parts is None else "part" if not context else "series (to its part's end)"
        )
        raise DataError(
            f"{series.source} has {longest} rows in its longest {what}: fewer than one window "
            f"(lookback {lookback} + horizon {horizon})"
        )
    rows = np.concatenate(out["rows"])  # (R, C): every row a window reaches, once
    at = np.concatenate(out["at"])
    return Windows(
        x=WindowView(rows, at, inputs),  # (N, lookback, C)
        dt=WindowView(np.concatenate(out["dt"]), at, inputs),  # (N, lookback)
        y=WindowView(np.ascontiguousarray(rows[:, targets]), at, future),  # (N, horizon, n_t)
        series=np.concatenate(out["series"]),
        end=np.concatenate(out["end"]),
        label=np.concatenate(out["label"]) if out["label"] else None,
    )

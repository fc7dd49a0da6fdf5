"""Reading a CSV or Parquet file (`read_table`) and validating it into float32 series
(`load_series`).

pandas is imported inside the functions that need it, so `import liquidnets.data` works with
numpy alone. Every problem with the file or with how it was described raises `DataError` with a
one-line message that names the file, the column, the row (and the file line for CSV) and what
was expected against what was found.
"""

from __future__ import annotations

import csv
import difflib
import gzip
import io
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from liquidnets.data.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["MISSING_POLICIES", "SeriesSet", "load_series", "read_table"]

MISSING_POLICIES = ("error", "mask", "interpolate", "drop")
MASK_SUFFIX = "__missing"
SPLITS = ("train", "val", "test")  # the values of a split column, in time order

_CSV_SUFFIXES = (".csv", ".txt", ".tsv")
_PARQUET_SUFFIXES = (".parquet", ".pq")
# pandas' default missing-value markers, for string cells of a DataFrame handed in directly
_NA_STRINGS = {"", "#n/a", "#n/a n/a", "#na", "-1.#ind", "-1.#qnan", "-nan", "1.#ind", "1.#qnan",
               "<na>", "n/a", "na", "null", "nan", "none"}  # fmt: skip
_DURATIONS = (("D", 86_400 * 10**9), ("h", 3_600 * 10**9), ("min", 60 * 10**9), ("s", 10**9),
              ("ms", 10**6), ("us", 10**3), ("ns", 1))  # fmt: skip


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ImportError(
            "reading tables needs pandas; install it with: pip install pandas"
        ) from None
    return pandas


def _one_line(err: BaseException, limit: int = 200) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class _Where:
    """Where a data row sits, for messages: the source name and, for a CSV file, the map from
    data rows to file lines (1-based header line and the blank lines pandas skipped)."""

    source: str
    header_line: int | None = None
    blank_lines: tuple[int, ...] = ()

    def __call__(self, row: int) -> str:
        if self.header_line is None:
            return f"row {row}"
        line = self.header_line + 1 + row
        for blank in self.blank_lines:  # sorted; each blank line at or before ours shifts it
            if blank > line:
                break
            line += 1
        return f"row {row} (line {line})"


def read_table(path: str | os.PathLike, *, encoding: str = "utf-8") -> pd.DataFrame:
    """Read a CSV or Parquet file into a pandas DataFrame.

    CSV: `.csv`, `.txt`, `.tsv`, each optionally `.gz` compressed; the delimiter (comma,
    semicolon or tab) is taken from the header line. Parquet: `.parquet`, `.pq`.

    Args:
        path: the file.
        encoding: the text encoding of a CSV file (default utf-8; a leading BOM is dropped).

    Returns:
        The table, one row per data row of the file, column names stripped of spaces.

    Raises:
        DataError: a missing file, an empty file or one with a header and no rows, an unknown
            extension, bytes that are not valid in `encoding`, an unreadable CSV or Parquet file.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "readings.csv"
        >>> _ = path.write_text("time;temp\\n0;20.5\\n1;21.0\\n")
        >>> read_table(path).shape
        (2, 2)
    """
    return _read(path, encoding)[0]


def _read(path: str | os.PathLike, encoding: str) -> tuple[pd.DataFrame, _Where]:
    pd = _pandas()
    path = Path(path)
    if not path.exists():
        raise DataError(f"no such file: {path}")
    if path.is_dir():
        raise DataError(f"{path} is a directory, not a data file")
    name = path.name
    suffixes = [s.lower() for s in path.suffixes]
    compressed = suffixes[-1:] == [".gz"]
    kind = suffixes[-2 if compressed else -1] if len(suffixes) > compressed else ""
    if kind not in _CSV_SUFFIXES + _PARQUET_SUFFIXES or (compressed and kind in _PARQUET_SUFFIXES):
        shown = "".join(suffixes[-2:] if compressed else suffixes[-1:]) or "(none)"
        raise DataError(
            f"{name}: unknown file type {shown}; use .csv, .tsv or .txt (optionally .gz) "
            "or .parquet/.pq"
        )
    if path.stat().st_size == 0:
        raise DataError(f"{name} is empty")

    if kind in _PARQUET_SUFFIXES:
        try:
            frame = pd.read_parquet(path)
        except ImportError as err:
            raise ImportError("reading Parquet needs pyarrow: pip install pyarrow") from err
        except Exception as err:  # pyarrow raises many kinds of error for a damaged file
            raise DataError(
                f"{name}: not a readable Parquet file ({type(err).__name__}: {_one_line(err)})"
            ) from None
        if len(frame) == 0:
            raise DataError(f"{name} has columns but no data rows")
        frame.columns = [str(c).strip() for c in frame.columns]
        _check_unique(name, list(frame.columns))
        return frame, _Where(name)

    if not compressed and path.stat().st_size > LARGE:
        return _read_large(path, encoding, kind == ".tsv"), _Where(name)
    raw = path.read_bytes()
    if compressed:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise DataError(f"{name}: not a valid gzip file ({_one_line(err)})") from None
    text = _decode(raw, encoding, name)
    if not text.strip():
        raise DataError(f"{name} is empty")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    header = next(i for i, line in enumerate(lines) if line.strip())
    sep = _sniff_delimiter(lines[header], tsv=kind == ".tsv")
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise DataError(f"{name} is empty") from None
    except (pd.errors.ParserError, ValueError) as err:
        raise DataError(f"{name}: not a readable CSV file ({_one_line(err)})") from None
    if len(frame) == 0:
        raise DataError(f"{name} has a header but no data rows")
    # pandas renames a repeated column `x` to `x.1`: a silent new feature; read the header
    names = next(csv.reader([lines[header]], delimiter=sep, skipinitialspace=True), [])
    _check_unique(name, [n.strip() for n in names] if len(names) == frame.shape[1] else [])
    frame.columns = [str(c).strip() for c in frame.columns]
    # pandas skips blank lines; remember them so that messages can give true file lines. A quoted
    # field spanning lines breaks the count, and then messages give the data row only.
    blank = tuple(i + 1 for i in range(header + 1, len(lines)) if not lines[i].strip())
    if len(lines) - header - 1 - len(blank) != len(frame):
        return frame, _Where(name)
    return frame, _Where(name, header + 1, blank)


LARGE = 64 * 2**20  # bytes: a CSV larger than this is parsed from the file, in chunks


def _read_large(path: Path, encoding: str, tsv: bool) -> pd.DataFrame:
    """A large CSV parsed by pandas straight from the file (its C parser reads in chunks):
    never a second copy of the text in memory. Messages then name data rows, not file lines
    (the blank lines are not counted)."""
    pd = _pandas()
    name = path.name
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    text = _decode(head[: head.rfind(b"\n") + 1] or head, encoding, name)
    header = next((line for line in text.splitlines() if line.strip()), "")
    sep = _sniff_delimiter(header, tsv=tsv)
    names = next(csv.reader([header], delimiter=sep, skipinitialspace=True), [])
    _check_unique(name, [n.strip() for n in names])
    try:
        frame = pd.read_csv(path, sep=sep, skipinitialspace=True, encoding=encoding)
    except UnicodeDecodeError as err:
        raise DataError(
            f"{name}: byte at offset {err.start} of a chunk is not valid {encoding}; pass the "
            "file's encoding, e.g. --encoding latin-1"
        ) from None
    except (pd.errors.ParserError, ValueError) as err:
        raise DataError(f"{name}: not a readable CSV file ({_one_line(err)})") from None
    if len(frame) == 0:
        raise DataError(f"{name} has a header but no data rows")
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _check_unique(name: str, columns: list[str]) -> None:
    seen: dict[str, int] = {}
    for k, column in enumerate(columns):
        if column in seen:
            raise DataError(
                f"{name}: column {column!r} appears twice in the header (columns {seen[column] + 1}"
                f" and {k + 1}); give every column its own name"
            )
        seen[column] = k


def _decode(raw: bytes, encoding: str, name: str) -> str:
    try:
        text = raw.decode(encoding)
    except LookupError:
        raise DataError(f"unknown encoding {encoding!r}; use e.g. utf-8 or latin-1") from None
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        other = "latin-1" if encoding.lower().replace("_", "-") != "latin-1" else "cp1252"
        raise DataError(
            f"{name}: byte 0x{raw[err.start]:02x} at offset {err.start} (line {line}) is not "
            f"valid {encoding}; pass the file's encoding, e.g. --encoding {other}"
        ) from None
    return text.removeprefix("\ufeff")


def _sniff_delimiter(header: str, tsv: bool) -> str:
    """The most frequent of tab, comma and semicolon outside quotes in the header line."""
    counts = dict.fromkeys("\t,;", 0)
    quoted = False
    for char in header:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    order = "\t,;" if tsv else ",;\t"
    best = max(order, key=counts.__getitem__)  # the first of the most frequent, in `order`
    return best if counts[best] else order[0]


@dataclass(repr=False)
class SeriesSet:
    """Validated series, all float32 numpy: one entry per series (several with an id column).

    Args:
        columns: the value columns in order: features, then the targets not already among the
            features, then one `"<col>__missing"` 0/1 column per column that had gaps (with
            `missing="mask"`).
        targets: the target column names (a subset of `columns`).
        ids: the series ids as strings (`[""]` when there is no id column).
        values: per series, `(n_i, len(columns))` float32.
        times: per series, datetime64[ns] timestamps (UTC when the file had time zones), float64
            numbers, or float64 row positions when there is no time column.
        dt: per series, `(n_i,)` float32 time since the previous row in `time_unit`s; the first
            row gets the series' median step.
        rows: per series, `(n_i,)` int64 data-row numbers in the file (0-based, header excluded).
        time_column: the time column, or None.
        id_column: the id column, or None.
        time_unit: the unit of `dt`: what the user passed, or the inferred median step.
        labels: per series, `(n_i,)` object arrays of label strings, or None.
        source: the file name, or `"<frame>"`, for messages.
        splits: per series, `(n_i,)` object arrays of the split column's values (`train`,
            `val` or `test`), or None.
        split_column: the split column, or None.
    """

    columns: list[str]
    targets: list[str]
    ids: list[str]
    values: list[np.ndarray]
    times: list[np.ndarray]
    dt: list[np.ndarray]
    rows: list[np.ndarray]
    time_column: str | None
    id_column: str | None
    time_unit: float | str | None
    labels: list[np.ndarray] | None
    source: str
    splits: list[np.ndarray] | None = None
    split_column: str | None = None

    @property
    def target_index(self) -> list[int]:
        """The positions of the targets in `columns`."""
        return [self.columns.index(t) for t in self.targets]

    def __len__(self) -> int:
        return len(self.values)

    def __repr__(self) -> str:
        sizes = [len(v) for v in self.values]
        return (
            f"SeriesSet(source={self.source!r}, rows={sizes}, columns={self.columns}, "
            f"targets={self.targets}, time_unit={self.time_unit!r})"
        )


def load_series(
    data: str | os.PathLike | pd.DataFrame,
    *,
    targets: str | list[str],
    features: str | list[str] | None = None,
    time: str | None = None,
    id: str | None = None,  # the user-facing name, like the CLI flag --id
    label: str | None = None,
    missing: str = "error",
    time_unit: float | str | None = None,
    encoding: str = "utf-8",
    split: str | None = None,
) -> SeriesSet:
    """Validate a table into float32 series: columns checked, values parsed, gaps handled.

    Args:
        data: a path (read with `read_table`) or a pandas DataFrame.
        targets: the column(s) to predict.
        features: extra input columns; None takes every numeric column (or text column whose
            cells are mostly numbers) that is not the time, id, label or a target.
        time: the time column (timestamps or numbers); None uses row order (dt = 1).
        id: a column that splits a long-format table into series, each validated on its own.
        label: a class label column (kept as strings).
        missing: NaN or empty cells in features and targets: `"error"` (default), `"mask"`
            (add a `"<col>__missing"` 0/1 column, forward-fill, back-fill the start),
            `"interpolate"` (linear in time, nearest value at the edges) or `"drop"` (drop the
            row; with no time column the row positions keep the gap, so dt shows it).
            inf is refused under every policy.
        time_unit: the unit of dt: a duration such as `"15min"` for timestamps, a positive number
            for numeric times; None uses the median step, so the typical dt is 1.
        encoding: the text encoding of a CSV file.
        split: a column that assigns each row to a part, `train`, `val` or `test` (see
            `split_by_column`); never an input.

    Returns:
        The `SeriesSet`.

    Raises:
        DataError: an unknown column or policy, a non-numeric, infinite or (with
            `missing="error"`) missing value, an entirely empty column, unparseable, unsorted or
            duplicate times, a split value other than train, val or test, or a file
            `read_table` refuses.

    Example:
        >>> import pandas as pd
        >>> frame = pd.DataFrame({"t": [0.0, 2.0, 4.0, 8.0], "temp": [1.0, 2.0, 3.0, 4.0]})
        >>> s = load_series(frame, targets="temp", time="t")
        >>> s.time_unit, s.dt[0].tolist()
        (2.0, [1.0, 1.0, 1.0, 2.0])
    """
    pd = _pandas()
    if missing not in MISSING_POLICIES:
        raise DataError(
            f"unknown missing-value policy {missing!r}; use one of: {', '.join(MISSING_POLICIES)}"
        )
    if isinstance(data, (str, os.PathLike)):
        frame, where = _read(data, encoding)
    elif isinstance(data, pd.DataFrame):
        frame, where = data, _Where("<frame>")
        if len(frame) == 0:
            raise DataError("<frame> has no rows")
    else:
        raise TypeError(f"data must be a path or a pandas DataFrame; got {type(data).__name__}")
    src = where.source
    names = [str(c) for c in frame.columns]
    frame = frame.set_axis(names, axis=1)
    columns, targets = _resolve_columns(
        frame, names, src, targets, features, time, id, label, split
    )

    # Whole-table checks first, in file order: values, times, ids, labels.
    matrix = np.empty((len(frame), len(columns)), dtype=np.float64)
    for j, col in enumerate(columns):
        matrix[:, j] = _numbers(frame[col], col, where)
    times = None if time is None else _times(frame[time], time, where)
    labels = None if label is None else _strings(frame[label], label, "label", where)
    splits = None if split is None else _splits(frame[split], split, where)
    if id is None:
        ids, groups = [""], [np.arange(len(frame))]
    else:
        keys = _strings(frame[id], id, "id", where)
        codes, uniques = pd.factorize(keys)  # ids in order of first appearance
        order = np.argsort(codes, kind="stable")
        groups = np.split(order, np.cumsum(np.bincount(codes))[:-1])
        ids = [str(u) for u in uniques]
    if times is not None:
        for name, rows in zip(ids, groups):
            _check_order(times[rows], rows, time, name, where)

    gaps = np.isnan(matrix)
    if missing == "error" and gaps.any():
        row = int(np.argmax(gaps.any(axis=1)))
        col = columns[int(np.argmax(gaps[row]))]
        raise DataError(
            f"{src}: column {col!r}, {where(row)}: missing value; choose a policy with "
            "--missing mask|interpolate|drop"
        )
    had_gaps = gaps.any(axis=0)
    if missing == "mask":
        columns = columns + [c + MASK_SUFFIX for c, g in zip(columns, had_gaps) if g]

    kept: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (values, times, rows) per series
    for name, rows in zip(ids, groups):
        t = np.arange(len(rows), dtype=np.float64) if times is None else times[rows]
        values = matrix[rows]
        empty = np.flatnonzero(np.isnan(values).all(axis=0))
        if empty.size and missing != "drop":
            raise DataError(
                f"{src}: column {columns[empty[0]]!r} has no values in series {name!r}, "
                f"so --missing {missing} cannot fill it"
            )
        values, keep = _fill(values, t, missing, had_gaps)
        if not keep.any():
            raise DataError(
                f"{src}: series {name!r} has no complete rows left after --missing drop"
            )
        kept.append((values, t[keep], rows[keep]))

    kind = "none" if time is None else "datetime" if times.dtype.kind == "M" else "number"
    steps = [_steps(t) for _, t, _ in kept]
    pooled = np.concatenate(steps)
    scale, shown = _unit(kind, time_unit, pooled, time, src)
    overall = float(np.median(pooled)) / scale if pooled.size else 1.0
    dts = []
    for step in steps:
        dt = np.empty(len(step) + 1, dtype=np.float32)
        dt[1:] = step / scale
        dt[0] = np.median(dt[1:]) if len(step) else overall
        dts.append(dt)
    return SeriesSet(
        columns=columns,
        targets=targets,
        ids=ids,
        values=[v.astype(np.float32) for v, _, _ in kept],
        times=[t for _, t, _ in kept],
        dt=dts,
        rows=[r.astype(np.int64) for _, _, r in kept],
        time_column=time,
        id_column=id,
        time_unit=shown,
        labels=None if labels is None else [labels[r] for _, _, r in kept],
        source=src,
        splits=None if splits is None else [splits[r] for _, _, r in kept],
        split_column=split,
    )


def _as_names(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    if not all(isinstance(v, str) for v in items):
        raise TypeError(f"{what} must be a column name or a list of names; got {value!r}")
    return list(dict.fromkeys(items))  # in order, each once


def _resolve_columns(
    frame: pd.DataFrame,
    names: list[str],
    src: str,
    targets: Any,
    features: Any,
    time: str | None,
    id: str | None,
    label: str | None,
    split: str | None = None,
) -> tuple[list[str], list[str]]:
    targets = _as_names(targets, "targets")
    if not targets and label is None:  # a classifier has a label column and no targets
        raise DataError(f"{src}: give at least one target column (or a label column)")
    given = (("time", time), ("id", id), ("label", label), ("split", split))
    roles = {c: r for r, c in given if c is not None}
    chosen = _as_names(features, "features")
    for col in [*roles, *targets, *chosen]:
        if col not in names:
            close = difflib.get_close_matches(col, names, n=1)
            shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
            hint = f"did you mean {close[0]!r}?" if close else f"the columns are: {shown}"
            raise DataError(f"column {col!r} not found in {src}; {hint}")
        if names.count(col) > 1:
            raise DataError(f"{src}: column {col!r} appears more than once")
    if len(roles) < sum(c is not None for _, c in given):
        named = ", ".join(r for r, c in given if c is not None)
        raise DataError(f"{src}: the {named} columns must be different columns")
    for col in [*targets, *chosen]:
        if col in roles:
            kind = "target" if col in targets else "feature"
            raise DataError(f"{src}: column {col!r} is the {roles[col]} column; not a {kind} too")
    if features is None:
        chosen = [c for c in names if c not in roles and c not in targets and _numeric(frame[c])]
    return chosen + [t for t in targets if t not in chosen], targets


def _numeric(s: pd.Series) -> bool:
    """Numbers, or text whose non-empty cells are mostly numbers (a typo must not hide a
    sensor column: it is taken, and its bad cell reported)."""
    api = _pandas().api.types
    if api.is_bool_dtype(s.dtype) or api.is_numeric_dtype(s.dtype):
        return not api.is_complex_dtype(s.dtype)
    if api.is_datetime64_any_dtype(s.dtype) or api.is_timedelta64_dtype(s.dtype):
        return False
    text, missing = _text(s.head(1000))  # a sample decides; the whole column is checked later
    parsed = _pandas().to_numeric(text[~missing], errors="coerce")
    return bool(parsed.size and np.mean(~np.isnan(parsed)) >= 0.5)


def _text(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Cells as stripped strings (object array) and which of them are missing."""
    missing = np.array(s.isna(), dtype=bool)  # a writable copy
    text = s.astype(object).where(~missing, "").astype(str).str.strip()
    missing |= text.str.lower().isin(_NA_STRINGS).to_numpy(dtype=bool)
    return text.to_numpy(dtype=object), missing


def _numbers(s: pd.Series, col: str, where: _Where) -> np.ndarray:
    pd = _pandas()
    api = pd.api.types
    if api.is_bool_dtype(s.dtype) or (
        api.is_numeric_dtype(s.dtype) and not api.is_complex_dtype(s.dtype)
    ):
        out = s.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        text, missing = _text(s)
        out = np.full(len(s), np.nan)
        out[~missing] = pd.to_numeric(text[~missing], errors="coerce")
        bad = np.isnan(out) & ~missing
        if bad.any():
            row = int(np.argmax(bad))
            hint = ""
            if re.fullmatch(r"[+-]?\d+,\d+", text[row]):
                hint = " (a decimal comma? write 1.5, not 1,5)"
            raise DataError(
                f"{where.source}: column {col!r}, {where(row)}: {text[row]!r} is not a number{hint}"
            )
    if np.isinf(out).any():
        row = int(np.argmax(np.isinf(out)))
        raise DataError(
            f"{where.source}: column {col!r}, {where(row)}: {out[row]} is not a finite number "
            "(inf is refused under every --missing policy)"
        )
    if np.isnan(out).all():
        raise DataError(f"{where.source}: column {col!r} is entirely empty")
    return out


def _times(s: pd.Series, col: str, where: _Where) -> np.ndarray:
    """Timestamps as naive UTC datetime64[ns], or numbers as float64."""
    pd = _pandas()
    api = pd.api.types
    src = where.source
    if api.is_datetime64_any_dtype(s.dtype):
        stamps = pd.to_datetime(s, utc=True)
        missing = stamps.isna().to_numpy()
    elif api.is_numeric_dtype(s.dtype) and not api.is_bool_dtype(s.dtype):
        numbers = s.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(numbers)
        if bad.any():
            row = int(np.argmax(bad))
            what = "missing time" if np.isnan(numbers[row]) else f"{numbers[row]} is not a time"
            raise DataError(f"{src}: time column {col!r}, {where(row)}: {what}")
        return numbers
    else:
        text, missing = _text(s)
        first = pd.to_numeric(text[~missing][:1], errors="coerce")  # a cheap first look
        numbers = None
        if first.size and np.isfinite(first).all():
            numbers = pd.to_numeric(text[~missing], errors="coerce")
        if numbers is not None and np.isfinite(numbers).all():
            out = np.full(len(s), np.nan)
            out[~missing] = numbers
            return _times(pd.Series(out), col, where)
        with warnings.catch_warnings():  # "could not infer format": the mixed pass handles it
            warnings.simplefilter("ignore")
            stamps = pd.to_datetime(pd.Series(text).where(~missing), errors="coerce", utc=True)
            retry = (stamps.isna() & ~missing).to_numpy()
            if retry.any():  # cells in another format than the first: parse them one by one
                stamps[retry] = pd.to_datetime(
                    pd.Series(text[retry]), errors="coerce", utc=True, format="mixed"
                ).to_numpy()
        bad = (stamps.isna() & ~missing).to_numpy()
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(
                f"{src}: time column {col!r}, {where(row)}: cannot read {text[row]!r} "
                "as a timestamp"
            )
    if missing.any():
        raise DataError(
            f"{src}: time column {col!r}, {where(int(np.argmax(missing)))}: missing time"
        )
    return stamps.dt.tz_convert(None).to_numpy(dtype="datetime64[ns]")


def _strings(s: pd.Series, col: str, role: str, where: _Where) -> np.ndarray:
    """Ids or labels as strings (integral floats without ".0"); a missing one is an error."""
    pd = _pandas()
    missing = s.isna().to_numpy(dtype=bool)
    if missing.any():
        row = int(np.argmax(missing))
        raise DataError(f"{where.source}: {role} column {col!r}, {where(row)}: missing {role}")
    if pd.api.types.is_float_dtype(s.dtype):
        v = s.to_numpy(dtype=np.float64)
        if (v == np.round(v)).all() and (np.abs(v) < 2**53).all():  # 1.0 -> "1", not "1.0"
            s = pd.Series(v.astype(np.int64))
    return s.astype(str).str.strip().to_numpy(dtype=object)


def _splits(s: pd.Series, col: str, where: _Where) -> np.ndarray:
    """The split column's values, each `train`, `val` or `test` (spaces and case ignored)."""
    text, missing = _text(s)
    values = np.array([v.lower() for v in text], dtype=object)
    bad = missing | ~np.isin(values, SPLITS)
    if bad.any():
        row = int(np.argmax(bad))
        got = "a missing value" if missing[row] else repr(text[row])
        raise DataError(
            f"{where.source}: split column {col!r}, {where(row)}: {got}; each row must say "
            "train, val or test"
        )
    return values


def _show(value: Any) -> str:
    if isinstance(value, np.datetime64):
        return str(_pandas().Timestamp(value))
    return np.format_float_positional(float(value), trim="-")


def _check_order(t: np.ndarray, rows: np.ndarray, col: str, name: str, where: _Where) -> None:
    if len(t) < 2:
        return
    steps = np.diff(t)
    bad = steps <= steps.dtype.type(0)
    if not bad.any():
        return
    k = int(np.argmax(bad)) + 1
    head = f"{where.source}: time column {col!r}, {where(int(rows[k]))}"
    if name:
        head += f" (series {name!r})"
    if steps[k - 1] == steps.dtype.type(0):
        raise DataError(f"{head}: duplicate time {_show(t[k])}; each time may appear once")
    raise DataError(
        f"{head}: time goes backwards, {_show(t[k])} after {_show(t[k - 1])} at "
        f"{where(int(rows[k - 1]))}; sort the rows by time"
    )


def _fill(
    values: np.ndarray, t: np.ndarray, missing: str, had_gaps: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Apply the missing-value policy to one series: (new values, which rows are kept)."""
    gaps = np.isnan(values)
    n = len(values)
    keep = np.ones(n, dtype=bool)
    if missing == "drop":
        keep = ~gaps.any(axis=1)
        return values[keep], keep
    if not gaps.any():
        if missing == "mask":
            values = np.concatenate([values, np.zeros((n, int(had_gaps.sum())))], axis=1)
        return values, keep
    if missing == "interpolate":
        # linear in time; np.interp holds the first/last observation beyond the edges
        x = (t - t[0]).astype("timedelta64[ns]").astype(np.float64) if t.dtype.kind == "M" else t
        values = values.copy()
        for j in np.flatnonzero(gaps.any(axis=0)):
            seen = ~gaps[:, j]
            values[~seen, j] = np.interp(x[~seen], x[seen], values[seen, j])
        return values, keep
    # mask: forward-fill from the last observation, back-fill before the first one
    last = np.where(gaps, 0, np.arange(n)[:, None])
    np.maximum.accumulate(last, axis=0, out=last)
    filled = np.take_along_axis(values, last, axis=0)
    first = np.argmax(~gaps, axis=0)  # (C,) the first observed row of each column
    before = np.arange(n)[:, None] < first
    filled = np.where(before, values[first, np.arange(values.shape[1])], filled)
    return np.concatenate([filled, gaps[:, had_gaps].astype(np.float64)], axis=1), keep


def _steps(t: np.ndarray) -> np.ndarray:
    """Time differences as float64: nanoseconds for timestamps."""
    if t.dtype.kind == "M":
        return np.diff(t.astype("datetime64[ns]").astype(np.int64)).astype(np.float64)
    return np.diff(t).astype(np.float64)


def _unit(
    kind: str, time_unit: Any, steps: np.ndarray, col: str | None, src: str
) -> tuple[float, float | str | None]:
    """(divisor applied to the steps, the unit as reported in SeriesSet.time_unit)."""
    pd = _pandas()
    if kind == "none":
        if time_unit is not None:
            raise DataError(f"{src}: time_unit={time_unit!r} needs a time column (--time)")
        return 1.0, None
    if kind == "number":
        if time_unit is None:
            median = float(np.median(steps)) if steps.size else 1.0
            return median, median
        try:
            value = float(time_unit)
        except (TypeError, ValueError):
            value = float("nan")
        if isinstance(time_unit, bool) or not (np.isfinite(value) and value > 0):
            raise DataError(
                f"{src}: time column {col!r} holds numbers, so time_unit must be a positive "
                f"number; got {time_unit!r}"
            )
        return value, value
    if time_unit is None:
        median = round(float(np.median(steps))) if steps.size else 10**9
        return float(median), _duration(median)
    bad = isinstance(time_unit, (int, float, np.number)) or (
        isinstance(time_unit, str) and re.fullmatch(r"\s*[+-]?[\d.]+\s*", time_unit)
    )
    try:
        nanos = None if bad else pd.Timedelta(time_unit).value
    except (TypeError, ValueError):
        nanos = None
    if nanos is None or nanos <= 0:
        raise DataError(
            f"{src}: time column {col!r} holds timestamps, so time_unit must be a duration such "
            f"as '1s', '15min', '1h' or '1D'; got {time_unit!r}"
        )
    return float(nanos), time_unit if isinstance(time_unit, str) else _duration(nanos)


def _duration(nanos: int) -> str:
    """A pandas Timedelta string for a whole number of nanoseconds: 3600e9 -> '1h'."""
    for unit, size in _DURATIONS:
        if nanos % size == 0:
            return f"{nanos // size}{unit}"
    return f"{nanos}ns"

"""The data layer: reading, validation, missing values, time, ids, scaling, splits, windows."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from liquidnets.data import (
    MISSING_POLICIES,
    DataError,
    Scaler,
    load_series,
    make_windows,
    read_table,
    split_by_time,
)

pd = pytest.importorskip("pandas")

HOURLY = "time,temperature,co2\n" + "".join(
    f"2024-01-01 {h:02d}:00,{20 + h / 2},{400 + 10 * h}\n" for h in range(12)
)


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def fails(match: str, fn, *args, **kwargs) -> str:
    """Assert that fn raises DataError matching `match`, with a one-line message."""
    with pytest.raises(DataError, match=match) as info:
        fn(*args, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


# ------------------------------------------------------------------------------ reading


def test_import_needs_neither_pandas_nor_torch_in_the_data_modules():
    code = (
        "import sys; sys.modules['pandas'] = None; import liquidnets.data as d; "
        "import inspect; src = ''.join(inspect.getsource(m) for m in "
        "(d.errors, d.table, d.windows)); assert 'import torch' not in src; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


def test_csv_and_parquet_read_the_same(tmp_path):
    pytest.importorskip("pyarrow")
    csv = write(tmp_path, "d.csv", HOURLY)
    read_table(csv).to_parquet(tmp_path / "d.parquet")
    a = load_series(csv, targets="temperature", time="time")
    b = load_series(tmp_path / "d.parquet", targets="temperature", time="time")
    assert a.columns == b.columns == ["co2", "temperature"]
    np.testing.assert_array_equal(a.values[0], b.values[0])
    np.testing.assert_array_equal(a.dt[0], b.dt[0])
    np.testing.assert_array_equal(a.times[0], b.times[0])


@pytest.mark.parametrize(("name", "sep"), [("c.csv", ","), ("s.csv", ";"), ("t.tsv", "\t")])
def test_delimiter_is_sniffed(tmp_path, name, sep):
    path = write(tmp_path, name, HOURLY.replace(",", sep))
    frame = read_table(path)
    assert list(frame.columns) == ["time", "temperature", "co2"]
    assert frame["co2"].tolist()[:2] == [400, 410]


def test_gzip_csv_and_bom(tmp_path):
    path = write(tmp_path, "d.csv.gz", gzip.compress(("\ufeff" + HOURLY).encode()))
    assert list(read_table(path).columns) == ["time", "temperature", "co2"]


def test_missing_file(tmp_path):
    fails("no such file: .*nope.csv", read_table, tmp_path / "nope.csv")


def test_empty_file(tmp_path):
    fails("e.csv is empty", read_table, write(tmp_path, "e.csv", ""))
    fails("w.csv is empty", read_table, write(tmp_path, "w.csv", "\n \n"))


def test_header_without_rows(tmp_path):
    fails("h.csv has a header but no data rows", read_table, write(tmp_path, "h.csv", "a,b\n"))


def test_unknown_extension(tmp_path):
    fails(
        r"d.xlsx: unknown file type \.xlsx; use \.csv", read_table, write(tmp_path, "d.xlsx", "x")
    )


def test_wrong_encoding_names_it_and_suggests_latin1(tmp_path):
    path = write(tmp_path, "l.csv", "time,température\n0,1.5\n".encode("latin-1"))
    msg = fails(r"l.csv: byte 0xe9 at offset 9 \(line 1\) is not valid utf-8", read_table, path)
    assert "--encoding latin-1" in msg
    assert list(read_table(path, encoding="latin-1").columns) == ["time", "température"]


def test_unknown_encoding(tmp_path):
    fails(
        "unknown encoding 'klingon'",
        read_table,
        write(tmp_path, "d.csv", "a\n1\n"),
        encoding="klingon",
    )


def test_bad_parquet(tmp_path):
    pytest.importorskip("pyarrow")
    fails("b.parquet: not a readable Parquet file", read_table, write(tmp_path, "b.parquet", "x"))


def test_bad_gzip(tmp_path):
    fails("b.csv.gz: not a valid gzip file", read_table, write(tmp_path, "b.csv.gz", "plain"))


# ------------------------------------------------------------------------------ time


def test_datetimes_infer_the_median_step(tmp_path):
    text = "time,v\n" + "".join(f"2024-01-01 {h:02d}:00,{h}\n" for h in (0, 1, 2, 4, 5, 6))
    s = load_series(write(tmp_path, "d.csv", text), targets="v", time="time")
    assert s.time_unit == "1h"
    assert s.dt[0].tolist() == [1, 1, 1, 2, 1, 1]  # the first row gets the median step
    assert s.times[0].dtype == np.dtype("datetime64[ns]")
    assert s.rows[0].tolist() == list(range(6))


def test_datetimes_in_an_explicit_unit(tmp_path):
    s = load_series(write(tmp_path, "d.csv", HOURLY), targets="co2", time="time", time_unit="15min")
    assert s.time_unit == "15min"
    assert set(s.dt[0].tolist()) == {4.0}


def test_irregular_steps(tmp_path):
    text = "t,v\n" + "".join(f"2024-05-01T10:{m:02d}:00,{m}\n" for m in (0, 1, 2, 4, 5, 11))
    s = load_series(write(tmp_path, "d.csv", text), targets="v", time="t")
    assert s.time_unit == "1min"
    assert s.dt[0].tolist() == [1, 1, 1, 2, 1, 6]  # the first row gets the median step


def test_numeric_time(tmp_path):
    path = write(tmp_path, "d.csv", "t,v\n0,1\n0.5,2\n1.0,3\n2.0,4\n")
    s = load_series(path, targets="v", time="t")
    assert s.time_unit == 0.5 and s.dt[0].tolist() == [1, 1, 1, 2]
    s = load_series(path, targets="v", time="t", time_unit="0.25")  # the CLI passes text
    assert s.time_unit == 0.25 and s.dt[0].tolist() == [2, 2, 2, 4]


def test_no_time_column_uses_row_order(tmp_path):
    s = load_series(write(tmp_path, "d.csv", HOURLY), targets="co2")
    assert s.time_column is None and s.time_unit is None
    assert s.dt[0].tolist() == [1.0] * 12 and s.times[0].tolist() == list(range(12))
    assert s.columns == ["temperature", "co2"] and s.target_index == [1]


def test_time_zones_become_utc(tmp_path):
    text = "t,v\n2024-01-01T00:00:00+01:00,1\n2024-01-01T00:30:00+01:00,2\n"
    s = load_series(write(tmp_path, "d.csv", text), targets="v", time="t")
    assert str(s.times[0][0]) == "2023-12-31T23:00:00.000000000"


# ------------------------------------------------------------------------------ ids


def long_csv(tmp_path: Path) -> Path:
    rows = [
        f"{sid},2024-01-01 {h:02d}:00,{base + h}"
        for h in range(10)
        for sid, base in (("A", 0), ("B", 100))
    ]
    return write(tmp_path, "long.csv", "id,time,v\n" + "\n".join(rows) + "\n")


def test_long_format_splits_series_and_windows_never_cross(tmp_path):
    s = load_series(long_csv(tmp_path), targets="v", time="time", id="id")
    assert len(s) == 2 and s.ids == ["A", "B"] and s.id_column == "id"
    assert s.values[1][:, 0].tolist() == list(range(100, 110))
    assert s.rows[0].tolist() == list(range(0, 20, 2))  # interleaved in the file
    w = make_windows(s, lookback=3, horizon=2)
    assert len(w) == 2 * (10 - 3 - 2 + 1)
    for x, y, i in zip(w.x[:, :, 0], w.y[:, :, 0], w.series):
        seq = np.concatenate([x, y])
        assert (seq >= 100).all() == bool(i) and (np.diff(seq) == 1).all()


def test_ids_are_validated_separately(tmp_path):
    text = "id,t,v\nA,0,1\nB,0,1\nA,1,2\nB,2,2\nB,1,3\n"
    fails(
        r"d.csv: time column 't', row 4 \(line 6\) \(series 'B'\): time goes backwards, "
        r"1 after 2 at row 3 \(line 5\)",
        load_series,
        write(tmp_path, "d.csv", text),
        targets="v",
        time="t",
        id="id",
    )


# ------------------------------------------------------------------------------ missing values

GAPS = "t,a,b\n0,,10\n1,2,\n2,,\n3,4,13\n5,5,15\n"


def test_missing_error_names_the_row_and_the_policies(tmp_path):
    msg = fails(
        r"d.csv: column 'a', row 0 \(line 2\): missing value",
        load_series,
        write(tmp_path, "d.csv", GAPS),
        targets="b",
        time="t",
    )
    assert "--missing mask|interpolate|drop" in msg


def test_missing_mask_adds_columns_and_fills_forward(tmp_path):
    s = load_series(write(tmp_path, "d.csv", GAPS), targets="b", time="t", missing="mask")
    assert s.columns == ["a", "b", "a__missing", "b__missing"] and s.target_index == [1]
    assert s.values[0].tolist() == [
        [2, 10, 1, 0],  # before the first observation: back-filled
        [2, 10, 0, 1],
        [2, 10, 1, 1],
        [4, 13, 0, 0],
        [5, 15, 0, 0],
    ]


def test_missing_interpolate_is_linear_in_time(tmp_path):
    s = load_series(write(tmp_path, "d.csv", GAPS), targets="b", time="t", missing="interpolate")
    np.testing.assert_allclose(s.values[0][:, 0], [2, 2, 3, 4, 5])  # edge: nearest observation
    np.testing.assert_allclose(s.values[0][:, 1], [10, 11, 12, 13, 15])
    text = "t,v\n0,0\n1,\n4,8\n"  # with time the gap at t=1 is 2; in row order it would be 4
    s = load_series(write(tmp_path, "i.csv", text), targets="v", time="t", missing="interpolate")
    assert s.values[0][1, 0] == pytest.approx(2.0)
    s = load_series(write(tmp_path, "i.csv", text), targets="v", features=[], missing="interpolate")
    assert s.columns == ["v"] and s.values[0][1, 0] == pytest.approx(4.0)


def test_missing_drop_removes_rows(tmp_path):
    s = load_series(write(tmp_path, "d.csv", GAPS), targets="b", time="t", missing="drop")
    assert s.values[0].tolist() == [[4, 13], [5, 15]] and s.rows[0].tolist() == [3, 4]
    assert s.times[0].tolist() == [3, 5]
    s = load_series(write(tmp_path, "d.csv", GAPS), targets="b", missing="drop")
    assert s.dt[0].tolist() == [1, 1]  # row positions 3, 4: no gap between the kept rows


@pytest.mark.parametrize("missing", MISSING_POLICIES)
def test_inf_is_refused_under_every_policy(tmp_path, missing):
    path = write(tmp_path, "d.csv", "v,w\n1,2\n-inf,3\n")
    fails(
        r"d.csv: column 'v', row 1 \(line 3\): -inf is not a finite number",
        load_series,
        path,
        targets="v",
        missing=missing,
    )


def test_unknown_missing_policy(tmp_path):
    msg = fails(
        "unknown missing-value policy 'zero'",
        load_series,
        write(tmp_path, "d.csv", GAPS),
        targets="b",
        missing="zero",
    )
    assert "error, mask, interpolate, drop" in msg


# ------------------------------------------------------------------------- bad columns and values


def test_unknown_column_suggests_a_close_name(tmp_path):
    fails(
        "column 'tempreature' not found in d.csv; did you mean 'temperature'?",
        load_series,
        write(tmp_path, "d.csv", HOURLY),
        targets="tempreature",
    )


def test_unknown_column_lists_the_columns(tmp_path):
    fails(
        "column 'zzz' not found in d.csv; the columns are: time, temperature, co2",
        load_series,
        write(tmp_path, "d.csv", HOURLY),
        targets="co2",
        features=["zzz"],
    )


def test_non_numeric_value_names_column_row_line_and_value(tmp_path):
    text = HOURLY + "".join(f"2024-01-02 {h:02d}:00,1,{h}\n" for h in range(4)) + "x,1,abc\n"
    fails(
        r"d.csv: column 'co2', row 16 \(line 18\): 'abc' is not a number",
        load_series,
        write(tmp_path, "d.csv", text),
        targets="co2",
    )


def test_lines_count_blank_lines_and_decimal_commas_get_a_hint(tmp_path):
    path = write(tmp_path, "d.csv", "\na;b\n1;2\n\n3;4,5\n")
    msg = fails(
        r"d.csv: column 'b', row 1 \(line 5\): '4,5' is not a number",
        load_series,
        path,
        targets="b",
    )
    assert "decimal comma" in msg


def test_text_column_with_a_typo_is_still_a_feature(tmp_path):
    path = write(tmp_path, "d.csv", "a,b,site\n1,2,x\n2,oops,y\n3,4,z\n")
    fails(r"column 'b', row 1 \(line 3\): 'oops' is not a number", load_series, path, targets="a")


def test_unsorted_timestamps(tmp_path):
    text = "t,v\n2024-01-01 00:00,1\n2024-01-01 02:00,2\n2024-01-01 01:00,3\n"
    fails(
        r"d.csv: time column 't', row 2 \(line 4\): time goes backwards, 2024-01-01 01:00:00 "
        r"after 2024-01-01 02:00:00 at row 1 \(line 3\); sort the rows by time",
        load_series,
        write(tmp_path, "d.csv", text),
        targets="v",
        time="t",
    )


def test_duplicate_timestamps(tmp_path):
    text = "t,v\n2024-01-01 00:00,1\n2024-01-01 01:00,2\n2024-01-01 01:00,3\n"
    fails(
        r"d.csv: time column 't', row 2 \(line 4\): duplicate time 2024-01-01 01:00:00",
        load_series,
        write(tmp_path, "d.csv", text),
        targets="v",
        time="t",
    )


def test_unparseable_timestamp(tmp_path):
    text = "t,v\n2024-01-01 00:00,1\n2024-01-01 01:00,2\nyesterday,3\n"
    fails(
        r"d.csv: time column 't', row 2 \(line 4\): cannot read 'yesterday' as a timestamp",
        load_series,
        write(tmp_path, "d.csv", text),
        targets="v",
        time="t",
    )


def test_missing_timestamp(tmp_path):
    text = "t,v\n2024-01-01 00:00,1\n,2\n"
    fails(
        r"time column 't', row 1 \(line 3\): missing time",
        load_series,
        write(tmp_path, "d.csv", text),
        targets="v",
        time="t",
    )


@pytest.mark.parametrize("role", ["targets", "features"])
def test_entirely_empty_column(tmp_path, role):
    path = write(tmp_path, "d.csv", "a,b,c\n1,,3\n2,,4\n")
    kwargs = {"targets": "b"} if role == "targets" else {"targets": "a", "features": ["b"]}
    fails("d.csv: column 'b' is entirely empty", load_series, path, missing="mask", **kwargs)


def test_bad_time_units(tmp_path):
    path = write(tmp_path, "d.csv", HOURLY)
    fails(
        "holds timestamps, so time_unit must be a duration such as '1s'",
        load_series,
        path,
        targets="co2",
        time="time",
        time_unit=5,
    )
    numeric = write(tmp_path, "n.csv", "t,v\n0,1\n1,2\n")
    fails(
        "holds numbers, so time_unit must be a positive number; got '1h'",
        load_series,
        numeric,
        targets="v",
        time="t",
        time_unit="1h",
    )
    fails(r"time_unit=2 needs a time column", load_series, numeric, targets="v", time_unit=2)


def test_missing_id_and_label(tmp_path):
    path = write(tmp_path, "d.csv", "id,y,v\nA,on,1\n,off,2\nB,,3\n")
    fails(r"id column 'id', row 1 \(line 3\): missing id", load_series, path, targets="v", id="id")
    fails(
        r"label column 'y', row 2 \(line 4\): missing label",
        load_series,
        path,
        targets="v",
        label="y",
    )


def test_a_column_in_two_roles(tmp_path):
    fails(
        "column 'co2' is the time column; not a target too",
        load_series,
        write(tmp_path, "d.csv", HOURLY),
        targets="co2",
        time="co2",
    )


# ------------------------------------------------------------------------------ scaler


def frame_series(values, **kwargs):
    return load_series(pd.DataFrame(values), **kwargs)


def test_scaler_is_fitted_on_training_rows_only():
    a = np.arange(20.0)
    s = frame_series({"a": a, "k": np.ones(20)}, targets="a")
    parts = split_by_time(s, val=0.25, test=0.25)
    fit = Scaler.fit([v[p] for v, p in zip(s.values, parts["train"])], s.columns)
    assert fit.mean.tolist() == [1.0, 4.5] and fit.std[0] == 1.0  # constant column: std 1
    changed = a.copy()
    changed[15:] = 1e6  # test rows only
    s2 = frame_series({"a": changed, "k": np.ones(20)}, targets="a")
    assert Scaler.fit([v[p] for v, p in zip(s2.values, parts["train"])], s2.columns) == fit
    changed[0] = 1e6  # a training row
    s3 = frame_series({"a": changed, "k": np.ones(20)}, targets="a")
    assert Scaler.fit([v[p] for v, p in zip(s3.values, parts["train"])], s3.columns) != fit


def test_scaler_round_trip_masks_and_dict():
    rng = np.random.default_rng(0)
    x = rng.normal(5, 3, (50, 3)).astype(np.float32)
    x[:, 2] = rng.integers(0, 2, 50)
    scaler = Scaler.fit([x[:30], x[30:]], ["a", "b", "a__missing"])
    z = scaler.transform(x)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z[:, :2].mean(0), 0, atol=1e-5)
    np.testing.assert_array_equal(z[:, 2], x[:, 2])  # mask columns unscaled
    np.testing.assert_allclose(scaler.inverse(z), x, rtol=1e-5)
    np.testing.assert_allclose(scaler.inverse(z[:, None, 1:2], index=[1])[:, 0], x[:, 1:2], 1e-5)
    again = Scaler.from_dict(json.loads(json.dumps(scaler.to_dict())))
    assert again == scaler
    with pytest.raises(ValueError, match="last axis must hold 3 columns"):
        scaler.transform(x[:, :2])


def test_scaler_needs_rows():
    fails("no training rows", Scaler.fit, [np.empty((0, 2))], ["a", "b"])


# ------------------------------------------------------------------------------ split and windows


def test_split_by_time_order_and_sizes():
    s = frame_series({"g": ["a"] * 20 + ["b"] * 7, "v": np.arange(27.0)}, targets="v", id="g")
    parts = split_by_time(s)
    assert parts["train"] == [slice(0, 14), slice(0, 5)]
    assert parts["val"] == [slice(14, 17), slice(5, 6)]
    assert parts["test"] == [slice(17, 20), slice(6, 7)]
    assert split_by_time(s, val=0, test=0.5)["val"] == [slice(10, 10), slice(3, 3)]


def test_split_too_short():
    s = frame_series({"g": ["a"] * 5 + ["b"] * 2, "v": np.arange(7.0)}, targets="v", id="g")
    fails(r"<frame>: series 'b' has 2 rows: too few .* \(needs 3\)", split_by_time, s)
    fails(r"val \+ test must be below 1", split_by_time, s, val=0.5, test=0.5)


def test_windows_shapes_and_alignment():
    t = np.array([0, 1, 2, 4, 5, 6, 7, 9, 10, 11], dtype=float)
    s = frame_series({"t": t, "f": t * 10, "y": t + 0.5}, targets="y", time="t")
    w = make_windows(s, lookback=4, horizon=2)
    assert w.x.shape == (5, 4, 2) and w.dt.shape == (5, 4) and w.y.shape == (5, 2, 1)
    assert w.x.dtype == w.dt.dtype == w.y.dtype == np.float32 and w.label is None
    assert w.end.tolist() == [3, 4, 5, 6, 7] and w.series.tolist() == [0] * 5
    for k, e in enumerate(w.end):
        np.testing.assert_array_equal(w.x[k], s.values[0][e - 3 : e + 1])
        np.testing.assert_array_equal(w.y[k, :, 0], s.values[0][e + 1 : e + 3, 1])
        np.testing.assert_array_equal(w.dt[k], s.dt[0][e - 3 : e + 1])
    assert w.dt[0].tolist() == [1, 1, 1, 2]
    assert make_windows(s, lookback=4, horizon=2, stride=2).end.tolist() == [3, 5, 7]


def test_windows_with_parts_with_and_without_context():
    s = frame_series({"v": np.arange(20.0)}, targets="v")
    val = split_by_time(s, val=0.25, test=0.25)["val"]  # rows 10..14
    w = make_windows(s, lookback=4, horizon=1, parts=val)
    assert w.y[:, 0, 0].tolist() == [10, 11, 12, 13, 14]  # every target inside the part
    assert w.x[0, :, 0].tolist() == [6, 7, 8, 9]  # inputs reach back before the part
    w = make_windows(s, lookback=4, horizon=1, parts=val, context=False)
    assert w.x[0, :, 0].tolist() == [10, 11, 12, 13] and w.y[:, 0, 0].tolist() == [14]
    w = make_windows(s, lookback=3, horizon=0, parts=val, context=False)
    assert w.y.shape == (3, 0, 1) and w.end.tolist() == [12, 13, 14]


def test_windows_are_scaled_and_carry_labels():
    frame = {"v": np.arange(8.0), "cls": ["a", "a", "b", "b", "a", "b", "b", "a"]}
    s = frame_series(frame, targets="v", label="cls")
    scaler = Scaler(mean=[4.0], std=[2.0])
    w = make_windows(s, lookback=2, horizon=1, scaler=scaler)
    np.testing.assert_allclose(w.x[:, :, 0], (np.stack([np.arange(6), np.arange(1, 7)], 1) - 4) / 2)
    np.testing.assert_allclose(scaler.inverse(w.y, index=s.target_index)[:, 0, 0], np.arange(2, 8))
    assert w.label.tolist() == ["a", "b", "b", "a", "b", "b"]


def test_no_window_fits():
    s = frame_series({"g": ["a"] * 5 + ["b"] * 3, "v": np.arange(8.0)}, targets="v", id="g")
    fails(
        r"<frame> has 5 rows in its longest series: fewer than one window "
        r"\(lookback 5 \+ horizon 1\)",
        make_windows,
        s,
        lookback=5,
    )


def test_bad_window_arguments():
    s = frame_series({"v": np.arange(8.0)}, targets="v")
    fails("lookback must be at least 1; got 0", make_windows, s, lookback=0)
    fails("stride must be an integer; got 1.5", make_windows, s, lookback=2, stride=1.5)
    fails("2 parts for 1 series", make_windows, s, lookback=2, parts=[slice(0, 4)] * 2)


def test_a_large_csv_is_parsed_from_the_file_with_the_same_result(tmp_path, monkeypatch):
    from liquidnets.data import table

    path = tmp_path / "big.csv"
    t = np.arange(500)
    pd.DataFrame({"t": t, "a": np.sin(t / 7), "b": t * 0.5}).to_csv(path, index=False)
    small = load_series(path, targets="a", time="t")
    monkeypatch.setattr(table, "LARGE", 100)  # bytes: this file counts as large now
    large = load_series(path, targets="a", time="t")
    assert large.columns == small.columns
    np.testing.assert_array_equal(large.values[0], small.values[0])
    np.testing.assert_array_equal(large.dt[0], small.dt[0])
    path.write_text("t,a,a\n" + "1,2,3\n" * 50)
    with pytest.raises(DataError, match="column 'a' appears twice"):
        load_series(path, targets="a")


def test_the_scale_benchmark_runs_reduced_against_an_older_revision(tmp_path):
    pytest.importorskip("lightning")
    from benchmark_scripts import load

    scale = load("scale")
    out = tmp_path / "scale.json"
    assert scale.main(["--rows", "3000", "--threads", "1", "--batches", "5", "--before", "HEAD",
                       "--json", str(out)]) == 0  # fmt: skip
    report = json.loads(out.read_text())
    now, before = report["results"]["now"][0], report["results"]["before (HEAD)"][0]
    for r in (now, before):
        assert r["status"] == "ok" and r["peak_gib"] > 0 and r["windows_per_second"] > 0

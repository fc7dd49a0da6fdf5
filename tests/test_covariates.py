"""Covariates of a forecast: past, known-future (user columns and the calendar) and static, in
neuralforecast's names (hist_exog_list, futr_exog_list, stat_exog_list)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from liquidnets.cli import build_cli
from liquidnets.data import DataError, load_series
from liquidnets.data.covariates import calendar_names, calendar_values, with_future
from liquidnets.deploy import StreamPredictor
from liquidnets.tasks.forecast import Forecaster

TRAIN = {"max_epochs": 25, "progress_bar": False, "accelerator": "cpu", "devices": 1}


def planned(n: int = 24 * 30, seed: int = 0) -> pd.DataFrame:
    """An hourly flow whose planned boosts (known ahead, `plan`) add 3 to it."""
    t = pd.date_range("2024-01-01", periods=n, freq="h")
    rng = np.random.default_rng(seed)
    plan = (rng.random(n) < 0.2).astype(float)
    y = 10 + np.sin(2 * np.pi * t.hour / 24) + 3 * plan + 0.1 * rng.standard_normal(n)
    return pd.DataFrame({"t": t, "y": y, "plan": plan})


def test_calendar_features_follow_the_sampling_step():
    assert calendar_names(np.timedelta64(30, "m"))[:2] == ["hour_sin", "hour_cos"]
    assert calendar_names(np.timedelta64(1, "D")) == [
        "weekday_sin", "weekday_cos", "yearday_sin", "yearday_cos",
    ]  # fmt: skip
    assert calendar_names(np.timedelta64(7, "D")) == ["yearday_sin", "yearday_cos"]
    assert calendar_names(np.timedelta64(31, "D")) == ["month_sin", "month_cos"]
    assert calendar_names(np.timedelta64(365, "D")) == []
    # 2024-01-01 was a Monday, 2024-01-06 a Saturday; April is month 4 of 12
    days = np.array(["2024-01-01", "2024-01-06", "2024-04-01"], dtype="datetime64[ns]")
    weekday = calendar_values(days, ["weekday_sin", "weekday_cos"])
    angle = np.arctan2(weekday[:, 0], weekday[:, 1]) % (2 * np.pi)
    np.testing.assert_allclose(angle[:2] / (2 * np.pi) * 7, [0, 5], atol=1e-5)
    month = calendar_values(days[2:], ["month_sin", "month_cos"])
    np.testing.assert_allclose(month, [[np.sin(2 * np.pi * 3 / 12), np.cos(2 * np.pi * 3 / 12)]])


def test_a_future_covariate_becomes_a_lead_of_the_horizon():
    frame = planned(50)
    series = load_series(frame, targets="y", time="t")
    given = {"": np.arange(4.0)[:, None] + 100}
    out = with_future(series, ["plan"], ["hour_sin"], horizon=4, future=given)
    assert out.columns == ["y", "plan__ahead", "calendar_hour_sin__ahead"]
    lead = out.values[0][:, 1]
    np.testing.assert_array_equal(lead[:-4], frame["plan"].to_numpy()[4:])
    np.testing.assert_array_equal(lead[-4:], [100, 101, 102, 103])  # after the end: given
    hours = [*frame["t"].dt.hour.to_numpy()[4:].tolist(), 2, 3, 4, 5]  # extrapolated
    np.testing.assert_allclose(out.values[0][:, 2], np.sin(2 * np.pi * np.array(hours) / 24),
                               atol=1e-5)  # fmt: skip


def test_known_future_values_improve_the_forecast_and_steer_predict():
    frame = planned()
    kw = {"lookback": 24, "horizon": 6, "train": TRAIN}
    without = Forecaster("cfc", **kw).fit(frame, targets="y", time="t", features=["plan"])
    model = Forecaster("cfc", **kw).fit(frame, targets="y", time="t", futr_exog_list=["plan"])
    assert model.spec["futr_exog"] == ["plan"] and "plan__ahead" in model.spec["columns"]
    mae_with = model.backtest(frame)["metrics"]["mae"]
    mae_without = without.backtest(frame)["metrics"]["mae"]
    assert mae_with < 0.6 * mae_without, (mae_with, mae_without)
    boosts = pd.DataFrame({"plan": [0, 1, 0, 1, 0, 0]})
    quiet = pd.DataFrame({"plan": [0] * 6})
    a = model.predict(frame, futr_df=boosts)["y"].to_numpy()
    b = model.predict(frame, futr_df=quiet)["y"].to_numpy()
    assert (a[[1, 3]] - b[[1, 3]]).min() > 1.5  # the planned boosts show in the forecast
    assert abs(a[[0, 2, 4, 5]] - b[[0, 2, 4, 5]]).max() < 1.0
    with pytest.raises(ValueError, match=r"future covariates \['plan'\]: pass futr_df"):
        model.predict(frame)
    with pytest.raises(DataError, match="3 rows; the forecast needs the 6 steps"):
        model.predict(frame, futr_df=boosts.head(3))


def test_calendar_features_carry_a_weekly_pattern_the_window_cannot_see(tmp_path):
    # daily readings, lower at weekends; a 3-day window cannot tell Friday from Thursday
    t = pd.date_range("2023-01-02", periods=418, freq="D")  # Monday to a Friday
    rng = np.random.default_rng(1)
    y = 20 - 6 * (t.dayofweek >= 5) + 0.2 * rng.standard_normal(len(t))
    frame = pd.DataFrame({"day": t, "load": y})
    kw = {"lookback": 3, "horizon": 2, "base": "last", "linear": False, "train": TRAIN}
    plain = Forecaster("cfc", **kw).fit(frame, targets="load", time="day")
    model = Forecaster("cfc", **kw).fit(frame, targets="load", time="day", calendar=True)
    assert model.spec["calendar"][:2] == ["weekday_sin", "weekday_cos"]
    assert model.backtest(frame)["metrics"]["mae"] < 0.7 * plain.backtest(frame)["metrics"]["mae"]
    forecast = model.predict(frame)  # the calendar needs nothing from the user
    assert (pd.to_datetime(forecast["time"]).dt.dayofweek >= 5).all()  # Saturday, Sunday
    assert (forecast["load"] < 17).all()  # the weekend's level (14), not Friday's (20)
    model.save(tmp_path / "m")
    again = Forecaster.load(tmp_path / "m")
    pd.testing.assert_frame_equal(again.predict(frame), forecast)
    with pytest.raises(ValueError, match=r"future covariates .*weekday_sin.* to stream"):
        StreamPredictor(again)


def test_static_covariates_are_constant_inputs_per_series():
    a, b = planned(300, seed=2), planned(300, seed=3)
    a["site"], b["site"] = "a", "b"
    a["size"], b["size"] = 1.0, 2.0
    b["y"] = 2 * b["y"]
    frame = pd.concat([a, b], ignore_index=True)
    model = Forecaster("cfc", lookback=12, horizon=2, train={**TRAIN, "max_epochs": 2})
    model.fit(frame, targets="y", time="t", id="site", features=["plan"], stat_exog_list="size")
    assert model.spec["stat_exog"] == ["size"] and "size" in model.spec["columns"]
    assert set(model.predict(frame)["id"]) == {"a", "b"}
    frame.loc[5, "size"] = 3.0
    with pytest.raises(DataError, match="row 6, column 'size': a static covariate must be const"):
        Forecaster("naive", lookback=4).fit(
            frame, targets="y", time="t", id="site", stat_exog_list=["size"]
        )


def test_covariates_are_checked_in_one_line():
    frame = planned(100)
    with pytest.raises(DataError, match="'y' is a target; it cannot be known ahead"):
        Forecaster("naive", lookback=4).fit(frame, targets="y", time="t", futr_exog_list="y")
    numbers = frame.assign(t=np.arange(len(frame)))
    with pytest.raises(DataError, match="calendar features need timestamps"):
        Forecaster("naive", lookback=4).fit(numbers, targets="y", time="t", calendar=True)
    with pytest.raises(ValueError, match="need lookback > horizon"):
        Forecaster("naive", lookback=2, horizon=4).fit(
            frame, targets="y", time="t", futr_exog_list="plan"
        )


def test_the_cli_trains_with_future_columns_and_predicts_with_their_values(tmp_path):
    planned(24 * 20).to_csv(tmp_path / "flow.csv", index=False)
    pd.DataFrame({"plan": [1, 0, 0, 1]}).to_csv(tmp_path / "plan.csv", index=False)
    runner = CliRunner()
    args = [
        "train", "--data", str(tmp_path / "flow.csv"), "--time", "t", "--target", "y",
        "--horizon", "4", "--future", "plan", "--calendar", "--max-epochs", "2",
        "--out", str(tmp_path / "run"),
    ]  # fmt: skip
    result = runner.invoke(build_cli(), args)
    assert result.exit_code == 0, result.output
    predict = ["predict", str(tmp_path / "run"), "--data", str(tmp_path / "flow.csv")]
    result = runner.invoke(build_cli(), [*predict, "--out", str(tmp_path / "f.csv")])
    assert result.exit_code != 0
    assert "pass futr_df (--future-data)" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(
        build_cli(),
        [*predict, "--future-data", str(tmp_path / "plan.csv"), "--out", str(tmp_path / "f.csv")],
    )
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(tmp_path / "f.csv")) == 4

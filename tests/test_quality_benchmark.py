"""benchmarks/quality.py, reduced: the forecasting suite on two short series, two epochs."""

import json
import shlex

import numpy as np
import pytest

import benchmark_scripts

pytest.importorskip("statsforecast")
pytest.importorskip("aeon")


def test_the_forecast_suite_measures_ours_and_every_peer_on_the_same_windows(tmp_path):
    bench = benchmark_scripts.load("quality")
    out = tmp_path / "q.json"
    args = ["--suite", "forecast", "--series", "uschange,lynx", "--quick", "--threads", "1"]
    assert bench.main([*args, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    uschange, lynx = report["forecast"]["series"]
    # a quarterly series gets its season (and seasonal naive); a yearly one gets none
    assert uschange["season"] == 4 and lynx["season"] is None
    assert set(uschange["mae"]) == {
        "liquid", "lstm", "gru", "naive", "seasonal_naive", "AutoETS", "AutoTheta",
    }  # fmt: skip
    assert "seasonal_naive" not in lynx["mae"]
    for r in (uschange, lynx):
        assert all(np.isfinite(v) and v > 0 for v in r["mae"].values())
        assert r["default"]["model"] == "cfc" and r["seconds"]["cfc"] > 0
    summary = report["forecast"]["summary"]
    assert set(summary["targets"]) == {
        "naive and seasonal naive beaten on every series",
        "<= 1.02x best LSTM/GRU on >= 75% of series",
        "geomean ratio to best LSTM/GRU <= 0.97",
        "geomean ratio to best statsforecast <= 1.0",
    }
    ratio = uschange["mae"]["liquid"] / min(uschange["mae"]["lstm"], uschange["mae"]["gru"])
    assert uschange["ratio_rnn"] == pytest.approx(ratio)


def test_the_peers_forecast_from_each_origin_without_seeing_its_future():
    bench = benchmark_scripts.load("quality")
    y = np.arange(40, dtype=float)
    origins = bench.test_windows(y, horizon=3, val=0.15, test=0.15)
    assert origins[0] == 40 - 6 - 1 and origins[-1] == 40 - 3 - 1  # the test part's 6 rows
    np.testing.assert_array_equal(bench.naive_forecasts(y, origins[:1], 3), [[33, 33, 33]])
    seasonal = bench.naive_forecasts(y, origins[:1], 3, season=2)
    np.testing.assert_array_equal(seasonal, [[32, 33, 32]])


def test_the_readme_runs_the_benchmark_with_its_own_options():
    from test_readme import FENCE, ROOT, section

    blocks = [body for kind, body in FENCE.findall(section("Model quality")) if kind == "bash"]
    lines = [line.split("#")[0].strip() for b in blocks for line in b.splitlines()]
    commands = [shlex.split(line) for line in lines if line]
    assert commands
    bench = benchmark_scripts.load("quality")
    for words in commands:
        env, (python, script, *args) = words[:1], words[1:]
        assert env == ["OMP_NUM_THREADS=1"] and python == ".venv/bin/python"
        assert (ROOT / script).is_file() and script == "benchmarks/quality.py"
        options = bench.parser().parse_args(args)  # a misspelt option exits here
        assert set(options.suite.split(",")) <= set(bench.SUITES)


def test_the_verdicts_on_seed_medians_use_each_trained_models_median():
    bench = benchmark_scripts.load("quality")
    series = {
        "series": "s",
        "horizon": 1,
        "mae": {"liquid": 2.0, "lstm": 1.0, "gru": 1.5, "naive": 3.0, "AutoETS": 2.5},
        "seed_mae": {"liquid": [2.0, 0.9, 1.0], "lstm": [1.0, 1.2, 1.3], "gru": [1.5, 1.6, 1.4]},
    }
    default = bench.summarise([series])
    assert default["geomean_ratio_rnn"] == pytest.approx(2.0)  # seed 0: 2.0 / 1.0
    medians = bench.summarise([series], medians=True)
    assert medians["geomean_ratio_rnn"] == pytest.approx(1.0 / 1.2)  # medians 1.0 / 1.2
    assert medians["geomean_ratio_stat"] == pytest.approx(1.0 / 2.5)
    assert series["ratio_rnn"] == pytest.approx(2.0)  # the table keeps the default run's
    assert "| s | 2 / 0.9 / 1 | 1 / 1.2 / 1.3 | 1.5 / 1.6 / 1.4 | 0.833 |" in bench.seed_table(
        [series]
    )
    with pytest.raises(SystemExit):
        bench.parser().parse_args(["--seeds", "x"])
    with pytest.raises(SystemExit):
        bench.main(["--suite", "forecast", "--seeds", "0"])


def test_forecast_variants_compares_options_against_the_runs_baselines(tmp_path):
    bench = benchmark_scripts.load("forecast_variants")
    out = tmp_path / "v.json"
    quick = '{"units": 8, "train": {"max_epochs": 2}}'
    assert bench.main(["--series", "lynx", "--variant", f"small={quick}", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    lynx = report["series"]["lynx"]
    assert set(lynx) == {"default", "lstm", "gru", "small"}
    # the baselines get the default model's adapted lookback and its parameter count
    assert lynx["lstm"]["adapted"]["lookback"] == lynx["default"]["adapted"]["lookback"]
    assert abs(lynx["gru"]["parameters"] / lynx["default"]["parameters"] - 1) < 0.1
    assert lynx["small"]["parameters"] < lynx["default"]["parameters"]
    for part in ("val", "test"):
        ratio = lynx["default"][part] / min(lynx["lstm"][part], lynx["gru"][part])
        assert report["summary"]["default"][part]["geomean_ratio_rnn"] == pytest.approx(ratio)
    with pytest.raises(SystemExit):
        bench.parser().parse_args(["--variant", "no-json"])

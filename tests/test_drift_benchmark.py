"""`benchmarks/drift.py`: the injected drifts are what they say, and a reduced run reports
every model on every stream."""

import numpy as np
import pytest

import benchmark_scripts


def _benchmark():
    return benchmark_scripts.load("drift")


def test_injected_drifts():
    bench = _benchmark()
    t = np.arange(200.0)
    v = 100 + np.sin(2 * np.pi * t / 24)
    np.testing.assert_array_equal(bench.inject(v, "none", 50), v)
    gain, offset = bench.inject(v, "gain", 50), bench.inject(v, "offset", 50)
    np.testing.assert_array_equal(gain[:50], v[:50])
    np.testing.assert_allclose(gain[50:], 1.1 * v[50:])
    np.testing.assert_allclose(offset[50:], v[50:] + 10)
    noise = bench.inject(v, "noise", 50) - v
    assert np.all(noise[:50] == 0) and 0.8 < noise[50:].std() < 1.2
    regime = bench.inject(v, "regime", 50)
    assert np.all(regime[:50] == v[:50])
    # the daily swing triples around the 24-hour mean
    assert np.ptp(regime[100:]) == pytest.approx(3 * np.ptp(v[100:]), rel=0.1)
    with pytest.raises(ValueError, match="unknown drift"):
        bench.inject(v, "tilt", 50)


def test_reduced_run(tmp_path, capsys):
    pytest.importorskip("lightning")
    bench = _benchmark()
    report = bench.main(
        [
            "--drifts",
            "offset,none",
            "--epochs",
            "2",
            "--window",
            "100",
            "--json",
            str(tmp_path / "d.json"),
        ]
    )
    assert [r["drift"] for r in report["rows"]] == ["offset", "none"]
    offset, none = report["rows"]
    for row in (offset, none):
        for key in ("cfc_frozen", "cfc_adaptive", "lstm_frozen", "lstm_adaptive"):
            assert np.isfinite(row[key]) and row[key] > 0
    assert np.isfinite(offset["oracle"]) and "oracle" not in none
    gap = offset["cfc_frozen"] - offset["oracle"]
    if offset["recovery"] is not None:
        expected = (offset["cfc_frozen"] - offset["cfc_adaptive"]) / gap
        assert offset["recovery"] == pytest.approx(expected)
    assert set(report["latency_us"]) == {
        "cfc_frozen",
        "cfc_adaptive",
        "lstm_frozen",
        "lstm_adaptive",
    }
    out = capsys.readouterr().out
    assert "| drift | CfC frozen | CfC adaptive | oracle | recovery |" in out
    assert (tmp_path / "d.json").is_file()

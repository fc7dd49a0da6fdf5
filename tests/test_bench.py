"""The speed benchmark runs in --quick mode, through the Python API and the `liquidnets` CLI,
and reports every case with finite positive numbers and its ratios."""

from __future__ import annotations

import json
import math

import pytest

from liquidnets import bench, cli

HAVE_NCPS = bench._import_ncps() is not None
COLUMNS = ("ours", "ncps", "lstm", "gru")


def check(result: dict, table: str, with_ncps: bool) -> None:
    """Every case of the run has finite positive numbers, in the JSON and in the table."""
    s = result["settings"]
    expected = [(c, m) for c in s["cases"] for m in s["models"]]
    assert sorted((r["case"], r["model"]) for r in result["rows"]) == sorted(expected)
    for row in result["rows"]:
        for column in COLUMNS if with_ncps else ("ours", "lstm", "gru"):
            value = row["results"][column]["median"]
            # a tiny training step may fit in memory the process already holds: 0 MB is honest
            assert math.isfinite(value) and (value > 0 or row["case"] == "memory"), (row, column)
        assert set(row["ratios"]) == {"ncps/ours", "lstm/ours"}
        for ratio in row["ratios"].values():
            assert ratio is None or (math.isfinite(ratio) and ratio > 0)
        if row["case"] != "memory":
            assert row["ratios"]["lstm/ours"] is not None
            assert (row["ratios"]["ncps/ours"] is not None) == with_ncps
        if not with_ncps:
            assert "ncps" in row["results"]["ncps"]["skipped"]
    meta = result["metadata"]
    assert meta["torch"] and meta["threads"] == 2 and isinstance(meta["fast_path"], bool)

    lines = [line.strip("| ").split(" | ") for line in table.splitlines() if line[:2] == "| "]
    header = ["case", "model", "ours", "ncps", "LSTM", "GRU", "ncps/ours", "LSTM/ours"]
    assert lines[0] == header
    assert len(lines) == 1 + len(expected)
    for case, model, ours, ncps, lstm, gru, to_ncps, to_lstm in lines[1:]:
        assert model in s["models"]
        assert all(_number(v) for v in (ours, lstm, gru))
        assert _number(ncps) if with_ncps else ncps == to_ncps == "n/a"
        # memory ratios are n/a where ours needed 0 MB
        assert to_lstm.endswith("x") or case.startswith("train memory")


def _number(text: str) -> bool:
    return math.isfinite(float(text)) and float(text) >= 0


def test_quick_python_api(tmp_path, capsys):
    path = tmp_path / "speed.json"
    result = bench.main(["--quick", "--json", str(path)])
    out = capsys.readouterr().out
    assert json.loads(path.read_text()) == json.loads(json.dumps(result))
    check(result, out, with_ncps=HAVE_NCPS)
    assert f"wrote {path}" in out


def test_quick_cli(tmp_path):
    click_testing = pytest.importorskip("click.testing")
    path = tmp_path / "speed.json"
    args = ["bench", "--quick", "--json", str(path), "--models", "CfC", "--cases", "stream"]
    outcome = click_testing.CliRunner().invoke(cli.build_cli(), args)
    assert outcome.exit_code == 0, outcome.output
    result = json.loads(path.read_text())
    assert [(r["case"], r["model"]) for r in result["rows"]] == [("stream", "CfC")]
    assert result["settings"]["quick"] and result["settings"]["lengths"] == [20]
    assert "| stream step (µs/step) | CfC |" in outcome.output


def test_quick_without_ncps(tmp_path, capsys, monkeypatch):
    """Where ncps is missing, its cells say n/a and the ratios to it are None."""
    monkeypatch.setattr(bench, "_import_ncps", lambda: None)
    args = ["--quick", "--models", "CfC,LTC-NCP", "--json", str(tmp_path / "s.json")]
    result = bench.main(args)
    check(result, capsys.readouterr().out, with_ncps=False)


def test_help_shows_an_example(capsys):
    click_testing = pytest.importorskip("click.testing")
    runner = click_testing.CliRunner()
    for args in ([], ["--help"], ["bench", "--help"]):
        outcome = runner.invoke(cli.build_cli(), args)
        assert "Example:" in outcome.output and "liquidnets bench" in outcome.output, args
    with pytest.raises(SystemExit):
        bench.main(["--help"])
    assert "example:" in capsys.readouterr().out


def test_cli_without_click(monkeypatch, capsys):
    monkeypatch.setattr(cli.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SystemExit) as exit:
        cli.main(["bench", "--quick"])
    assert exit.value.code == cli.MISSING_CLICK
    assert "pip install 'liquidnets[cli]'" in cli.MISSING_CLICK


def test_bad_options():
    with pytest.raises(ValueError, match="unknown models"):
        bench.settings_from(models="CfC,GRU")
    with pytest.raises(ValueError, match="lengths"):
        bench.settings_from(lengths="0")

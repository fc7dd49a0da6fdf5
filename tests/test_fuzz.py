"""A seeded fuzz test: malformed CSVs, TOML files and model bundles. Each case ends in a
success or one clear line, never a traceback, and never changes a file outside its folder."""

import hashlib
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from liquidnets.data import DataError, load_series
from liquidnets.io import BundleError

GOOD = "time,temp,flow\n" + "".join(
    f"2024-01-01T{h:02d}:00:00,{20 + np.sin(h):.3f},{h * 0.5:.2f}\n" for h in range(24)
)
JUNK = ["", "abc", "nan", "inf", "-inf", "1e400", '"', '"x,y"', ";", "\t", "\x00", "é", "  "]


def mutate_csv(rng: random.Random) -> bytes:
    lines = GOOD.splitlines()
    for _ in range(rng.randint(1, 4)):
        kind = rng.choice(["cell", "drop", "dup", "header", "bytes", "cut", "sep", "blank"])
        i = rng.randrange(len(lines))
        cells = lines[i].split(",")
        if kind == "cell":
            cells[rng.randrange(len(cells))] = rng.choice(JUNK)
            lines[i] = ",".join(cells)
        elif kind == "drop":
            lines[i] = ",".join(cells[: rng.randrange(len(cells))])
        elif kind == "dup":
            lines[0] = lines[0] + "," + rng.choice(lines[0].split(","))
        elif kind == "header":
            lines[0] = rng.choice(["", "time", "time,temp,temp", "a;b;c", "time,,flow"])
        elif kind == "cut":
            lines = lines[: rng.randrange(1, 3)]
        elif kind == "sep":
            lines[i] = lines[i].replace(",", rng.choice([";", "\t", " "]))
        elif kind == "blank":
            lines.insert(i, "")
    data = ("\n".join(lines) + "\n").encode()
    if rng.random() < 0.2:
        at = rng.randrange(max(len(data), 1))
        data = data[:at] + bytes([rng.randrange(128, 256)]) + data[at:]
    return data


def tree(folder: Path, skip: Path | None = None) -> dict:
    """Every file under `folder` (but `skip`) and the hash of its bytes."""
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and (skip is None or skip not in p.parents)
    }


def one_line(error: Exception) -> bool:
    return len(str(error).strip().splitlines()) == 1


def test_malformed_csvs_load_or_fail_in_one_line(tmp_path):
    rng = random.Random(19)
    outcomes = {"ok": 0, "error": 0}
    for case in range(60):
        path = tmp_path / f"case{case}.csv"
        path.write_bytes(mutate_csv(rng))
        before = tree(tmp_path)
        try:
            load_series(path, targets="temp", time="time", missing=rng.choice(["error", "mask"]))
            outcomes["ok"] += 1
        except DataError as e:
            assert one_line(e), (case, str(e))
            outcomes["error"] += 1
        assert tree(tmp_path) == before
    assert outcomes["ok"] and outcomes["error"] > 20  # both paths were taken


click = pytest.importorskip("click")


def cli(*args):
    from click.testing import CliRunner

    from liquidnets.cli import build_cli

    return CliRunner().invoke(build_cli(), [str(a) for a in args])


VALUES = [8, -2, 0, 8.7, "x", "", True, [1, 2], {"a": 1}, 1e300, "auto", "12"]


def test_malformed_toml_is_one_line(tmp_path):
    from liquidnets.cli import build_cli

    rng = random.Random(7)
    train = build_cli().commands["train"]
    options = [p.name for p in train.params if p.name not in ("config", "data", "out")]
    data = tmp_path / "absent.csv"  # a config that parses reaches the data, which is absent
    for case in range(30):
        config = tmp_path / f"c{case}.toml"
        if rng.random() < 0.2:
            config.write_bytes(bytes(rng.randrange(256) for _ in range(40)))
        else:
            pairs = {rng.choice(options): rng.choice(VALUES) for _ in range(rng.randint(1, 3))}
            text = "".join(f"{k.replace('_', '-')} = {json.dumps(v)}\n" for k, v in pairs.items())
            config.write_text(text.replace("1e+300", "1e300"))
        before = tree(tmp_path)
        result = cli("train", "--config", config, "--data", data, "--target", "temp",
                     "--out", tmp_path / "r")  # fmt: skip
        assert result.exit_code != 0, (config.read_bytes(), result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            config.read_bytes(),
            result.output,
        )
        lines = [line for line in result.output.strip().splitlines() if line.startswith("Error")]
        assert len(lines) == 1, (config.read_bytes(), result.output)
        assert tree(tmp_path) == before


pytest.importorskip("lightning")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    from liquidnets.tasks import Forecaster

    frame = pd.read_csv(__import__("io").StringIO(GOOD))
    folder = tmp_path_factory.mktemp("m") / "model"
    f = Forecaster("cfc", lookback=4, units=4, train={"max_epochs": 1, "progress_bar": False})
    f.fit(frame, targets="temp", time="time", val=0.2, test=0.2).save(folder)
    return folder


def mutate_json(data, rng: random.Random):
    """`data` with one key deleted, or one value replaced by a value of another kind."""
    paths = []

    def walk(node, trail):
        if isinstance(node, dict):
            for k, v in node.items():
                paths.append((*trail, k))
                walk(v, (*trail, k))

    walk(data, ())
    trail = rng.choice(paths)
    parent = data
    for k in trail[:-1]:
        parent = parent[k]
    if rng.random() < 0.4:
        del parent[trail[-1]]
    else:
        parent[trail[-1]] = rng.choice([*VALUES[1:], None])
    return data


def test_damaged_bundles_load_or_fail_in_one_line(model, tmp_path):
    from liquidnets.tasks import Forecaster

    rng = random.Random(3)
    outcomes = {"ok": 0, "error": 0}
    for case in range(40):
        folder = tmp_path / f"b{case}"
        shutil.copytree(model, folder)
        what = rng.choice(["config.json", "metadata.json", "model.safetensors"])
        file = folder / what
        if what.endswith(".json"):
            file.write_text(json.dumps(mutate_json(json.loads(file.read_text()), rng)))
        else:
            raw = bytearray(file.read_bytes())
            at = rng.randrange(len(raw))
            raw[at : at + 8] = bytes(rng.randrange(256) for _ in range(8))
            file.write_bytes(bytes(raw[: rng.choice([len(raw), at + 1])]))
        before = tree(tmp_path)
        try:
            Forecaster.load(folder)
            outcomes["ok"] += 1
        except (BundleError, ValueError) as e:
            assert one_line(e), (case, what, str(e))
            outcomes["error"] += 1
        assert tree(tmp_path) == before
    assert outcomes["error"] > 10

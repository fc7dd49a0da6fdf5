"""The Half-Cheetah benchmark script (`benchmarks/halfcheetah.py`): the protocol's windows, and a
reduced run end to end."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "halfcheetah.py"
DATA = ROOT.parent / "shared" / "data" / "halfcheetah"

if not DATA.is_dir():
    pytest.skip(f"no Half-Cheetah data at {DATA}", allow_module_level=True)
pytest.importorskip("lightning")


@pytest.fixture(scope="module")
def hc():
    spec = importlib.util.spec_from_file_location("halfcheetah_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_windows_follow_the_protocol(hc):
    files = sorted(DATA.glob("trace_*.npy"))
    trace = np.load(files[15]).astype(np.float32)  # the first training file
    x, dt, y = hc.windows(hc.load_split(DATA, "train"))
    assert x.shape == y.shape == (10 * 97, 32, 17) and dt.shape == (970, 32)
    assert x.dtype == y.dtype == np.float32 and (dt == 1).all()
    # full windows t = 0, 10, ..., 960: the paper code's range(0, 1000 - 33, 10)
    starts = list(range(0, 1000 - 33, 10))
    assert len(starts) == 97
    for i, t in enumerate(starts):
        np.testing.assert_array_equal(x[i], trace[t : t + 32])
        np.testing.assert_array_equal(y[i], trace[t + 1 : t + 33])
    second = np.load(files[16]).astype(np.float32)
    np.testing.assert_array_equal(x[97], second[0:32])
    for split, n_files in (("val", 5), ("test", 10)):
        first = np.load(files[hc.SPLITS[split][0]]).astype(np.float32)
        x, _, y = hc.windows(hc.load_split(DATA, split))
        assert len(x) == 97 * n_files
        np.testing.assert_array_equal(y[0], first[1:33])


@pytest.fixture
def one_thread():
    # like the script's default: two threads on a busy two-core machine can be 10x slower
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_reduced_run_completes_and_writes_json(hc, tmp_path, one_thread):
    path = tmp_path / "out" / "halfcheetah.json"
    result = hc.run(
        ["ltc", "lstm"], seeds=1, epochs=2, data_dir=DATA, json_path=path, max_train_windows=64
    )
    # anchors are computed on the full training split, whatever max_train_windows is
    anchors = result["anchors"]
    assert anchors["training mean"] == pytest.approx(17.47, rel=0.03)
    assert anchors["linear least squares"] == pytest.approx(3.43, rel=0.03)
    saved = json.loads(path.read_text())
    assert set(saved) == {
        "metadata",
        "protocol",
        "anchors",
        "published",
        "published_anchors",
        "results",
    }
    assert saved["protocol"]["windows"] == {"val": 485, "test": 970, "train": 64}
    assert set(saved["results"]) == {"ltc", "lstm"}
    for r in saved["results"].values():
        assert np.isfinite(r["test_mse_mean"]) and r["epochs"] == [2]
        assert 1 <= r["best_epoch"][0] <= 2
        assert {"test_mse", "val_mse", "seconds", "val_loss"} <= set(r["runs"][0])
    table = hc.format_table(result)
    assert "LTC (published)" in table and "ltc (ours)" in table
    assert not list(path.parent.glob("*.tmp"))

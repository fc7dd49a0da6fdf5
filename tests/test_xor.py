"""The event-based XOR generator (shapes, padding, parity recoverable, seeding) and a reduced
in-process run of `benchmarks/xor.py`."""

import json
import math

import numpy as np
import pytest

import benchmark_scripts
from liquidnets.data.xor import event_xor

PAD = 32


def decode(d):
    """Rebuild each bit string from its events: run `k` is `round(dt * 32)` copies of its bit."""
    out = []
    for x, dt, m in zip(d["x"][..., 0], d["dt"], d["mask"]):
        runs = np.rint(dt[m] * PAD).astype(int)
        out.append(np.repeat(x[m].astype(np.int8), runs))
    return out


@pytest.fixture(scope="module")
def data():
    return event_xor(5000, seed=3)


def test_shapes_and_dtypes(data):
    n = 5000
    expected = {
        "x": ((n, PAD, 1), np.float32),
        "dt": ((n, PAD), np.float32),
        "mask": ((n, PAD), np.bool_),
        "y": ((n,), np.int64),
        "lengths": ((n,), np.int64),
        "events": ((n,), np.int64),
        "bits": ((n, 31), np.int8),
    }
    for key, (shape, dtype) in expected.items():
        assert data[key].shape == shape, key
        assert data[key].dtype == dtype, key


def test_lengths_in_range_and_all_used(data):
    assert data["lengths"].min() == 2 and data["lengths"].max() == 31
    assert set(np.unique(data["lengths"])) == set(range(2, 32))
    short = event_xor(200, seed=0, min_len=5, max_len=7)
    assert short["lengths"].min() >= 5 and short["lengths"].max() <= 7


def test_events_first_then_zero_padding(data):
    mask, events = data["mask"], data["events"]
    assert np.array_equal(mask, np.arange(PAD) < events[:, None])  # a prefix of each row
    assert np.all(events >= 1) and np.all(events <= data["lengths"])
    assert np.all(data["x"][~mask] == 0) and np.all(data["dt"][~mask] == 0)
    assert np.all(data["dt"][mask] > 0)
    assert set(np.unique(data["x"][mask])) <= {0.0, 1.0}
    # runs alternate: consecutive events never carry the same bit
    x = data["x"][..., 0]
    both = mask[:, 1:] & mask[:, :-1]
    assert np.all(x[:, 1:][both] != x[:, :-1][both])


def test_encoding_is_lossless_and_parity_recoverable(data):
    runs = np.rint(data["dt"] * PAD).astype(np.int64)
    assert np.allclose(runs / PAD, data["dt"])  # elapsed times are whole bit steps / 32
    assert np.array_equal(runs.sum(axis=1), data["lengths"])  # the runs tile the string
    ones = (runs * data["x"][..., 0].astype(np.int64)).sum(axis=1)
    assert np.array_equal(ones % 2, data["y"])
    for bits, length, decoded in zip(data["bits"], data["lengths"], decode(data)):
        assert np.array_equal(decoded, bits[:length])
        assert np.all(bits[length:] == 0)
    assert np.array_equal(data["bits"].sum(axis=1) % 2, data["y"])


def test_small_example():
    d = event_xor(50, seed=11, min_len=4, max_len=4, pad=8)
    for bits, x, dt, m, y in zip(d["bits"], d["x"][..., 0], d["dt"], d["mask"], d["y"]):
        runs, values, i = [], [], 0
        while i < 4:
            j = i
            while j + 1 < 4 and bits[j + 1] == bits[i]:
                j += 1
            runs.append(j - i + 1)
            values.append(int(bits[i]))
            i = j + 1
        assert np.allclose(dt[m] * 8, runs) and x[m].tolist() == values
        assert y == sum(bits) % 2


def test_seeded_and_reproducible():
    a, b, c = event_xor(300, seed=7), event_xor(300, seed=7), event_xor(300, seed=8)
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    assert not np.array_equal(a["bits"], c["bits"])


def test_labels_roughly_balanced(data):
    assert abs(data["y"].mean() - 0.5) < 0.03


def test_bad_arguments():
    with pytest.raises(ValueError, match="pad"):
        event_xor(10, seed=0, pad=16)
    with pytest.raises(ValueError, match="min_len"):
        event_xor(10, seed=0, min_len=0)
    assert event_xor(0, seed=0)["x"].shape == (0, PAD, 1)


def _benchmark():
    return benchmark_scripts.load("xor")


def test_models_map_padded_events_to_logits():
    torch = pytest.importorskip("torch")
    pytest.importorskip("lightning")
    bench = _benchmark()
    d = event_xor(6, seed=0)
    x, dt, mask = (torch.as_tensor(d[k]) for k in ("x", "dt", "mask"))
    for model in bench.MODELS:
        net = bench.build(model, units=8).eval()
        with torch.no_grad():
            logits = net(x, dt, mask)
            # padding must not matter: the same events with twice the padding, garbage in it
            wide = lambda a, fill: torch.cat([a, torch.full_like(a, fill)], dim=1)  # noqa: E731
            again = net(wide(x, 1.0), wide(dt, 0.5), wide(mask, False))
        assert logits.shape == (6, 2)
        assert torch.allclose(logits, again, atol=1e-5), model


def test_reduced_benchmark_run(tmp_path, capsys):
    pytest.importorskip("lightning")
    bench = _benchmark()
    path = tmp_path / "xor.json"
    # one model at a time, as with budgets per model: the second run keeps the first's rows
    bench.run(models=["lstm"], seeds=1, epochs=2, train=2000, test=500, json_path=path)
    report = bench.run(models=["cfc"], seeds=1, epochs=3, train=2000, test=500, json_path=path)
    saved = json.loads(path.read_text())
    assert saved == json.loads(json.dumps(report))
    assert list(saved["results"]) == ["lstm", "cfc"]
    assert saved["results"]["lstm"]["settings"]["max_epochs"] == 2
    assert saved["results"]["cfc"]["settings"]["max_epochs"] == 3
    # another data size starts afresh
    other = bench.run(models=["cfc"], seeds=1, epochs=1, train=1000, test=500, json_path=path)
    assert list(other["results"]) == ["cfc"]
    assert {"task", "config", "published", "results"} <= set(saved)
    assert saved["published"]["CfC"] == {"mean": 99.42, "sd": 0.42}
    assert saved["config"]["train"] == 1800 and saved["config"]["val"] == 200
    for model in ("cfc", "lstm"):
        r = saved["results"][model]
        assert {"accuracy", "mean", "sd", "epochs", "seconds"} <= set(r)
        assert len(r["accuracy"]) == 1 and math.isfinite(r["mean"])
        assert 0.0 <= r["mean"] <= 100.0 and 1 <= r["epochs"][0] <= 3
    out = capsys.readouterr().out
    assert "99.42 ± 0.42" in out and "Augmented LSTM" in out

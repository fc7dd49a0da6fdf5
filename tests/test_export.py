"""Step models for the edge: exported to ONNX and to .npz, run by onnxruntime and by the numpy
runtime, they match PyTorch over 1,000 streamed steps with irregular time steps, for every
cell; the numpy runtime needs nothing but numpy."""

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest
import torch

from liquidnets import LTC, CfC, runtime
from liquidnets.deploy import StreamPredictor, export
from liquidnets.wirings import NCP, AutoNCP

C = 3
CELLS = {
    "cfc": lambda: CfC(C, 16),
    "cfc_no_gate_silu_2layers": lambda: CfC(
        C, 12, mode="no_gate", activation="silu", backbone_layers=2
    ),
    "cfc_pure": lambda: CfC(C, 16, mode="pure"),
    "cfc_lecun_3layers": lambda: CfC(C, 8, backbone_layers=3, backbone_units=16),
    "cfc_gelu_no_backbone": lambda: CfC(C, 8, activation="gelu", backbone_layers=0),
    "cfc_relu": lambda: CfC(C, 8, activation="relu", backbone_units=32),
    "cfc_autoncp": lambda: CfC(C, AutoNCP(16, 4)),
    "cfc_ncp_pure": lambda: CfC(C, NCP(3, 3, 2, 2, 2, 2, 2), mode="pure"),
    "cfc_mixed_proj": lambda: CfC(C, 16, mixed_memory=True, proj_size=5),
    "ltc": lambda: LTC(C, 16),
    "ltc_autoncp_rk4": lambda: LTC(C, AutoNCP(12, 3), solver="rk4", ode_unfolds=2),
    "ltc_midpoint": lambda: LTC(C, 8, solver="midpoint", ode_unfolds=3),
    "ltc_heun_proj": lambda: LTC(C, 8, solver="heun", ode_unfolds=2, proj_size=2),
    "ltc_euler_linear_explicit": lambda: LTC(
        C,
        8,
        solver="euler",
        ode_unfolds=4,
        input_mapping="linear",
        output_mapping=None,
        implicit_param_constraints=False,
    ),
    "ltc_mixed": lambda: LTC(C, 10, mixed_memory=True),
}
FORMATS = ["npz", "onnx"]


def streamed(model, x, dt):
    """PyTorch's outputs for `x (T, B, C)`, `dt (T, B)`: one call over the whole sequence
    (equal to stepping, as tests of the layers check)."""
    with torch.no_grad():
        out, _ = model(torch.as_tensor(x).transpose(0, 1), timespans=torch.as_tensor(dt).T)
    return out.transpose(0, 1).numpy()


def seeded(name: str, fmt: str):
    """The layer `CELLS[name]` with seeded weights (onnxruntime needed for `fmt="onnx"`)."""
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    return CELLS[name]().eval()


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", CELLS)
def test_a_thousand_irregular_steps_match_pytorch(name, fmt, tmp_path):
    model = seeded(name, fmt)
    rng = np.random.default_rng(1)
    T, B = 1000, 2
    x = rng.standard_normal((T, B, C)).astype(np.float32)
    # the low-order explicit solvers are only stable for small steps; the rest take long gaps;
    # dt = 0 (two readings at one time) must leave the state as it is
    scale = 0.1 if any(s in name for s in ("euler", "midpoint", "heun")) else 1.0
    dt = (scale * rng.choice([0.0, 0.1, 0.5, 1.0, 2.5], (T, B))).astype(np.float32)
    path = export(model, tmp_path / f"{name}.{fmt}")
    step = runtime.load(path)
    got = np.stack([step.step(x[t], dt[t]) for t in range(T)])
    np.testing.assert_allclose(got, streamed(model, x, dt), rtol=1e-5, atol=1e-5)
    # a second pass after reset() repeats the first
    step.reset()
    again = np.stack([step.step(x[t], dt[t]) for t in range(5)])
    np.testing.assert_array_equal(again, got[:5])


@pytest.mark.parametrize("name", ["cfc", "ltc", "cfc_mixed_proj"])
def test_onnx_steps_with_one_number_for_dt_take_the_lean_path_and_match(
    name, tmp_path, monkeypatch
):
    model = seeded(name, "onnx")
    rng = np.random.default_rng(3)
    T, B = 300, 3
    x = rng.standard_normal((T, B, C)).astype(np.float32)
    dts = rng.choice([0.0, 0.5, 1.0, 2.5], T)  # one number per step, shared by the streams
    step = runtime.load(export(model, tmp_path / "m.onnx"))
    general = []  # the calls that took the general path
    original = runtime._Streams.step
    monkeypatch.setattr(
        runtime._Streams, "step", lambda self, *a: general.append(1) or original(self, *a)
    )
    got = []
    for t in range(T):
        if t % 50 == 7:  # now and then the general path: a list, and dt as an array
            got.append(step.step(x[t].tolist(), np.full(B, dts[t])))
        else:
            got.append(step.step(x[t], float(dts[t])))
    assert len(general) == 1 + len(range(7, T, 50))  # the first step binds the buffers
    expected = streamed(model, x, np.repeat(dts[:, None], B, axis=1).astype(np.float32))
    np.testing.assert_allclose(np.stack(got), expected, rtol=1e-5, atol=1e-5)
    step.reset()  # from zeros again, then lean again
    again = [step.step(x[t], float(dts[t])) for t in range(3)]
    np.testing.assert_allclose(np.stack(again), expected[:3], rtol=1e-6, atol=1e-6)
    # another batch size is refused: no stream's state is dropped without a word ...
    with pytest.raises(ValueError, match=r"x holds 1 streams, but the model carries .* of 3"):
        step.step(x[5, :1], float(dts[5]))
    held = step.state.copy()
    for poison in (np.nan, np.inf):  # ... and a non-finite input never reaches the state
        bad = x[5].copy()
        bad[1, 0] = poison
        with pytest.raises(ValueError, match="input 0 of row 1 is"):
            step.step(bad, float(dts[5]))
        np.testing.assert_array_equal(step.state, held)
    step.reset()  # ... until the caller starts afresh
    one = step.step(x[5, :1], float(dts[5]))
    np.testing.assert_allclose(one, streamed(model, x[5:6, :1], dts[5:6, None])[0], atol=1e-5)
    for bad in (-1.0, float("nan"), float("inf")):  # refused on the lean path too
        with pytest.raises(ValueError, match="dt must be finite and non-negative"):
            step.step(x[6, :1], bad)


@pytest.mark.parametrize("fmt", FORMATS)
def test_streams_are_added_and_reset_by_name_never_dropped(fmt, tmp_path):
    model = seeded("cfc", fmt)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 3, C)).astype(np.float32)
    dt = np.ones((6, 3), np.float32)
    step = runtime.load(export(model, tmp_path / f"m.{fmt}"))
    for t in range(3):  # two streams for three steps
        step.step(x[t, :2], 1.0)
    step.add_streams(1)  # a third one joins, from zeros
    got = [step.step(x[t], 1.0) for t in range(3, 6)]
    first_two = streamed(model, x[:, :2], dt[:, :2])[3:]
    third = streamed(model, x[3:, 2:], dt[3:, 2:])
    np.testing.assert_allclose(np.stack(got)[:, :2], first_two, atol=1e-5)
    np.testing.assert_allclose(np.stack(got)[:, 2:], third, atol=1e-5)
    kept = step.state[1:].copy()
    step.reset(rows=[0])  # stream 0 starts afresh, the others keep their state
    assert not step.state[0].any()
    np.testing.assert_array_equal(step.state[1:], kept)


WINDOW_CELLS = ["cfc", "cfc_pure", "cfc_autoncp", "cfc_mixed_proj", "ltc", "ltc_autoncp_rk4"]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", WINDOW_CELLS)
def test_a_whole_window_matches_pytorch(name, fmt, tmp_path):
    model = seeded(name, fmt)
    T, rng = 12, np.random.default_rng(2)
    window = runtime.load(export(model, tmp_path / f"w.{fmt}", window=T))
    assert window.window == T and not hasattr(window, "step")
    for B in (1, 5):  # the batch axis is dynamic
        x = rng.standard_normal((B, T, C)).astype(np.float32)
        dt = rng.choice([0.0, 0.3, 1.0, 2.0], (B, T)).astype(np.float32)
        expected = streamed(model, x.transpose(1, 0, 2), dt.T)[-1]  # the last reading's output
        got = window.predict(x, dt)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    # one window without its batch axis; one row of dt shared by every window; a number
    np.testing.assert_allclose(window.predict(x[0], dt[0]), got[0], rtol=1e-6, atol=1e-6)
    shared = np.broadcast_to(dt[:1], dt.shape)
    np.testing.assert_allclose(window.predict(x, dt[0]), window.predict(x, shared), atol=1e-7)
    ones = streamed(model, x.transpose(1, 0, 2), np.ones((T, len(x)), np.float32))[-1]
    np.testing.assert_allclose(window.predict(x, 1.0), ones, rtol=1e-5, atol=1e-5)


def test_a_window_file_and_its_bad_inputs(tmp_path):
    model = CfC(C, 8)
    path = export(model, tmp_path / "w.onnx", window=6)
    meta = json.loads((tmp_path / "w.onnx.json").read_text())
    assert meta["window"] == 6 and meta["inputs"] == {"x": "(B, 6, input_size)", "dt": "(B, 6)"}
    onnx = pytest.importorskip("onnx")
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["x", "dt"] and [o.name for o in graph.output] == ["y"]
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim[1:]] == [6, C]
    window = runtime.load(export(model, tmp_path / "w.npz", window=6))
    with pytest.raises(ValueError, match=r"x must be \(B, 6, 3\) or \(6, 3\); got \(2, 5, 3\)"):
        window.predict(np.ones((2, 5, C)))
    with pytest.raises(ValueError, match="dt must be a number, or 12 values"):
        window.predict(np.ones((2, 6, C)), dt=np.ones(4))
    with pytest.raises(ValueError, match="dt must be finite and non-negative"):
        window.predict(np.ones((6, C)), dt=np.r_[np.ones(5), np.nan])
    for bad in (0, -3, 2.5, False):
        with pytest.raises(ValueError, match="window must be a positive number of readings"):
            export(model, tmp_path / "bad.npz", window=bad)
    with pytest.raises(ValueError, match="window=True takes a forecaster's or classifier's"):
        export(model, tmp_path / "bad.npz", window=True)
    assert not (tmp_path / "bad.npz").exists()


def test_the_comparison_is_not_vacuous(tmp_path):
    model = CfC(C, 8).eval()
    path = export(model, tmp_path / "m.npz")
    with np.load(path) as data:
        weights = {k: data[k] for k in data.files}
    weights["cell.ff1.bias"] = weights["cell.ff1.bias"] + 1e-3
    np.savez(path, **weights)
    x = np.ones((20, 1, C), np.float32)
    dt = np.ones((20, 1), np.float32)
    got = np.stack([runtime.load(path).step(x[t], dt[t]) for t in range(1)])
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(got, streamed(model, x[:1], dt[:1]), rtol=1e-5, atol=1e-5)


def test_sidecar_and_files(tmp_path):
    model = CfC(C, AutoNCP(10, 2), mixed_memory=True)
    path = export(model, tmp_path / "ncp.onnx")
    meta = json.loads((tmp_path / "ncp.onnx.json").read_text())
    assert meta["format"] == "liquidnets-step" and meta["opset"] == 17
    assert (meta["input_size"], meta["state_size"], meta["output_size"]) == (C, 20, 2)
    assert meta["inputs"].keys() == {"x", "h", "dt"} and meta["outputs"].keys() == {"y", "h_next"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ncp.onnx", "ncp.onnx.json"]
    onnx = pytest.importorskip("onnx")
    graph = onnx.load(str(path))  # one file: no external data
    assert [i.name for i in graph.graph.input] == ["x", "h", "dt"]
    assert [o.name for o in graph.graph.output] == ["y", "h_next"]
    assert graph.opset_import[0].version == 17
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    with pytest.raises(FileExistsError):
        export(model, path, overwrite=False)
    with pytest.raises(ValueError, match="format='onnx' or 'numpy'"):
        export(model, tmp_path / "m.bin")
    with pytest.raises(TypeError, match="takes a CfC or LTC layer"):
        export(torch.nn.LSTM(3, 4), tmp_path / "m.npz")


def test_bad_steps_are_one_line(tmp_path):
    step = runtime.load(export(CfC(C, 4), tmp_path / "m.npz"))
    with pytest.raises(ValueError, match=r"x must be \(B, 3\)"):
        step.step(np.ones(4))
    with pytest.raises(ValueError, match="dt must be finite and non-negative"):
        step.step(np.ones(C), dt=-1.0)
    with pytest.raises(ValueError, match="no sidecar"):
        runtime.load(tmp_path / "other.npz")


def test_a_forecaster_exports_with_its_scaling(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("lightning")
    from liquidnets.tasks import Forecaster

    t = np.arange(300.0)
    frame = pd.DataFrame({"t": t, "temp": 20 + 3 * np.sin(t / 9), "load": 50 + 10 * np.cos(t / 7)})
    train = {"max_epochs": 2, "progress_bar": False, "accelerator": "cpu", "devices": 1}
    model = Forecaster(
        "cfc", lookback=12, horizon=2, units=8, linear=False, base="last", train=train
    )
    model.fit(frame, targets="temp", time="t")
    live = StreamPredictor(model)
    rows = frame[model.spec["columns"]].to_numpy(np.float32)
    expected = [live.update(r, timestamp=k).forecast.reshape(-1) for k, r in enumerate(rows[:50])]
    for fmt in FORMATS:
        if fmt == "onnx" and not _has("onnxruntime"):
            continue
        step = runtime.load(export(model, tmp_path / f"f.{fmt}"))
        assert step.meta["features"] == model.spec["columns"] and step.meta["horizon"] == 2
        got = [step.step(r, dt=1.0) for r in rows[:50]]  # raw readings in, degrees out
        np.testing.assert_allclose(np.stack(got), np.stack(expected), rtol=1e-4, atol=1e-4)
        # its whole window (the last 12 readings) forecasts what `predict` forecasts
        window = runtime.load(export(model, tmp_path / f"w.{fmt}", window=True))
        ahead = window.predict(rows[-12:], dt=1.0)
        np.testing.assert_allclose(ahead, model.predict(frame)["temp"], rtol=1e-5, atol=1e-4)


def test_a_classifier_exports_its_windows_and_its_steps(tmp_path):
    """The README's lights classifier: its whole-window export gives `predict_proba`'s
    probabilities from raw readings; its step model, streamed over a window from a reset,
    gives the same."""
    pd = pytest.importorskip("pandas")
    pytest.importorskip("lightning")
    from liquidnets.data import make_windows
    from liquidnets.tasks import Classifier

    readings = pd.read_csv(Path(__file__).parents[1] / "examples" / "sensor_readings.csv")
    readings["lights"] = (readings["light_lux"] > 100).map({True: "on", False: "off"})
    train = {"max_epochs": 2, "progress_bar": False, "accelerator": "cpu", "devices": 1}
    clf = Classifier("cfc", lookback=8, units=8, train=train)
    clf.fit(readings, label="lights", time="time", features=["temperature_c", "co2_ppm"])
    expected = clf.predict_proba(readings)[clf.classes].to_numpy()
    assert np.ptp(expected[:, 0]) > 0.05  # windows differ, so a match means something
    raw = make_windows(clf._series(readings), clf.lookback, 0, 1)  # unscaled readings
    assert raw.x.shape == (len(expected), 8, 2)
    folder = clf.save(tmp_path / "clf")
    for fmt in FORMATS:
        if fmt == "onnx" and not _has("onnxruntime"):
            continue
        window = runtime.load(export(folder, tmp_path / f"w.{fmt}", window=True))
        assert window.classes == clf.classes == ["off", "on"] and window.window == 8
        assert window.meta["features"] == ["temperature_c", "co2_ppm"]
        assert window.meta["time_unit_seconds"] == 16 * 60  # the median step, 16 minutes
        np.testing.assert_allclose(window.predict(raw.x, raw.dt), expected, rtol=1e-5, atol=1e-5)
        step = runtime.load(export(clf, tmp_path / f"s.{fmt}"))
        for k in (0, 100, len(raw.x) - 1):
            step.reset()
            for t in range(8):
                p = step.step(raw.x[k, t], dt=raw.dt[k, t])
            np.testing.assert_allclose(p, expected[k], rtol=1e-5, atol=1e-5)
            assert p.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("missing", ["mask", "interpolate", "drop"])
def test_missing_readings_follow_the_training_policy(missing, tmp_path):
    """A forecaster trained on readings with gaps: its step model, fed raw readings with NaN,
    forecasts what the live `StreamPredictor` forecasts (the policy applied online: the last
    value held, the mask columns set, or the reading dropped and its time carried on)."""
    pd = pytest.importorskip("pandas")
    pytest.importorskip("lightning")
    from liquidnets.tasks import Forecaster

    t = np.arange(300.0)
    temp, load = 20 + 3 * np.sin(t / 9), 50 + 10 * np.cos(t / 7)
    temp[[30, 31, 100]], load[[50, 120, 121, 122]] = np.nan, np.nan
    frame = pd.DataFrame({"t": t, "temp": temp, "load": load})
    train = {"max_epochs": 2, "progress_bar": False, "accelerator": "cpu", "devices": 1}
    model = Forecaster(
        "cfc", lookback=12, horizon=1, units=8, linear=False, base="last", train=train
    )
    model.fit(frame, targets="temp", time="t", missing=missing)
    live = StreamPredictor(model)
    readings = [c for c in model.spec["columns"] if not c.endswith("__missing")]
    rows = frame[readings].to_numpy()[:140].copy()
    rows[0, 0] = np.nan  # before any reading of the column: the training's mean stands in
    rows[5] = np.nan  # a whole reading missing
    expected = []
    for k, r in enumerate(rows):
        f = live.update(r, timestamp=k).forecast
        expected.append(np.full(1, np.nan) if f is None else f.reshape(-1))
    expected = np.stack(expected)
    gaps = np.isnan(rows).any(axis=1)
    assert gaps.sum() == 9 and np.isnan(expected[1:]).sum() == 0
    assert np.isnan(expected[0]).all() == (missing == "drop")  # dropped before any forecast
    for fmt in FORMATS:
        if fmt == "onnx" and not _has("onnxruntime"):
            continue
        step = runtime.load(export(model, tmp_path / f"m.{fmt}"))
        assert step.missing == missing and step.readings == readings == ["load", "temp"]
        assert step.input_size == (4 if missing == "mask" else 2)  # the mask columns
        got = np.stack([step.step(r, dt=1.0) for r in rows])
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
        window = runtime.load(export(model, tmp_path / f"w.{fmt}", window=True))
        if missing == "drop":  # a dropped reading gives the standing forecast again
            assert np.array_equal(got[gaps][1:], got[np.flatnonzero(gaps)[1:] - 1])
            with pytest.raises(ValueError, match="a whole window cannot drop a reading"):
                window.predict(rows[28:40], dt=1.0)
            continue
        # a whole window fills its gaps the same way, from within the window
        for end in (40, 55, 130):
            step.reset()
            for r in rows[end - 12 : end]:
                streamed_ = step.step(r, dt=1.0)
            np.testing.assert_allclose(
                window.predict(rows[end - 12 : end], dt=1.0), streamed_, rtol=1e-5, atol=1e-5
            )


def test_a_missing_reading_under_the_error_policy_is_one_line(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("lightning")
    from liquidnets.tasks import Forecaster

    t = np.arange(200.0)
    frame = pd.DataFrame({"t": t, "temp": np.sin(t / 9), "load": np.cos(t / 7)})
    train = {"max_epochs": 1, "progress_bar": False, "accelerator": "cpu", "devices": 1}
    model = Forecaster("cfc", lookback=8, units=4, linear=False, base="last", train=train)
    model.fit(frame, targets="temp", time="t")
    step = runtime.load(export(model, tmp_path / "m.npz"))
    assert step.readings == ["load", "temp"]  # the features first, then the targets
    before = step.step([0.1, 0.2])
    with pytest.raises(ValueError, match="column 'temp' is missing \\(NaN\\) in row 0; the model"):
        step.step([0.1, np.nan])
    with pytest.raises(ValueError, match="column 'load' is infinite in row 1"):
        step.step([[0.1, 0.2], [np.inf, 0.2]])
    with pytest.raises(ValueError, match=r"x must be \(B, 2\) or \(2,\); got \(3,\)"):
        step.step([0.1, 0.2, 0.3])
    step.reset()
    np.testing.assert_array_equal(step.step([0.1, 0.2]), before)  # nothing moved
    buffer = np.array([0.1, 0.2], np.float32)  # a caller's reused buffer is never kept
    step.step(buffer)
    buffer[:] = 5.0
    assert np.array_equal(step._held, np.float32([[0.1, 0.2]]))


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


RUN_WITHOUT_TORCH = """
import importlib.util, sys
import numpy as np
sys.modules["torch"] = None  # any import of torch fails
spec = importlib.util.spec_from_file_location("runtime", sys.argv[1])
runtime = importlib.util.module_from_spec(spec)
spec.loader.exec_module(runtime)
step = runtime.load(sys.argv[2])
x = np.load(sys.argv[3])
out = np.stack([step.step(x[t], dt=0.5) for t in range(len(x))])
np.save(sys.argv[4], out)
print("torch" in sys.modules and sys.modules["torch"] is not None)
"""


def _numpy_only_run(python: str, tmp_path: Path):
    model = LTC(C, AutoNCP(10, 2)).eval()
    path = export(model, tmp_path / "ltc.npz")
    x = np.random.default_rng(0).standard_normal((30, 2, C)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    script = tmp_path / "run.py"
    script.write_text(RUN_WITHOUT_TORCH)
    source = Path(runtime.__file__)
    result = subprocess.run(
        [python, str(script), str(source), str(path), str(tmp_path / "x.npy"),
         str(tmp_path / "y.npy")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": ""},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
    expected = streamed(model, x, np.full((30, 2), 0.5, np.float32))
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, rtol=1e-5, atol=1e-5)


def test_the_runtime_never_imports_torch(tmp_path):
    _numpy_only_run(sys.executable, tmp_path)


@pytest.mark.slow
def test_a_clean_environment_with_only_numpy(tmp_path):
    """A fresh virtual environment, numpy installed and nothing else: the runtime file runs an
    exported model there and matches PyTorch."""
    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / "bin" / "python")
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "numpy"], capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    if install.returncode != 0:
        pytest.skip(f"numpy cannot be installed here: {install.stderr.strip()[-200:]}")
    listed = subprocess.run(
        [python, "-m", "pip", "list", "--format=json"], capture_output=True, text=True
    )
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert "torch" not in names and "numpy" in names
    _numpy_only_run(python, tmp_path)


def test_the_export_command(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("lightning")
    from click.testing import CliRunner

    from liquidnets.cli import build_cli

    t = np.arange(200.0)
    pd.DataFrame({"t": t, "temp": np.sin(t / 9)}).to_csv(tmp_path / "d.csv", index=False)
    cli, run = build_cli(), tmp_path / "run"
    args = ["train", "--data", str(tmp_path / "d.csv"), "--time", "t", "--target", "temp"]
    args += ["--lookback", "8", "--units", "6", "--max-epochs", "1", "--no-baselines"]
    args += ["--base", "last", "--no-linear"]  # a step model carries no window
    assert CliRunner().invoke(cli, [*args, "--out", str(run)]).exit_code == 0
    for source in (run, run / "models" / "cfc"):  # a run folder, or a saved model
        out = tmp_path / "m.npz"
        result = CliRunner().invoke(cli, ["export", str(source), "--out", str(out), "--overwrite"])
        assert result.exit_code == 0, result.output
        assert runtime.load(out).meta["targets"] == ["temp"]
    q = tmp_path / "q.onnx"
    result = CliRunner().invoke(cli, ["export", str(run), "--quantize", "int8", "--out", str(q)])
    assert result.exit_code == 0, result.output
    assert runtime.load(q).meta["quantized"] == "int8"
    again = CliRunner().invoke(cli, ["export", str(run), "--out", str(out)])
    assert again.exit_code != 0 and "exists" in again.output
    window = tmp_path / "w.npz"
    result = CliRunner().invoke(cli, ["export", str(run), "--window", "5", "--out", str(window)])
    assert result.exit_code == 0, result.output
    assert runtime.load(window).window == 5
    alone = CliRunner().invoke(cli, ["export", str(run), "--window", "--out", str(window),
                                     "--overwrite"])  # fmt: skip
    assert alone.exit_code == 0, alone.output
    assert runtime.load(window).window == 8  # the run's lookback
    bad = CliRunner().invoke(cli, ["export", str(tmp_path), "--out", str(tmp_path / "x.onnx")])
    assert bad.exit_code != 0 and "not a run folder" in bad.output


@pytest.mark.slow
def test_the_edge_benchmark_runs(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    import benchmark_scripts

    bench = benchmark_scripts.load("edge")
    report = bench.main(["--quick", "--json", str(tmp_path / "edge.json")])
    assert [r["model"] for r in report["rows"]] == list(bench.MODELS)
    for row in report["rows"]:
        runtimes = {"ncps eager", "ncps ONNX", "ours eager", "ours ONNX, bare session"}
        assert runtimes | {"onnxruntime", "numpy runtime"} <= set(row["latency_us"])
        assert all(v > 0 for v in row["latency_us"].values())
        assert 5 < row["peak_rss_mb"] < 200 and row["npz_kb"] > 0
    # each latency target, as stated and scaled by this run's ncps ONNX step
    timed = [t for t in report["targets"] if "measured_us" in t]
    assert [(t["model"], t["runtime"]) for t in timed] == [t[:2] for t in bench.TARGETS]
    ncps_onnx = report["rows"][0]["latency_us"]["ncps ONNX"]
    for t in timed:
        assert t["scaled_target_us"] == pytest.approx(t["target_us"] * ncps_onnx / 12.5)
        assert t["met_scaled"] == (t["ratio"] <= t["target_us"] / 12.5)
    out = capsys.readouterr().out
    assert "numpy-only process MB" in out and "scaled to this run" in out


@pytest.mark.parametrize("fmt", FORMATS)
def test_int8_weights_shrink_the_file_and_stay_close(fmt, tmp_path):
    if fmt == "onnx":
        pytest.importorskip("onnx")
        pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = CfC(16, 64).eval()
    full = export(model, tmp_path / f"f.{fmt}")
    small = export(model, tmp_path / f"q.{fmt}", quantize="int8")
    assert small.stat().st_size < 0.35 * full.stat().st_size
    assert runtime.load(small).meta["quantized"] == "int8"
    x = np.random.default_rng(0).standard_normal((200, 2, 16)).astype(np.float32)
    a, b = runtime.load(full), runtime.load(small)
    ya = np.stack([a.step(x[t], 1.0) for t in range(200)])
    yb = np.stack([b.step(x[t], 1.0) for t in range(200)])
    diff = np.abs(ya - yb)
    assert 0 < diff.mean() < 5e-3 and diff.max() < 5e-2  # rounded, and still close
    with pytest.raises(ValueError, match="quantize must be None or 'int8'"):
        export(model, tmp_path / "x.npz", quantize="int4")

"""On the edge: size, latency per step and memory of exported step models, beside ncps eager.

    python benchmarks/edge.py              # CfC-64, CfC on AutoNCP(64, 8), LTC-64; 1 thread
    python benchmarks/edge.py --quick      # fewer repeats

For each model (16 inputs): its parameter count and the size of its `.npz` and `.onnx` files;
the latency of one step at batch 1, warmed up, the median over 60 rounds in each of which
every model and runtime runs in turn for about 20 ms (so that the machine's changes of pace hit
all alike, while each runs long enough for its caches to be warm), in:

- ncps eager: its cell (ncps has no step API);
- ncps ONNX: the same cell exported here as a step model (ncps has no export code), run by a
  bare onnxruntime session with IO bindings: the reference the edge targets were set from;
- ours eager: `layer.step`;
- ours ONNX, bare session: our exported file in the same harness as ncps ONNX;
- onnxruntime and numpy runtime: `liquidnets.runtime.load(path).step(x, dt)`, what a device
  calls, input checks and state handling included;

and the peak resident memory of a process that only imports numpy and the runtime file, loads
the model and streams 1,000 steps (torch cannot be imported there). Ratios are against ncps
eager. Then the targets, as stated and scaled to this run's machine by ncps's own CfC-64 ONNX
step (the targets were set where it took 12.5 µs): a target of t µs allows t / 12.5 times that
step, judged on the median of the per-round ratios. Last, int8 weights: a CfC forecaster of CO2 on
`examples/sensor_readings.csv` exported in float32 and in int8, the size of each file and the
one-step MAE of each on the test period.

Writes `results/edge.json` beside this script unless `--json` says where.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from liquidnets import runtime
from liquidnets.deploy import export
from liquidnets.io.atomic import write_json

RESULTS = Path(__file__).parent / "results"
INPUTS = 16
MODELS = {
    "CfC-64": lambda lib, w: lib.CfC(INPUTS, 64),
    "CfC-AutoNCP(64,8)": lambda lib, w: lib.CfC(INPUTS, w.AutoNCP(64, 8)),
    "LTC-64": lambda lib, w: lib.LTC(INPUTS, 64),
}
# where the targets were set, ncps's CfC-64 ONNX step took this long (µs)
REFERENCE_NCPS_ONNX_US = 12.5
# (model, runtime, target in µs on the reference machine)
TARGETS = [
    ("CfC-64", "ours ONNX, bare session", 15.0),  # like for like with the reference
    ("CfC-64", "onnxruntime", 15.0),  # through runtime.step
    ("CfC-64", "numpy runtime", 40.0),
    ("LTC-64", "ours ONNX, bare session", 60.0),
    ("LTC-64", "onnxruntime", 60.0),
]
TARGET_RSS_MB = 60.0
SHARE_US = 20_000  # each function's time in each round of the interleaved measurement
# VmHWM, the peak resident memory of this process's own address space: getrusage's ru_maxrss
# would carry over the (much larger) parent's peak across fork and exec
RSS_SCRIPT = """
import importlib.util, sys
import numpy as np
sys.modules["torch"] = None
spec = importlib.util.spec_from_file_location("runtime", sys.argv[1])
rt = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rt)
model = rt.load(sys.argv[2])
x = np.ones((1, int(sys.argv[3])), np.float32)
for _ in range(1000):
    model.step(x, 1.0)
status = open("/proc/self/status").read().split("VmHWM:")[1]
print(int(status.split()[0]) / 1024)
"""


def _bare_session(path: Path, input_size: int, state_size: int):
    """One step of the ONNX step model at `path` per call, in a bare onnxruntime session (1
    thread, inputs and outputs bound once, the state buffers swapped from step to step)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    f32 = np.float32
    x, dt = np.ones((1, input_size), f32), np.ones((1, 1), f32)
    h = [np.zeros((1, state_size), f32) for _ in range(2)]
    y = np.zeros((1, session.get_outputs()[0].shape[1]), f32)
    bindings = []
    for k in range(2):
        io = session.io_binding()
        io.bind_cpu_input("x", x)
        io.bind_cpu_input("dt", dt)
        io.bind_cpu_input("h", h[k])
        for name, out in (("y", y), ("h_next", h[1 - k])):
            io.bind_output(name, "cpu", 0, f32, out.shape, out.ctypes.data)
        bindings.append(io)
    turn = [0]

    def run():
        session.run_with_iobinding(bindings[turn[0]])
        turn[0] = 1 - turn[0]

    run.buffers = (x, dt, h, y)  # kept alive with the bindings
    return run


class _CellStep(torch.nn.Module):
    """ncps's cell as a step model `(x, h, dt) -> (y, h_next)`, for its ONNX export."""

    def __init__(self, cell):
        super().__init__()
        self.cell = cell

    def forward(self, x, h, dt):
        return self.cell(x, h, dt)


def _export_ncps(cell, state_size: int, path: Path) -> Path:
    import warnings

    args = (torch.ones(1, INPUTS), torch.zeros(1, state_size), torch.ones(1, 1))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _CellStep(cell), args, str(path), dynamo=False, opset_version=17,
            input_names=["x", "h", "dt"], output_names=["y", "h_next"],
        )  # fmt: skip
    return path


def _fns(name: str, folder: Path) -> tuple[dict, dict]:
    torch.manual_seed(0)
    import liquidnets.wirings as our_wirings

    ours = MODELS[name](sys.modules["liquidnets"], our_wirings).eval()
    x = torch.ones(1, INPUTS)
    fns, info = {}, {"parameters": sum(p.numel() for p in ours.parameters())}
    try:
        import onnxruntime  # noqa: F401

        has_ort = True
    except ImportError:
        has_ort = False
    try:
        import ncps.torch
        import ncps.wirings

        ref = MODELS[name](ncps.torch, ncps.wirings).eval()
        h_ref = torch.zeros(1, ref.state_size)
        fns["ncps eager"] = lambda: ref.rnn_cell(x, h_ref, 1.0)
        if has_ort:
            path = _export_ncps(ref.rnn_cell, ref.state_size, folder / f"ncps-{name}.onnx")
            fns["ncps ONNX"] = _bare_session(path, INPUTS, ref.state_size)
    except ImportError:
        pass
    h = ours.init_state(1)
    fns["ours eager"] = lambda: ours.step(x, h, 1.0)
    xn = np.ones((1, INPUTS), np.float32)
    for fmt, label in (("onnx", "onnxruntime"), ("npz", "numpy runtime")):
        path = export(ours, folder / f"{name}.{fmt}")
        info[f"{fmt}_kb"] = path.stat().st_size / 1024
        if fmt == "onnx":
            if not has_ort:
                continue
            fns["ours ONNX, bare session"] = _bare_session(path, INPUTS, ours.state_size)
        step = runtime.load(path)
        fns[label] = lambda step=step: step.step(xn, 1.0)
    return fns, info


def _peak_rss_mb(path: Path) -> float:
    out = subprocess.run(
        [sys.executable, "-c", RSS_SCRIPT, runtime.__file__, str(path), str(INPUTS)],
        capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": ""},
    )  # fmt: skip
    return float(out.stdout.strip())


def quantization(epochs: int = 30) -> dict:
    """A CfC forecaster of CO2 trained on `examples/sensor_readings.csv`, exported in float32
    and int8 (numpy format): file sizes and the one-step MAE of each over the test period
    (the last 15%), every reading streamed through the numpy runtime."""
    import pandas as pd

    from liquidnets.tasks import Forecaster

    data = Path(__file__).resolve().parents[1] / "examples" / "sensor_readings.csv"
    train = {"max_epochs": epochs, "seed": 0, "progress_bar": False, "accelerator": "cpu"}
    model = Forecaster(
        "cfc", lookback=32, horizon=1, units=32, base="last", linear=False,
        train={**train, "devices": 1},
    )  # fmt: skip
    model.fit(data, targets="co2_ppm", time="time")
    frame = pd.read_csv(data)
    times = pd.to_datetime(frame["time"]).to_numpy().astype("datetime64[ns]").astype(np.int64)
    step_ns = pd.Timedelta(model.spec["time_unit"]).value
    dt = np.r_[1.0, np.diff(times) / step_ns].astype(np.float32)
    rows = frame[model.spec["columns"]].to_numpy(np.float32)
    actual = frame["co2_ppm"].to_numpy()
    test = slice(int(len(rows) * 0.85), len(rows) - 1)
    folder = Path(tempfile.mkdtemp(prefix="edge-q-"))
    out = {}
    for label, q in (("float32", None), ("int8", "int8")):
        path = export(model, folder / f"co2-{label}.npz", quantize=q)
        step = runtime.load(path)
        pred = np.array([step.step(r, float(d))[0] for r, d in zip(rows, dt)])
        error = np.abs(pred[test] - actual[test.start + 1 : test.stop + 1])
        out[label] = {"kb": path.stat().st_size / 1024, "mae": float(error.mean())}
    return out


def _interleaved(fns: dict, rounds: int) -> dict:
    """Per-call µs of each function in each round. A round calls every function in turn for
    about `SHARE_US` each, so that the machine's changes of pace (large on shared machines)
    hit all alike, and a ratio taken within a round compares like with like."""
    calls = {}
    for key, fn in fns.items():  # warm up, and size each function's share of a round
        start, count = time.perf_counter(), 0
        while time.perf_counter() - start < 0.1 or count < 20:
            fn()
            count += 1
        per_call = (time.perf_counter() - start) / count
        calls[key] = max(1, round(SHARE_US * 1e-6 / per_call))
    times = {key: [] for key in fns}
    for _ in range(rounds):
        for key, fn in fns.items():
            start = time.perf_counter()
            for _ in range(calls[key]):
                fn()
            times[key].append((time.perf_counter() - start) / calls[key] * 1e6)
    return times


def _targets(rows: list[dict]) -> list[dict]:
    """Each target as stated, and scaled to this run: a target of `t` µs where ncps's CfC-64
    ONNX step took 12.5 µs asks for at most `t / 12.5` times that step here (like for like:
    onnxruntime against onnxruntime), judged on the median of the per-round ratios."""
    by_model = {r["model"]: r for r in rows}
    reference = by_model.get("CfC-64", {}).get("latency_us", {}).get("ncps ONNX")
    out = []
    for model, runtime_name, target in TARGETS:
        row = by_model.get(model, {})
        measured = row.get("latency_us", {}).get(runtime_name)
        if measured is None:
            continue
        entry = {
            "model": model, "runtime": runtime_name, "measured_us": measured,
            "target_us": target, "met": measured <= target, "scaled_target_us": None,
            "met_scaled": None,
        }  # fmt: skip
        ratio = row.get("per_ncps_cfc_onnx", {}).get(runtime_name)
        if reference and ratio is not None:
            allowed = target / REFERENCE_NCPS_ONNX_US
            entry.update(
                machine_factor=reference / REFERENCE_NCPS_ONNX_US,
                ratio=ratio, allowed_ratio=allowed, scaled_target_us=allowed * reference,
                met_scaled=ratio <= allowed,
            )  # fmt: skip
        out.append(entry)
    for r in rows:
        out.append({
            "model": r["model"], "runtime": "numpy-only process", "measured_mb": r["peak_rss_mb"],
            "target_mb": TARGET_RSS_MB, "met": r["peak_rss_mb"] <= TARGET_RSS_MB,
        })  # fmt: skip
    return out


def run(quick: bool = False) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="edge-"))
    rows, fns = [], {}
    for name in MODELS:
        model_fns, info = _fns(name, folder)
        rows.append({"model": name, **info})
        fns.update({(name, k): fn for k, fn in model_fns.items()})
    with torch.no_grad():
        times = _interleaved(fns, rounds=5 if quick else 60)
    reference = np.array(times.get(("CfC-64", "ncps ONNX"), []))
    for row in rows:
        mine = {k: np.array(v) for (m, k), v in times.items() if m == row["model"]}
        row["latency_us"] = {k: float(np.median(v)) for k, v in mine.items()}
        if reference.size:
            row["per_ncps_cfc_onnx"] = {k: float(np.median(v / reference)) for k, v in mine.items()}
        row["peak_rss_mb"] = _peak_rss_mb(folder / f"{row['model']}.npz")
    return {
        "targets": _targets(rows),
        "quantization": quantization(epochs=3 if quick else 30),
        "threads": torch.get_num_threads(),
        "inputs": INPUTS,
        "batch": 1,
        "onnx_opset": 17,
        "rows": rows,
    }


def table(report: dict) -> str:
    runtimes = [
        "ncps eager", "ncps ONNX", "ours eager", "ours ONNX, bare session", "onnxruntime",
        "numpy runtime",
    ]  # fmt: skip
    lines = [
        "| model | parameters | .npz KB | .onnx KB | "
        + " | ".join(f"{r} µs" for r in runtimes)
        + " | numpy-only process MB |",
        "|---|--:|--:|--:|" + "--:|" * len(runtimes) + "--:|",
    ]
    for r in report["rows"]:
        lat = r["latency_us"]
        ref = lat.get("ncps eager")
        cells = []
        for k in runtimes:
            if k not in lat:
                cells.append("n/a")
            elif ref and k != "ncps eager":
                cells.append(f"{lat[k]:.1f} ({ref / lat[k]:.1f}x)")
            else:
                cells.append(f"{lat[k]:.1f}")
        sizes = f"{r['npz_kb']:.0f} | {r.get('onnx_kb', 0):.0f}"
        lines.append(
            f"| {r['model']} | {r['parameters']:,} | {sizes} | "
            + " | ".join(cells)
            + f" | {r['peak_rss_mb']:.0f} |"
        )
    lines.append("")
    lines.append("(x): how many times faster than ncps eager; batch 1, 16 inputs.")
    lines.append("")
    lines.append(_targets_text(report["targets"]))
    q = report["quantization"]
    f32, i8 = q["float32"], q["int8"]
    lines.append(
        f"int8 weights (CfC-32 forecaster of CO2, examples/sensor_readings.csv): file "
        f"{f32['kb']:.0f} -> {i8['kb']:.0f} KB ({i8['kb'] / f32['kb']:.2f}x), test-period MAE "
        f"{f32['mae']:.2f} -> {i8['mae']:.2f} ppm ({100 * (i8['mae'] / f32['mae'] - 1):+.2f}%)"
    )
    return "\n".join(lines)


def _targets_text(targets: list[dict]) -> str:
    met = {True: "met", False: "missed", None: "n/a"}
    lines = ["Targets (stated for a machine where ncps's CfC-64 ONNX step took "
             f"{REFERENCE_NCPS_ONNX_US} µs):"]  # fmt: skip
    for t in targets:
        if "measured_mb" in t:
            lines.append(
                f"- {t['model']}, {t['runtime']}: {t['measured_mb']:.0f} MB; target "
                f"{t['target_mb']:.0f} MB ({met[t['met']]})"
            )
            continue
        line = (
            f"- {t['model']}, {t['runtime']}: {t['measured_us']:.1f} µs; target "
            f"{t['target_us']:.0f} µs ({met[t['met']]})"
        )
        if t["scaled_target_us"] is not None:
            line += (
                f"; scaled to this run ({t['machine_factor']:.2f}x slower): "
                f"{t['scaled_target_us']:.1f} µs, i.e. {t['ratio']:.2f} against at most "
                f"{t['allowed_ratio']:.2f} times ncps's CfC-64 ONNX step ({met[t['met_scaled']]})"
            )
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--json", default=str(RESULTS / "edge.json"), help="report path")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    report = run(quick=args.quick)
    print(table(report))
    print(f"wrote {write_json(args.json, report)}")
    return report


if __name__ == "__main__":
    main()

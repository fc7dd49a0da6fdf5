"""Training on more rows than windows fit in memory: peak memory and time per epoch.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/scale.py --rows 1e6,3e6,1e7 --before 224c9d5

Each size runs in a fresh process (its peak resident memory is the process's own) that makes
an in-memory table of `rows` readings of 8 columns (one target, seven features: sines and
random walks, float64 as pandas holds them), then trains the default liquid forecaster
(`Forecaster("cfc", lookback=32, horizon=1)`) for exactly one epoch: the windows, the
validation part and the backtest-free fit a `liquidnets train` starts with. It reports the
seconds of that one epoch of training (Lightning's own epoch, not the data preparation), the
training windows per second, the whole fit's seconds and the peak resident memory. With
`--batches N` the epoch stops after N batches (for a size whose whole epoch would take hours:
the memory and the rate, not the epoch).

`--before REV` runs the same measurement with the package as it was at git revision `REV`
(extracted with `git archive` into a temporary folder): the materialised windows before
`liquidnets.data.WindowView`. A size the old code cannot hold is stopped by an address-space
limit (`--limit-gb`, default 20) instead of exhausting the machine, and reported as such.

The data are synthetic (made here, nothing downloaded).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
import numpy as np, pandas as pd, torch

rows, threads, limit = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
batches = int(sys.argv[4]) or None  # train and validate on this many batches only
resource.setrlimit(resource.RLIMIT_AS, (int(limit * 2**30), int(limit * 2**30)))
torch.set_num_threads(threads)
from lightning.pytorch.callbacks import Callback
from liquidnets.tasks import Forecaster

rng = np.random.default_rng(0)
t = np.arange(rows, dtype=np.float64)
walks = np.cumsum(rng.standard_normal((rows, 7)), axis=0) / 50
frame = pd.DataFrame({f"f{j}": walks[:, j] + np.sin(t / (20 + 7 * j)) for j in range(7)})
frame["y"] = frame.sum(axis=1) + 0.1 * rng.standard_normal(rows)
del walks, t

epoch = {}
class Clock(Callback):
    def on_train_epoch_start(self, trainer, module):
        epoch["start"] = time.perf_counter()
    def on_train_epoch_end(self, trainer, module):
        epoch["seconds"] = time.perf_counter() - epoch["start"]

import lightning.pytorch as lp
original = lp.Trainer.__init__
def with_clock(self, *args, **kwargs):
    kwargs["callbacks"] = [*kwargs.get("callbacks", []), Clock()]
    if batches:
        kwargs.update(limit_train_batches=batches, limit_val_batches=batches)
    original(self, *args, **kwargs)
lp.Trainer.__init__ = with_clock
import lightning
lightning.Trainer.__init__ = with_clock

model = Forecaster("cfc", lookback=32, horizon=1,
                   train={"max_epochs": 1, "progress_bar": False})
t0 = time.perf_counter()
try:
    model.fit(frame, targets="y")
    status = "ok"
except MemoryError:
    status = "out of memory"
except RuntimeError as exc:  # torch's allocator: "can't allocate memory"
    if "allocate" not in str(exc):
        raise
    status = "out of memory"
fit_seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # GiB (Linux: KiB)
windows = int(rows * 0.70) - 32
if batches:
    windows = min(windows, batches * 64)
print(json.dumps({
    "rows": rows, "status": status, "peak_gib": round(peak, 3),
    "epoch_seconds": round(epoch.get("seconds", float("nan")), 1),
    "windows_per_second": round(windows / epoch["seconds"]) if "seconds" in epoch else None,
    "fit_seconds": round(fit_seconds, 1), "batches": batches,
}))
"""


def measure(rows: int, threads: int, limit_gb: float, src: Path | None, batches=0) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if src is not None:
        env["PYTHONPATH"] = str(src)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(rows), str(threads), str(limit_gb), str(batches)],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        tail = (done.stderr.strip().splitlines() or ["?"])[-1]
        status = "out of memory" if "MemoryError" in done.stderr else f"failed: {tail[:120]}"
        return {"rows": rows, "status": status, "peak_gib": None, "epoch_seconds": None,
                "windows_per_second": None, "fit_seconds": None}  # fmt: skip
    return json.loads(lines[-1])


def extract(rev: str, where: Path) -> Path:
    """The package at git revision `rev`, extracted under `where`: its `src` folder."""
    archive = subprocess.run(
        ["git", "archive", rev, "src"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    tar = where / "src.tar"
    tar.write_bytes(archive)
    with tarfile.open(tar) as t:
        t.extractall(where, filter="data")
    return where / "src"


def table(results: dict) -> str:
    lines = [
        "| rows | version | status | peak GiB | epoch s | windows/s | fit s |",
        "|--:|---|---|--:|--:|--:|--:|",
    ]
    for version, rows in results.items():
        for r in rows:
            cells = [f"{r['rows']:,}", version, r["status"]]
            for key in ("peak_gib", "epoch_seconds", "windows_per_second", "fit_seconds"):
                cells.append("" if r[key] is None else f"{r[key]:,}")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="1e6,3e6,1e7", help="comma-separated row counts")
    parser.add_argument("--before", metavar="REV", help="also measure git revision REV")
    parser.add_argument("--before-rows", help="row counts for --before (default: --rows)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit-gb", type=float, default=20.0)
    parser.add_argument(
        "--batches", type=int, default=0,
        help="train and validate on this many batches of 64 only (a size whose whole epoch "
        "would take too long: its memory and its windows per second, not a whole epoch)",
    )  # fmt: skip
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "scale.json"))
    args = parser.parse_args(argv)
    sizes = [int(float(v)) for v in args.rows.split(",")]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        versions = {"now": None}
        if args.before:
            versions[f"before ({args.before})"] = extract(args.before, Path(tmp))
        for version, src in versions.items():
            wanted = sizes
            if src is not None and args.before_rows:
                wanted = [int(float(v)) for v in args.before_rows.split(",")]
            results[version] = []
            for rows in wanted:
                t0 = time.perf_counter()
                r = measure(rows, args.threads, args.limit_gb, src, args.batches)
                print(f"{version}: {rows:,} rows: {r} ({time.perf_counter() - t0:.0f} s)",
                      flush=True)  # fmt: skip
                results[version].append(r)
    print()
    print(table(results))
    from liquidnets.io.atomic import write_json

    command = "benchmarks/scale.py " + " ".join(argv if argv is not None else sys.argv[1:])
    write_json(Path(args.json), {"command": command.strip(), "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the quality benchmarks (quality.py, quality_classify.py, quality_anomaly.py) share:
one `liquidnets train` run, with each model's own training time, and JSON of numpy values."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np


def timed_run(frame, train: dict, **options):
    """`liquidnets.tasks.run.train_run` on `frame` in a temporary folder, timing each model's
    fit. Returns `(result, settings, models, seconds per model, seconds in all)`, the models
    loaded back from the run folder as a user's `evaluate` would."""
    from liquidnets.tasks import run as _run

    seconds: dict[str, float] = {}
    fit = _run._fit

    def timed(model, series, settings, run_dir=None):
        t0 = time.perf_counter()
        out = fit(model, series, settings, run_dir=run_dir)
        seconds[model.model] = time.perf_counter() - t0
        return out

    _run._fit = timed
    try:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            result = _run.train_run(frame, Path(tmp) / "run", train=train, **options)
            total = time.perf_counter() - t0
            settings, models = _run.load_run(Path(tmp) / "run")
    finally:
        _run._fit = fit
    return result, settings, models, seconds, total


def jsonable(value):
    """`json.dumps(..., default=jsonable)`: numpy scalars as Python numbers."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")

"""What the task classes share: loading data the way a model was fitted, aligning columns,
and running a network over many windows."""

from __future__ import annotations

import numpy as np
import torch

from liquidnets.data import SeriesSet, load_series, split_by_column, split_by_time


def load_like(data, spec: dict, *, split: bool = True) -> SeriesSet:
    """`data` (a path, a DataFrame or a SeriesSet) read with the columns and policies a model
    was fitted with (`spec`); with `split=False` without its split column (to predict, the
    data need not say where it would have been split)."""
    if isinstance(data, SeriesSet):
        return data
    return load_series(
        data, targets=spec["targets"], features=spec["features"], time=spec["time"],
        id=spec["id"], label=spec.get("label"), missing=spec["missing"],
        time_unit=spec["time_unit"], split=spec.get("split_column") if split else None,
    )  # fmt: skip


def split_rows(series: SeriesSet, spec: dict) -> dict[str, list[slice]]:
    """Every series' rows split as the model was fitted (`spec`): by its split column when it
    was given one (`split_by_column`), else by time (`split_by_time`, up to `train_until`
    when it was given one). Models saved before either option have neither."""
    if spec.get("split_column"):
        return split_by_column(series, val=spec["val"])
    return split_by_time(series, val=spec["val"], test=spec["test"], until=spec.get("train_until"))


def align_columns(series: SeriesSet, trained: list[str]) -> None:
    """Put `series` in the model's column order, in place. With missing="mask" a file has mask
    columns only where it has gaps: absent ones become all-zero, ones the model never saw are
    dropped (their gaps stay forward-filled). Any other difference is a ValueError."""
    if series.columns == trained:
        return
    data = [c for c in trained if not c.endswith("__missing")]
    if [c for c in series.columns if not c.endswith("__missing")] != data:
        raise ValueError(
            f"the data gives columns {series.columns}; the model was trained on {trained}"
        )
    where = {c: i for i, c in enumerate(series.columns)}
    for k, values in enumerate(series.values):
        aligned = np.zeros((len(values), len(trained)), np.float32)
        for j, c in enumerate(trained):
            if c in where:
                aligned[:, j] = values[:, where[c]]
        series.values[k] = aligned
    series.columns = list(trained)


def run_net(
    net: torch.nn.Module,
    x: np.ndarray,
    dt: np.ndarray,
    n_out: int,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """`net` over windows `x (N, T, C)`, `dt (N, T)` (and padded series' `mask (N, T)`, then
    `net(x, dt, mask)`) in batches, without gradients: `(N, out)`."""
    net.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), 1024):
            xb = torch.as_tensor(x[i : i + 1024], dtype=torch.float32)
            db = torch.as_tensor(dt[i : i + 1024], dtype=torch.float32)
            extra = () if mask is None else (torch.as_tensor(mask[i : i + 1024]),)
            out.append(net(xb, db, *extra).numpy())
    return np.concatenate(out) if out else np.zeros((0, n_out), np.float32)

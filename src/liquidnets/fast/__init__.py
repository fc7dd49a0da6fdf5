"""Fused sequence paths, each tested against the readable cells it replaces.

The layers use them automatically when they compute exactly what the cell does; set
`LIQUIDNETS_FAST=0` in the environment, call `set_enabled(False)`, or use
`with liquidnets.fast.disabled():` to run the readable reference path instead.
"""

from __future__ import annotations

import contextlib
import os

_enabled = os.environ.get("LIQUIDNETS_FAST", "1") not in ("0", "false", "False", "no")


def time_major(ts, x):
    """The layers' timespans (None, a number, a 0-d tensor or `(B, T, 1)`) for input
    `x (B, T, C)` as a time-major tensor `(T, B|1, 1)` that broadcasts over the batch."""
    T = x.shape[1]
    if ts is None or isinstance(ts, float):
        return x.new_full((T, 1, 1), 1.0 if ts is None else ts)
    if ts.dim() == 0:
        return ts.reshape(1, 1, 1).expand(T, 1, 1)
    return ts.transpose(0, 1)  # (T, B, 1)


def enabled() -> bool:
    """Whether layers may take the fused paths."""
    return _enabled


def set_enabled(value: bool) -> None:
    """Allow (True) or forbid (False) the fused paths for every layer."""
    global _enabled
    _enabled = bool(value)


@contextlib.contextmanager
def disabled():
    """Run the reference path inside the block.

    >>> import torch, liquidnets
    >>> rnn = liquidnets.CfC(3, 4)
    >>> x = torch.randn(2, 5, 3)
    >>> with liquidnets.fast.disabled():
    ...     reference, _ = rnn(x)
    >>> torch.allclose(rnn(x)[0], reference, atol=1e-6)
    True
    """
    global _enabled
    before, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = before

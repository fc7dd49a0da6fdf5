"""The event-based bit-stream XOR task of the CfC paper (Hasani et al., Nature MI 2022, Table 4).

A sample is a random bit string of uniformly random length in `[min_len, max_len]`; its label
is the parity (XOR) of all its bits. The string is not fed bit by bit: each run of equal
consecutive bits becomes one *event*, which carries the run's bit value, and as its elapsed
time the number of bit steps since the previous event, events being placed at the *end* of
their run. So an event's elapsed time is its own run length (the first event's too: it is
counted from the start of the string), and the parity is recoverable from the events alone:
`parity = (sum of the run lengths of the 1-events) mod 2`. A model must therefore read the
parity off irregular time gaps, which is what the task tests. numpy only.

Example:
    >>> d = event_xor(1000, seed=0)
    >>> d["x"].shape, d["dt"].shape, d["mask"].shape, d["y"].shape
    ((1000, 32, 1), (1000, 32), (1000, 32), (1000,))
    >>> runs = np.rint(d["dt"] * 32).astype(int)  # back to run lengths in bit steps
    >>> ones = (runs * d["x"][..., 0]).sum(axis=1)
    >>> bool(np.all(ones % 2 == d["y"]))
    True
"""

from __future__ import annotations

import numpy as np

__all__ = ["event_xor"]


def event_xor(
    n: int, *, seed: int, min_len: int = 2, max_len: int = 31, pad: int = 32
) -> dict[str, np.ndarray]:
    """Draw `n` random bit strings and encode each as a padded sequence of events.

    Event `k` of a sample is its `k`-th run of equal bits: `x = bit value`, and
    `dt = run length / pad` (the bit steps from the end of the previous run to the end of this
    one; the first run is counted from the start). Events fill the first steps; the rest is
    padding with `mask False`, `x 0` and `dt 0`.

    Args:
        n: number of samples.
        seed: seeds `numpy.random.default_rng`; the same arguments give the same arrays.
        min_len, max_len: bit-string lengths are uniform in `[min_len, max_len]` (default 2, 31).
        pad: padded sequence length, also the time unit (default 32); at least `max_len`.

    Returns:
        A dict of numpy arrays:
        `x (n, pad, 1)` float32, the bit value of each event;
        `dt (n, pad)` float32, each event's run length divided by `pad`;
        `mask (n, pad)` bool, True on events;
        `y (n,)` int64, the parity of the bit string;
        `lengths (n,)` int64, the bit-string lengths;
        `events (n,)` int64, the number of events (`mask.sum(1)`);
        `bits (n, max_len)` int8, the raw bit strings, zero beyond `lengths`.
    """
    if n < 0:
        raise ValueError(f"event_xor: n must be non-negative, got {n}")
    if not 1 <= min_len <= max_len:
        raise ValueError(f"event_xor: need 1 <= min_len <= max_len, got {min_len}, {max_len}")
    if pad < max_len:
        raise ValueError(f"event_xor: pad ({pad}) must be at least max_len ({max_len})")
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_len, max_len + 1, size=n)  # (n,)
    valid = np.arange(max_len) < lengths[:, None]  # (n, max_len)
    bits = rng.integers(0, 2, size=(n, max_len), dtype=np.int8) * valid  # (n, max_len)

    # a run ends where the next bit differs or the string ends
    ends = np.zeros((n, max_len), bool)
    ends[:, :-1] = bits[:, 1:] != bits[:, :-1]
    ends[np.arange(n), lengths - 1] = True
    ends &= valid
    rows, cols = np.nonzero(ends)  # row-major: sorted by sample, then by position
    k = (np.cumsum(ends, axis=1) - 1)[rows, cols]  # event index within its sample
    prev = np.concatenate([[-1], cols[:-1]])[: len(cols)]  # the previous run's end
    prev[k == 0] = -1  # the first run is counted from the start of the string
    runs = cols - prev  # run lengths in bit steps

    x = np.zeros((n, pad, 1), np.float32)
    dt = np.zeros((n, pad), np.float32)
    mask = np.zeros((n, pad), bool)
    x[rows, k, 0] = bits[rows, cols]
    dt[rows, k] = runs / pad
    mask[rows, k] = True
    return {
        "x": x,
        "dt": dt,
        "mask": mask,
        "y": (bits.sum(axis=1, dtype=np.int64) % 2).astype(np.int64),
        "lengths": lengths.astype(np.int64),
        "events": mask.sum(axis=1).astype(np.int64),
        "bits": bits,
    }

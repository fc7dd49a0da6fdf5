"""Drift detectors over a stream of forecast errors: a built-in Page-Hinkley test, and river's
detectors (ADWIN, Page-Hinkley) behind the `drift` extra.

Every detector has the same small interface: `update(value) -> bool` (True when a drift is
detected at this value; the detector then starts afresh), `reset()`, and `state()` /
`from_state()` with plain JSON, so a stream snapshot can carry it without pickling anything.

    >>> d = PageHinkley(threshold=5.0, burn_in=20)
    >>> hits = [d.update(0.1) for _ in range(200)] + [d.update(1.0) for _ in range(50)]
    >>> any(hits[:200]), hits.index(True) - 200 < 10
    (False, True)
"""

from __future__ import annotations

import importlib.util
import math

DETECTORS = ("builtin", "adwin", "page_hinkley")
RIVER_MISSING = "the {name} detector needs river; install it with: pip install 'liquidnets[drift]'"


class PageHinkley:
    """The Page-Hinkley test for a rise in the mean of a non-negative stream (absolute errors),
    on a relative scale so that one setting suits any units.

    The first `burn_in` values set the reference level `r` (their mean). After that each value
    `v` adds `v / r - mean - delta` to a cumulative sum, `mean` being the running mean of the
    relative values so far; a drift is signalled when the sum rises more than `threshold` above
    its minimum. A rise of the mean error by a factor `k` is found after about
    `threshold / (k - 1 - delta)` values.

    Args:
        delta: the relative rise tolerated without alarm.
        threshold: the alarm level of the cumulative sum (relative units).
        burn_in: values that set the reference level before testing starts.
    """

    def __init__(self, delta: float = 0.1, threshold: float = 20.0, burn_in: int = 30):
        if not (delta >= 0 and threshold > 0 and burn_in >= 1):
            raise ValueError(
                f"PageHinkley: need delta >= 0, threshold > 0, burn_in >= 1; got {delta}, "
                f"{threshold}, {burn_in}"
            )
        self.delta, self.threshold, self.burn_in = float(delta), float(threshold), int(burn_in)
        self.reset()

    def reset(self) -> None:
        self.n = 0  # values seen since the last reset
        self.reference = 0.0  # mean of the burn-in values, then fixed
        self.mean = 0.0  # running mean of the relative values after the burn-in
        self.sum = 0.0
        self.minimum = 0.0

    def update(self, value: float) -> bool:
        value = float(value)
        if not math.isfinite(value):
            return False
        self.n += 1
        if self.n <= self.burn_in:
            self.reference += (value - self.reference) / self.n
            return False
        relative = value / max(self.reference, 1e-12)
        k = self.n - self.burn_in
        self.mean += (relative - self.mean) / k
        self.sum += relative - self.mean - self.delta
        self.minimum = min(self.minimum, self.sum)
        if self.sum - self.minimum > self.threshold:
            self.reset()
            return True
        return False

    def state(self) -> dict:
        keys = ("delta", "threshold", "burn_in", "n", "reference", "mean", "sum", "minimum")
        return {"kind": "builtin", **{k: getattr(self, k) for k in keys}}

    @classmethod
    def from_state(cls, state: dict) -> PageHinkley:
        d = cls(state["delta"], state["threshold"], state["burn_in"])
        for k in ("n", "reference", "mean", "sum", "minimum"):
            setattr(d, k, state[k])
        return d


class RiverDetector:
    """One of river's drift detectors (`adwin`: `river.drift.ADWIN`, `page_hinkley`:
    `river.drift.PageHinkley`), fed the same values.

    River's detectors are Python objects with internal buckets; rather than pickling them, the
    state is the list of values fed since the last detection (at most `max_replay`), replayed
    into a new detector on restore, which rebuilds it exactly while the list is whole.

    Args:
        name: `adwin` or `page_hinkley`.
        max_replay: most values kept for the replay (older ones are dropped from the state).
        **params: passed to the river class (e.g. `delta=0.002`).
    """

    def __init__(self, name: str, max_replay: int = 100_000, **params):
        if name not in ("adwin", "page_hinkley"):
            raise ValueError(f"unknown river detector {name!r}; choose adwin or page_hinkley")
        if importlib.util.find_spec("river") is None:
            raise ModuleNotFoundError(RIVER_MISSING.format(name=name))
        self.name, self.max_replay, self.params = name, int(max_replay), dict(params)
        self.reset()

    def reset(self) -> None:
        from river import drift

        cls = drift.ADWIN if self.name == "adwin" else drift.PageHinkley
        self.detector = cls(**self.params)
        self.seen: list[float] = []

    def update(self, value: float) -> bool:
        value = float(value)
        if not math.isfinite(value):
            return False
        self.detector.update(value)
        if self.detector.drift_detected:
            self.reset()
            return True
        self.seen.append(value)
        if len(self.seen) > self.max_replay:
            del self.seen[: len(self.seen) - self.max_replay]
        return False

    def state(self) -> dict:
        return {
            "kind": self.name,
            "params": self.params,
            "max_replay": self.max_replay,
            "seen": list(self.seen),
        }

    @classmethod
    def from_state(cls, state: dict) -> RiverDetector:
        d = cls(state["kind"], state["max_replay"], **state["params"])
        for value in state["seen"]:
            d.detector.update(value)
        d.seen = list(state["seen"])
        return d


def make_detector(name: str = "builtin", **params):
    """The detector called `name` (one of `DETECTORS`), with its parameters."""
    if name == "builtin":
        return PageHinkley(**params)
    if name in ("adwin", "page_hinkley"):
        return RiverDetector(name, **params)
    raise ValueError(f"unknown drift detector {name!r}; choose one of: {', '.join(DETECTORS)}")


def detector_from_state(state: dict):
    """The detector a `state()` describes."""
    if state["kind"] == "builtin":
        return PageHinkley.from_state(state)
    return RiverDetector.from_state(state)

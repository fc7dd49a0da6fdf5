"""Learning after deployment: when to adapt, what to adapt, and the guard rails around it.

An update takes a few gradient steps on a chosen subset of the weights, over windows the stream
has completed (inputs and, now that they have arrived, their true targets), kept in a bounded
replay buffer. The newest part of the buffer is held out: the update is kept only if the
held-out loss does not get worse, and rolled back otherwise. A non-finite loss skips the update,
the learning rate is bounded, and the update stops when its time budget is spent.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from liquidnets.deploy.drift import DETECTORS

POLICIES = ("off", "every", "drift")
PARAMS = ("head", "time", "all")
MAX_LR = 1e-2  # the bound on the learning rate of online updates
# the time-constant parameters: CfC's time gate heads (and the pure mode's w_tau), LTC's
# membrane capacitance and leak conductance (tau = cm / (gleak + synaptic conductances))
TIME_PARAMS = ("time_a", "time_b", "w_tau", "cm", "gleak")


@dataclass
class AdaptConfig:
    """How a stream learns after deployment.

    Args:
        policy: `off` (never), `every` (an update every `every` readings) or `drift` (updates
            every `every` readings during the `recovery` readings after a detected drift).
        every: readings between updates.
        params: what learns: `head` (the output layer), `time` (the time-constant parameters:
            CfC's time gate, LTC's `cm` and `gleak`) or `all`.
        lr: Adam's learning rate, at most `MAX_LR` (0.01).
        steps: gradient steps per update.
        batch_size: windows per gradient step.
        buffer: windows kept in the replay buffer (the newest ones).
        holdout: the newest fraction of the buffer held out to check an update.
        min_windows: windows needed before a first update (after a drift: windows completed
            since it).
        recovery: readings after a detected drift during which the `drift` policy adapts.
        max_ms: wall-time budget of one update in milliseconds; its gradient steps stop when it
            is spent (so the number of steps, and the result, can depend on the machine's speed).
        detector: `builtin` (our Page-Hinkley), `adwin` or `page_hinkley` (river's; needs the
            `drift` extra).
        detector_params: passed to the detector.
        seed: seeds the sampling of the replay buffer.
    """

    policy: str = "off"
    every: int = 25
    params: str = "all"
    lr: float = 1e-3
    steps: int = 5
    batch_size: int = 32
    buffer: int = 256
    holdout: float = 0.25
    min_windows: int = 16
    recovery: int = 500
    max_ms: float = 50.0
    detector: str = "builtin"
    detector_params: dict = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [
            (self.policy in POLICIES, f"policy must be one of {', '.join(POLICIES)}"),
            (self.params in PARAMS, f"params must be one of {', '.join(PARAMS)}"),
            (self.detector in DETECTORS, f"detector must be one of {', '.join(DETECTORS)}"),
            (0 < self.lr <= MAX_LR, f"lr must be in (0, {MAX_LR}]"),
            (0 < self.holdout < 1, "holdout must be in (0, 1)"),
            (self.max_ms > 0, "max_ms must be positive"),
        ]
        for name in ("every", "steps", "batch_size", "min_windows", "recovery"):
            checks.append((int(getattr(self, name)) >= 1, f"{name} must be at least 1"))
        checks.append((int(self.buffer) >= 2, "buffer must be at least 2"))
        for ok, message in checks:
            if not ok:
                raise ValueError(f"AdaptConfig: {message}; got {self.to_dict()}")

    @classmethod
    def parse(cls, spec: str | AdaptConfig | None, **fields) -> AdaptConfig:
        """`off`, `every:N`, `drift` or `drift:N` (N: readings between updates), as the
        `--adapt` flag takes it; `fields` set the rest."""
        if isinstance(spec, AdaptConfig):
            return spec
        text = (spec or "off").strip().lower()
        policy, _, every = text.partition(":")
        if policy not in POLICIES or (policy == "off" and every):
            raise ValueError(f"--adapt must be off, every:N, drift or drift:N; got {spec!r}")
        if every:
            if not every.isdigit() or int(every) < 1:
                raise ValueError(f"--adapt {spec!r}: N must be a positive whole number")
            fields["every"] = int(every)
        elif policy == "every":
            raise ValueError(f"--adapt {spec!r}: say how often, e.g. every:25")
        return cls(policy=policy, **fields)

    def to_dict(self) -> dict:
        return asdict(self)


def select_params(net: nn.Module, which: str) -> list[tuple[str, nn.Parameter]]:
    """The named parameters of `net` that `which` (`head`, `time` or `all`) adapts."""
    named = [(n, p) for n, p in net.named_parameters()]
    if which == "all":
        chosen = named
    elif which == "head":
        chosen = [(n, p) for n, p in named if ".head." in f".{n}"]
    else:
        chosen = [(n, p) for n, p in named if any(f".{t}" in f".{n}" for t in TIME_PARAMS)]
    if not chosen:
        raise ValueError(f"this model has no {which!r} parameters to adapt")
    return chosen


class ReplayBuffer:
    """The newest `capacity` completed windows: inputs `x (T, C)`, `dt (T,)`, targets `y (out,)`
    and the reading count at which each was completed."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.items: deque = deque(maxlen=capacity)

    def __len__(self) -> int:
        return len(self.items)

    def add(self, x: np.ndarray, dt: np.ndarray, y: np.ndarray, step: int) -> None:
        self.items.append((x, dt, y, step))

    def drop_before(self, step: int) -> None:
        """Forget the windows completed before reading `step` (they predate a drift)."""
        self.items = deque((i for i in self.items if i[3] >= step), maxlen=self.capacity)

    def arrays(self) -> dict[str, np.ndarray]:
        if not self.items:
            return {}
        x, dt, y, step = zip(*self.items)
        return {
            "x": np.stack(x),
            "dt": np.stack(dt),
            "y": np.stack(y),
            "step": np.asarray(step, np.int64),
        }

    @classmethod
    def from_arrays(cls, capacity: int, arrays: dict[str, np.ndarray]) -> ReplayBuffer:
        buf = cls(capacity)
        if arrays:
            for x, dt, y, s in zip(arrays["x"], arrays["dt"], arrays["y"], arrays["step"]):
                buf.add(x, dt, y, int(s))
        return buf


def _loss(net: nn.Module, x, dt, y) -> torch.Tensor:
    return nn.functional.mse_loss(net(x, dt), y)


def update(
    net: nn.Module, buffer: ReplayBuffer, config: AdaptConfig, rng: np.random.Generator
) -> dict:
    """One guarded update of `net` from `buffer`. Returns what happened: `result` is
    `applied`, `rolled_back` (the held-out loss got worse), `skipped` (a non-finite loss) or
    `too_few` (not enough windows), with the held-out losses before and after, the gradient
    steps taken and the milliseconds spent."""
    start = time.perf_counter()
    n = len(buffer)
    n_hold = max(1, round(config.holdout * n))
    if n - n_hold < 1:
        return {"result": "too_few", "windows": n}
    arrays = buffer.arrays()
    tensors = {k: torch.as_tensor(arrays[k]) for k in ("x", "dt", "y")}
    hold = {k: v[n - n_hold :] for k, v in tensors.items()}
    train = {k: v[: n - n_hold] for k, v in tensors.items()}
    params = [p for _, p in select_params(net, config.params)]
    saved = [p.detach().clone() for p in params]

    def restore() -> None:
        with torch.no_grad():
            for p, s in zip(params, saved):
                p.copy_(s)

    net.eval()
    with torch.no_grad():
        before = float(_loss(net, hold["x"], hold["dt"], hold["y"]))
    optimizer = torch.optim.Adam(params, lr=min(config.lr, MAX_LR))
    taken, result = 0, None
    for _ in range(config.steps):
        idx = torch.as_tensor(rng.integers(0, n - n_hold, size=min(config.batch_size, n - n_hold)))
        loss = _loss(net, train["x"][idx], train["dt"][idx], train["y"][idx])
        if not torch.isfinite(loss):
            result = "skipped"
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        taken += 1
        if (time.perf_counter() - start) * 1000 >= config.max_ms:
            break
    for p in params:
        p.grad = None
    after = math.nan
    if result is None:
        with torch.no_grad():
            after = float(_loss(net, hold["x"], hold["dt"], hold["y"]))
        result = "applied" if math.isfinite(after) and after <= before else "rolled_back"
    if result != "applied":
        restore()
    return {
        "result": result,
        "before": before,
        "after": after,
        "steps": taken,
        "windows": n,
        "ms": (time.perf_counter() - start) * 1000,
    }

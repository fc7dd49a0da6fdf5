"""Learning after deployment: when to adapt, what to adapt, and the guard rails around it.

An update takes a few gradient steps on a chosen subset of the weights, over windows the stream
has completed (inputs and, now that they have arrived, their true targets), kept in a bounded
replay buffer. The newest part of the buffer is held out: the update is kept only if the
held-out loss does not get worse, and rolled back otherwise. A non-finite loss skips the update,
the learning rate is bounded, and the update stops when its time budget is spent.
"""

from __future__ import annotations

import copy
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
MAX_LR = 0.05  # the bound on the learning rate of online updates
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
        lr: Adam's learning rate, at most `MAX_LR` (0.05).
        steps: gradient steps per update.
        batch_size: windows per gradient step.
        buffer: windows kept in the replay buffer (the newest ones).
        holdout: the newest fraction of the buffer held out to check an update.
        min_windows: windows needed before a first update (after a drift: windows completed
            since it).
        recovery: readings after a detected drift during which the `drift` policy adapts.
        margin: how sure the held-out check must be: an update is kept when the held-out
            windows' losses fall, on average, by at least `margin` standard errors of the
            paired differences (0: by anything).
        max_ms: wall-time budget of one update in milliseconds; its gradient steps stop when it
            is spent (so the number of steps, and the result, can depend on the machine's speed).
        detector: `builtin` (our Page-Hinkley), `adwin` or `page_hinkley` (river's; needs the
            `drift` extra).
        detector_params: passed to the detector.
        seed: seeds the sampling of the replay buffer.
    """

    policy: str = "off"
    every: int = 20
    params: str = "head"
    lr: float = 1e-2
    steps: int = 5
    batch_size: int = 32
    buffer: int = 256
    holdout: float = 0.25
    min_windows: int = 16
    recovery: int = 500
    max_ms: float = 50.0
    margin: float = 1.0
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
            (self.margin >= 0, "margin must be non-negative"),
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
    """The newest `capacity` completed windows, each a dict of arrays: inputs `x (T, C)`,
    `dt (T,)`, targets `y (out,)`, `step` (the reading count when it was completed), and what
    the stream computed for it: `feature`, the head's input at the window's last row (the
    carried state's read-out), and `last`, that row's targets repeated over the horizon."""

    FIELDS = ("x", "dt", "y", "step", "feature", "last")

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.items: deque = deque(maxlen=capacity)

    def __len__(self) -> int:
        return len(self.items)

    def add(self, **item) -> None:
        self.items.append(item)

    def drop_before(self, step: int) -> None:
        """Forget the windows completed before reading `step` (they predate a drift)."""
        self.items = deque((i for i in self.items if i["step"] >= step), maxlen=self.capacity)

    def arrays(self, keys=None) -> dict[str, np.ndarray]:
        """The fields `keys` (default: every field the windows hold) of every window, stacked
        (an empty dict when there are none)."""
        if not self.items:
            return {}
        if keys is None:
            keys = [k for k in self.FIELDS if self.items[0].get(k) is not None]
        return {k: np.stack([np.asarray(i[k]) for i in self.items]) for k in keys}

    @classmethod
    def from_arrays(cls, capacity: int, arrays: dict[str, np.ndarray]) -> ReplayBuffer:
        buf = cls(capacity)
        for k in range(len(arrays.get("step", ()))):
            buf.add(**{f: arrays[f][k] if f in arrays else None for f in cls.FIELDS})
        return buf


def _outputs(net: nn.Module, part: dict, head_only: bool) -> torch.Tensor:
    """The network's outputs for buffered windows: with `head_only`, from the stored features
    (the recurrent part is fixed, so its read-outs are what the stream computed), else by
    running the whole network over the windows."""
    if head_only:
        return net.net.head(part["feature"]) + part["last"]
    return net(part["x"], part["dt"])


def _window_losses(net: nn.Module, part: dict, head_only: bool) -> torch.Tensor:
    with torch.no_grad():
        return ((_outputs(net, part, head_only) - part["y"]) ** 2).mean(dim=1)  # (n,)


def _better(after: torch.Tensor, before: torch.Tensor, margin: float) -> bool:
    """Whether the held-out windows' losses improved: the mean paired difference must be below
    zero by `margin` standard errors (0: any improvement)."""
    diff = (after - before).double()
    if not bool(torch.isfinite(diff).all()):
        return False
    n = diff.numel()
    se = float(diff.std()) / math.sqrt(n) if n > 1 else 0.0
    return float(diff.mean()) < -margin * se or (margin == 0 and float(diff.mean()) <= 0)


class Learner:
    """Guarded online updates of `net`'s chosen parameters, with one Adam optimiser kept from
    update to update (its moment estimates make the steps steadier than a fresh optimiser's
    first steps, which move every weight by about the learning rate).

    Args:
        net: the task network (`net(x, dt) -> (B, out)`), updated in place.
        config: the `AdaptConfig`.
        window: input rows per window: the purge gap between training and held-out windows
            is up to this many windows.
    """

    def __init__(self, net: nn.Module, config: AdaptConfig, window: int = 1):
        self.net, self.config, self.window = net, config, window
        self.params = [p for _, p in select_params(net, config.params)]
        # only the output layer learns: the stream's stored read-outs stand for the rest
        self.head_only = config.params == "head" and hasattr(net, "net")
        self.optimizer = torch.optim.Adam(self.params, lr=min(config.lr, MAX_LR))
        self.rng = np.random.default_rng(config.seed)
        self.previous: list[torch.Tensor] | None = None  # the weights the last update replaced

    def _set(self, values: list[torch.Tensor]) -> None:
        with torch.no_grad():
            for p, v in zip(self.params, values):
                p.copy_(v)

    def update(self, buffer: ReplayBuffer) -> dict:
        """One guarded update from `buffer`: gradient steps on its older windows, checked on
        the newest `holdout` fraction (up to a window's length of windows between them is left
        out, as consecutive windows share rows). Returns what happened: `result` is `applied`,
        `rolled_back` (the held-out loss did not improve enough), `reverted` (the weights the
        last applied update replaced are now better on the newest data, so they come back: an
        update that looked good and went bad later is undone too), `skipped` (a non-finite
        loss) or `too_few` (not enough windows), with the held-out losses before and after, the
        gradient steps taken and the milliseconds spent. Whatever is not applied is undone,
        the optimiser's state included."""
        config, net, params = self.config, self.net, self.params
        start = time.perf_counter()
        n = len(buffer)
        n_hold = max(1, round(config.holdout * n))
        gap = min(self.window, max(0, n - 2 * n_hold))
        n_train = n - n_hold - gap
        if n_train < 1:
            return {"result": "too_few", "windows": n}
        keys = ("feature", "last", "y") if self.head_only else ("x", "dt", "y")
        tensors = {k: torch.as_tensor(v) for k, v in buffer.arrays(keys).items()}
        hold = {k: v[n - n_hold :] for k, v in tensors.items()}
        train = {k: v[:n_train] for k, v in tensors.items()}
        saved = [p.detach().clone() for p in params]
        saved_opt = copy.deepcopy(self.optimizer.state_dict())
        net.eval()
        before_each = _window_losses(net, hold, self.head_only)
        before = float(before_each.mean())
        if self.previous is not None:
            self._set(self.previous)
            earlier = _window_losses(net, hold, self.head_only)
            if _better(earlier, before_each, config.margin):
                self.previous = None
                return {
                    "result": "reverted",
                    "before": before,
                    "after": float(earlier.mean()),
                    "steps": 0,
                    "windows": n,
                    "ms": (time.perf_counter() - start) * 1000,
                }
            self._set(saved)
        taken, result = 0, None
        for _ in range(config.steps):
            size = min(config.batch_size, n_train)
            idx = torch.as_tensor(self.rng.integers(0, n_train, size=size))
            batch = {k: v[idx] for k, v in train.items()}
            loss = nn.functional.mse_loss(_outputs(net, batch, self.head_only), batch["y"])
            if not torch.isfinite(loss):
                result = "skipped"
                break
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            self.optimizer.step()
            taken += 1
            if (time.perf_counter() - start) * 1000 >= config.max_ms:
                break
        self.optimizer.zero_grad(set_to_none=True)
        after = math.nan
        if result is None:
            after_each = _window_losses(net, hold, self.head_only)
            after = float(after_each.mean())
            result = "applied" if _better(after_each, before_each, config.margin) else "rolled_back"
        if result == "applied":
            self.previous = saved
        else:
            self._set(saved)
            self.optimizer.load_state_dict(saved_opt)
        return {
            "result": result,
            "before": before,
            "after": after,
            "steps": taken,
            "windows": n,
            "ms": (time.perf_counter() - start) * 1000,
        }

    def state(self) -> tuple[dict[str, np.ndarray], dict]:
        """The optimiser's moments and the replaced weights as arrays, the rest (steps,
        sampling RNG) as JSON."""
        arrays, steps = {}, []
        for i, p in enumerate(self.params):
            if self.previous is not None:
                arrays[f"previous.{i}"] = self.previous[i].numpy()
            st = self.optimizer.state.get(p)
            steps.append(None if not st else float(st["step"]))
            if st:
                arrays[f"adam.{i}.exp_avg"] = st["exp_avg"].numpy()
                arrays[f"adam.{i}.exp_avg_sq"] = st["exp_avg_sq"].numpy()
        return arrays, {"steps": steps, "rng": self.rng.bit_generator.state}

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        for i, (p, step) in enumerate(zip(self.params, meta["steps"])):
            if step is not None:
                self.optimizer.state[p] = {
                    "step": torch.tensor(step),
                    "exp_avg": torch.as_tensor(arrays[f"adam.{i}.exp_avg"]).clone(),
                    "exp_avg_sq": torch.as_tensor(arrays[f"adam.{i}.exp_avg_sq"]).clone(),
                }
        self.rng.bit_generator.state = meta["rng"]
        if "previous.0" in arrays:
            self.previous = [
                torch.as_tensor(arrays[f"previous.{i}"]).clone() for i in range(len(self.params))
            ]

"""The models behind every task, one interface: `net(x (B, T, C), dt (B, T)) -> (B, out)`.

Liquid models (`cfc`, `ltc`, and their NCP-wired variants `cfc-ncp`, `ltc-ncp`) read the
elapsed times as their timespans. The recurrent baselines `lstm` and `gru` get the elapsed time
as one more input feature, so every model sees the same information, and they are sized to
about the same number of parameters as the liquid model they are compared with. `naive` and
`seasonal_naive` repeat the last value (or the value one season back); they have no weights.

    >>> import torch
    >>> net = build("cfc", n_inputs=3, n_outputs=2, units=16)
    >>> net(torch.randn(4, 10, 3), torch.ones(4, 10)).shape
    torch.Size([4, 2])
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from liquidnets.layers import LTC, CfC
from liquidnets.wirings import AutoNCP

LIQUID = ("cfc", "ltc", "cfc-ncp", "ltc-ncp")
RECURRENT = ("lstm", "gru")
NAIVE = ("naive", "seasonal_naive")
MODELS = LIQUID + RECURRENT + NAIVE


class LiquidNet(nn.Module):
    """A liquid layer over the window, then a linear head on its last output.

    Args:
        kind: `cfc`, `ltc`, `cfc-ncp` or `ltc-ncp`.
        n_inputs: input features per step.
        n_outputs: values predicted per window (horizon x targets, or classes).
        units: neurons of the liquid layer.
        seed: seeds the NCP wiring's random synapses.
    """

    def __init__(self, kind: str, n_inputs: int, n_outputs: int, units: int, seed: int = 0):
        super().__init__()
        wired = kind.endswith("-ncp")
        if wired:
            # motor neurons = outputs, as in the NCP papers; AutoNCP needs a few more units
            motor = min(n_outputs, max(1, units - 3))
            cells = AutoNCP(units, motor, seed=seed)
        else:
            cells = units
        layer = CfC if kind.startswith("cfc") else LTC
        self.rnn = layer(n_inputs, cells, batch_first=True, return_sequences=False)
        self.head = nn.Linear(self.rnn.output_size, n_outputs)

    def forward(self, x: Tensor, dt: Tensor) -> Tensor:
        y, _ = self.rnn(x, timespans=dt)  # (B, output_size): the last step
        return self.head(y)


class RecurrentNet(nn.Module):
    """torch's fused `nn.LSTM` or `nn.GRU`, the elapsed time as one more feature, then a
    linear head on the last hidden state."""

    def __init__(self, kind: str, n_inputs: int, n_outputs: int, hidden: int):
        super().__init__()
        rnn = nn.LSTM if kind == "lstm" else nn.GRU
        self.rnn = rnn(n_inputs + 1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_outputs)

    def forward(self, x: Tensor, dt: Tensor) -> Tensor:
        out, _ = self.rnn(torch.cat([x, dt.unsqueeze(-1)], dim=-1))  # (B, T, hidden)
        return self.head(out[:, -1])


class NaiveNet(nn.Module):
    """The last value of each target (`naive`), or the value one `season` before each
    forecast step (`seasonal_naive`), read from the input window: no weights.

    Args:
        target_index: positions of the targets among the input features.
        horizon: forecast steps; the output is `(B, horizon * len(target_index))`,
            step-major like the other models' forecasts.
        season: the period in steps (1 gives `naive`).
    """

    def __init__(self, target_index: list[int], horizon: int, season: int = 1):
        super().__init__()
        self.target_index = list(target_index)
        self.horizon = horizon
        self.season = season

    def forward(self, x: Tensor, dt: Tensor) -> Tensor:
        T = x.shape[1]
        if self.season > T:
            raise ValueError(f"seasonal_naive needs lookback >= season ({self.season}); got {T}")
        targets = x[:, :, self.target_index]  # (B, T, n_targets)
        # forecast step k = 1..H, at input position T - 1 + k, repeats the latest value a
        # whole number of seasons earlier: position T - 1 + k - season * ceil(k / season)
        m = self.season
        steps = [T - 1 + k - m * math.ceil(k / m) for k in range(1, self.horizon + 1)]
        return targets[:, steps].reshape(x.shape[0], -1)  # (B, H * n_targets), step-major


class FromLastValue(nn.Module):
    """Forecast the change from the last observed value: `net`'s output is added to the last
    input row's targets, repeated over the horizon. A network that outputs zeros is then the
    naive forecast, so training starts from that baseline and learns what it misses (the
    normalisation of NLinear and of many forecasting libraries)."""

    def __init__(self, net: nn.Module, target_index: list[int], horizon: int):
        super().__init__()
        self.net = net
        self.target_index = list(target_index)
        self.horizon = horizon

    def forward(self, x: Tensor, dt: Tensor) -> Tensor:
        last = x[:, -1, self.target_index].repeat(1, self.horizon)  # (B, H * n_targets)
        return last + self.net(x, dt)


def parameter_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def matched_hidden(kind: str, n_inputs: int, n_outputs: int, budget: int) -> int:
    """The hidden size of an `lstm`/`gru` baseline whose parameter count is closest to
    `budget` (the liquid model's), at least 2."""
    gates = 4 if kind == "lstm" else 3

    def count(h: int) -> int:
        return gates * (h * (n_inputs + 1) + h * h + 2 * h) + h * n_outputs + n_outputs

    return min(range(2, 1025), key=lambda h: abs(count(h) - budget))


def build(
    name: str,
    *,
    n_inputs: int,
    n_outputs: int,
    units: int = 32,
    target_index: list[int] | None = None,
    horizon: int = 1,
    season: int = 1,
    budget: int | None = None,
    seed: int = 0,
) -> nn.Module:
    """The network called `name` (one of `MODELS`).

    Args:
        name: the model.
        n_inputs: input features per step.
        n_outputs: outputs per window.
        units: neurons of a liquid model.
        target_index, horizon, season: what the naive models repeat (see `NaiveNet`).
        budget: the parameter count an `lstm`/`gru` baseline should match; None: a liquid
            `cfc` of `units` neurons.
        seed: seeds the initial weights and the NCP wiring, so that the same arguments give
            the same network (the global torch RNG is left as it was).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _build(name, n_inputs, n_outputs, units, target_index, horizon, season, budget, seed)


def _build(name, n_inputs, n_outputs, units, target_index, horizon, season, budget, seed):
    if name in LIQUID:
        return LiquidNet(name, n_inputs, n_outputs, units, seed=seed)
    if name in RECURRENT:
        if budget is None:
            budget = parameter_count(LiquidNet("cfc", n_inputs, n_outputs, units))
        return RecurrentNet(
            name, n_inputs, n_outputs, matched_hidden(name, n_inputs, n_outputs, budget)
        )
    if name in NAIVE:
        if target_index is None:
            raise ValueError(f"model '{name}' needs target_index (the targets among the inputs)")
        return NaiveNet(target_index, horizon, season if name == "seasonal_naive" else 1)
    raise ValueError(f"unknown model '{name}'; choose one of: {', '.join(MODELS)}")

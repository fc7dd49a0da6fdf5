"""The models behind every task, one interface: `net(x (B, T, C), dt (B, T)) -> (B, out)`,
or with padded series of different lengths `net(x, dt, mask (B, T))`, read at each series'
last real step.

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
POOLS = ("last", "mean", "max")


def check_pool(pool: str) -> tuple[str, ...]:
    """The parts of a pooling such as `"last+mean"`: each of `POOLS`, once."""
    parts = tuple(pool.split("+")) if isinstance(pool, str) else ()
    if not parts or any(p not in POOLS for p in parts) or len(set(parts)) < len(parts):
        raise ValueError(
            f"pool must be one or more of {', '.join(POOLS)} joined by '+' (e.g. last+mean); "
            f"got {pool!r}"
        )
    return parts


def pool_steps(seq: Tensor, mask: Tensor | None, parts: tuple[str, ...]) -> Tensor:
    """Outputs over time `seq (B, T, F)` pooled into `(B, len(parts) * F)`: the last valid
    step's (`last`), the mean (`mean`) or the maximum (`max`) over the valid steps, side by
    side. A mask must hold at least one valid step per sequence, its padding at the end."""
    valid = torch.ones(seq.shape[:2], dtype=torch.bool, device=seq.device) if mask is None else mask
    keep = valid.unsqueeze(-1)  # (B, T, 1)
    out = []
    for part in parts:
        if part == "last":
            last = (valid.long().sum(dim=1) - 1).clamp(min=0)  # (B,)
            out.append(seq[torch.arange(len(seq), device=seq.device), last])
        elif part == "mean":
            count = keep.sum(dim=1).clamp(min=1)  # (B, 1)
            out.append((seq * keep).sum(dim=1) / count)
        else:
            out.append(seq.masked_fill(~keep, float("-inf")).amax(dim=1))
    return torch.cat(out, dim=-1)


class LiquidNet(nn.Module):
    """A liquid layer over the window, then a linear head on its last output (or, with
    `pool`, on its outputs pooled over time).

    Args:
        kind: `cfc`, `ltc`, `cfc-ncp` or `ltc-ncp`.
        n_inputs: input features per step.
        n_outputs: values predicted per window (horizon x targets, or classes).
        units: neurons of the liquid layer.
        seed: seeds the NCP wiring's random synapses.
        backbone_layers: the CfC's backbone depth (None: the layer's default, 1 layer of
            128; 0: the heads read `[x; h]` directly). Only for `cfc`.
        mixed_memory: an LSTM memory beside the liquid cell.
        pool: what the head reads: `last` (the last step's output), or the outputs pooled
            over (valid) time steps, `mean`, `max`, or several side by side (`last+mean`).
    """

    def __init__(
        self,
        kind: str,
        n_inputs: int,
        n_outputs: int,
        units: int,
        seed: int = 0,
        *,
        backbone_layers: int | None = None,
        mixed_memory: bool = False,
        pool: str = "last",
    ):
        super().__init__()
        wired = kind.endswith("-ncp")
        if wired:
            # motor neurons = outputs, as in the NCP papers; AutoNCP needs a few more units
            motor = min(n_outputs, max(1, units - 3))
            cells = AutoNCP(units, motor, seed=seed)
        else:
            cells = units
        self.pool = check_pool(pool)
        sequences = self.pool != ("last",)
        options = {
            "batch_first": True, "return_sequences": sequences, "mixed_memory": mixed_memory,
        }  # fmt: skip
        if kind == "cfc" and backbone_layers is not None:
            options["backbone_layers"] = backbone_layers
        layer = CfC if kind.startswith("cfc") else LTC
        self.rnn = layer(n_inputs, cells, **options)
        self.head = nn.Linear(len(self.pool) * self.rnn.output_size, n_outputs)

    def forward(self, x: Tensor, dt: Tensor, mask: Tensor | None = None) -> Tensor:
        # (B, output_size): the last step, or with a mask the last valid one (the layer holds
        # its state over padded steps); with pooling (B, T, output_size) first
        y, _ = self.rnn(x, timespans=dt, mask=mask)
        if self.rnn.return_sequences:
            y = pool_steps(y, mask, self.pool)
        return self.head(y)


def check_dilation(dilation) -> int:
    """`dilation` if it is a positive whole number (a stem's dilation factor), else a
    one-line `ValueError`."""
    if isinstance(dilation, bool) or not isinstance(dilation, int) or dilation < 1:
        raise ValueError(f"dilation must be a positive whole number; got {dilation!r}")
    return dilation


class PatchConv(nn.Module):
    """Learned local shapes before the recurrent layer: convolutions over the rows of a
    series, read at full resolution out of patches of `rows` rows, then each feature's
    maximum over the rows of each patch.

    A step of a patched series holds `rows` consecutive rows of `channels` values side by
    side (`liquidnets.data.pad_series`). Here the steps are laid end to end again, `layers`
    convolutions of width `kernel` (each with batch normalisation and a ReLU, as in the
    fully convolutional baseline of Wang et al., IJCNN 2017) find local shapes anywhere in
    the series, and the maximum of each of the `filters` features over a patch says whether
    its shape occurred there. With `dilation=d`, convolution `i` (from 0) reads every
    `d**i`-th row, so two layers of width 7 see 19 rows at `d=2` instead of 13: longer
    shapes for the same weights (the dilated convolutions of WaveNet, van den Oord et al.,
    2016). The liquid layer then reads one step per patch, as the NCP of
    Lechner et al. (Nature MI 2020) read the features of a convolutional head.

        >>> stem = PatchConv(channels=2, rows=4, filters=8)
        >>> stem(torch.randn(3, 5, 4 * 2)).shape  # (batch, patches, filters)
        torch.Size([3, 5, 8])
    """

    def __init__(
        self,
        channels: int,
        rows: int,
        filters: int = 32,
        kernel: int = 7,
        layers: int = 2,
        dilation: int = 1,
    ):
        super().__init__()
        if kernel % 2 == 0 or kernel < 1:
            raise ValueError(f"kernel must be a positive odd width; got {kernel}")
        check_dilation(dilation)
        self.channels, self.rows = channels, rows
        blocks: list[nn.Module] = []
        width = channels
        for i in range(layers):
            d = dilation**i  # "same" padding keeps every row's position
            blocks += [
                nn.Conv1d(
                    width, filters, kernel, padding=d * (kernel // 2), dilation=d, bias=False
                ),
                nn.BatchNorm1d(filters),
                nn.ReLU(),
            ]
            width = filters
        self.convs = nn.Sequential(*blocks)
        self.filters = filters

    def forward(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        rows = x.reshape(b, t * self.rows, self.channels).transpose(1, 2)  # (B, C, T * rows)
        z = self.convs(rows).reshape(b, self.filters, t, self.rows)
        return z.amax(dim=-1).transpose(1, 2)  # (B, T, filters)


class Stemmed(nn.Module):
    """A network `net` that reads the features of `stem` (e.g. `PatchConv`) per step."""

    def __init__(self, stem: nn.Module, net: nn.Module):
        super().__init__()
        self.stem, self.net = stem, net

    def forward(self, x: Tensor, dt: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.net(self.stem(x), dt, mask)


class RecurrentNet(nn.Module):
    """torch's fused `nn.LSTM` or `nn.GRU`, the elapsed time as one more feature, then a
    linear head on the last hidden state (with a mask, padded at the end: the last real
    step's)."""

    def __init__(self, kind: str, n_inputs: int, n_outputs: int, hidden: int, pool: str = "last"):
        super().__init__()
        rnn = nn.LSTM if kind == "lstm" else nn.GRU
        self.pool = check_pool(pool)
        self.rnn = rnn(n_inputs + 1, hidden, batch_first=True)
        self.head = nn.Linear(len(self.pool) * hidden, n_outputs)

    def forward(self, x: Tensor, dt: Tensor, mask: Tensor | None = None) -> Tensor:
        out, _ = self.rnn(torch.cat([x, dt.unsqueeze(-1)], dim=-1))  # (B, T, hidden)
        if mask is None and self.pool == ("last",):
            return self.head(out[:, -1])
        # padding sits at the end, so the steps up to a series' last real one are causal and
        # unaffected by it: pool over those
        return self.head(pool_steps(out, mask, self.pool))


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
    """Forecast the change from a base read off the window: `net`'s output (and, with
    `linear`, a linear map of the window's target history) is added to the base.

    The base of each forecast step is the last observed value of each target, or, for the
    steps flagged in `seasonal`, the value one season (`season=m`) before it, as `NaiveNet`.
    A network that outputs zeros is then the naive (or seasonal naive) forecast, so training
    starts from that baseline and learns what it misses (the normalisation of
    NLinear and of many forecasting libraries).

    With `linear`, `W · vec(z - z_T) + b` is added, `z` the window's `(lookback, n_targets)`
    target history and `z_T` its last row: the linear autoregression of NLinear (Zeng et al.,
    AAAI 2023), started at zero. It carries the level, trend and season the window shows
    directly to the output, so the recurrent network only learns what a linear map misses.

        forecast = base(x) + W · vec(z - z_T) + b + net(x, dt)

    Args:
        net: the network, `net(x, dt) -> (B, horizon * n_targets)`.
        target_index: positions of the targets among the input features.
        horizon: forecast steps.
        season: the base's period in steps (1: the last value for every step).
        lookback: the window length, needed with `linear`.
        linear: add the linear map of the target history.
        seasonal: per horizon step, whether its base is one season back (None: every step
            when `season > 1`).
        future_index: positions of future covariates' lead columns (see
            `liquidnets.data.covariates`): a linear map, started at zero, of their last
            `horizon + 1` rows (the covariates now and over the forecast steps) is added too.
    """

    def __init__(
        self,
        net: nn.Module,
        target_index: list[int],
        horizon: int,
        *,
        season: int = 1,
        lookback: int | None = None,
        linear: bool = False,
        seasonal: list[bool] | None = None,
        future_index: list[int] | None = None,
    ):
        super().__init__()
        self.net = net
        self.target_index = list(target_index)
        self.horizon = horizon
        self.season = int(season)
        if seasonal is None:
            seasonal = [self.season > 1] * horizon
        if len(seasonal) != horizon:
            raise ValueError(
                f"seasonal needs one flag per horizon step ({horizon}); got {seasonal}"
            )
        self.seasonal = [bool(f) and self.season > 1 for f in seasonal]
        m = self.season
        # offsets from the window's last row: 0 (the last value) or one season before step k
        self.back = [
            k - m * math.ceil(k / m) if f else 0
            for k, f in zip(range(1, horizon + 1), self.seasonal)
        ]
        self.linear = None
        if linear:
            if not lookback:
                raise ValueError("FromLastValue(linear=True) needs the lookback")
            n = len(self.target_index)
            self.linear = nn.Linear(lookback * n, horizon * n)
            nn.init.zeros_(self.linear.weight)  # start as the base alone
            nn.init.zeros_(self.linear.bias)
        self.future_index = list(future_index or [])
        self.future = None
        if self.future_index:
            if not lookback or lookback <= horizon:
                raise ValueError("FromLastValue(future_index=...) needs lookback > horizon")
            n = len(self.target_index)
            self.future = nn.Linear((horizon + 1) * len(self.future_index), horizon * n)
            nn.init.zeros_(self.future.weight)
            nn.init.zeros_(self.future.bias)

    @property
    def windowed(self) -> bool:
        """Whether the offset reads more of the window than its last row."""
        return any(self.seasonal) or self.linear is not None or self.future is not None

    def offset(self, x: Tensor) -> Tensor:
        """Everything but `net`: the base and the linear map, `(B, horizon * n_targets)`."""
        out = self.base_forecast(x)
        if self.linear is not None:
            z = x[:, :, self.target_index]  # (B, T, n_targets)
            out = out + self.linear((z - z[:, -1:]).flatten(1))
        if self.future is not None:  # the leads' last rows: the covariates now and ahead
            ahead = x[:, -self.horizon - 1 :, self.future_index]
            out = out + self.future(ahead.flatten(1))
        return out

    def shrink(self, weights: Tensor) -> None:
        """Scale what is learnt (the linear map and `net`'s output layer) per output, so the
        forecast becomes `base + weights * (linear + net)`: rows of the last linear layers,
        so streaming and export need nothing new. `weights`: `(horizon * n_targets,)`."""
        layers = [self.linear, self.future, getattr(self.net, "head", None)]
        with torch.no_grad():
            for layer in (layer for layer in layers if layer is not None):
                layer.weight.mul_(weights[:, None])
                layer.bias.mul_(weights)

    def base_forecast(self, x: Tensor) -> Tensor:
        """The base alone: the last value, or one season back, per step."""
        T = x.shape[1]
        if T + min(self.back) < 1:
            raise ValueError(f"the seasonal base needs lookback >= season ({self.season}); got {T}")
        rows = [T - 1 + b for b in self.back]
        return x[:, rows][:, :, self.target_index].reshape(x.shape[0], -1)  # step-major

    def forward(self, x: Tensor, dt: Tensor) -> Tensor:
        return self.offset(x) + self.net(x, dt)


class Ensemble(nn.Module):
    """Classifiers trained apart (e.g. from different seeds) as one: the log of their mean
    class probabilities, so that a softmax of the output is the mean of theirs.

        >>> members = [build("cfc", n_inputs=2, n_outputs=3, units=8, seed=s) for s in (0, 1)]
        >>> x, dt = torch.randn(4, 5, 2), torch.ones(4, 5)
        >>> mean = sum(torch.softmax(m(x, dt), -1) for m in members) / 2
        >>> torch.allclose(torch.softmax(Ensemble(members)(x, dt), -1), mean, atol=1e-6)
        True
    """

    def __init__(self, members):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: Tensor, dt: Tensor, mask: Tensor | None = None) -> Tensor:
        extra = () if mask is None else (mask,)
        logp = torch.stack([m(x, dt, *extra).log_softmax(-1) for m in self.members])  # (M, B, K)
        return torch.logsumexp(logp, dim=0) - math.log(len(self.members))


def parameter_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def matched_hidden(kind: str, n_inputs: int, n_outputs: int, budget: int, pooled: int = 1) -> int:
    """The hidden size of an `lstm`/`gru` baseline whose parameter count is closest to
    `budget` (the liquid model's), at least 2; `pooled`: how many poolings its head reads."""
    gates = 4 if kind == "lstm" else 3

    def count(h: int) -> int:
        return gates * (h * (n_inputs + 1) + h * h + 2 * h) + pooled * h * n_outputs + n_outputs

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
    backbone_layers: int | None = None,
    mixed_memory: bool = False,
    pool: str = "last",
    stem: dict | None = None,
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
        backbone_layers, mixed_memory: the liquid layer's options (see `LiquidNet`).
        pool: what the head of a liquid or recurrent model reads: `last`, or outputs pooled
            over time (see `LiquidNet`).
        stem: `PatchConv` arguments (`channels`, `rows`, `filters`, ...) for a liquid or
            recurrent model that reads patches of `rows` rows of `channels` values
            (`n_inputs = rows * channels`) through convolutions; None: the patches as they
            are. A recurrent baseline gets the same stem, its `budget` less the stem's
            parameters left to the recurrent layer.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        liquid = {"backbone_layers": backbone_layers, "mixed_memory": mixed_memory, "pool": pool}
        if stem is None or name in NAIVE:
            return _build(
                name, n_inputs, n_outputs, units, target_index, horizon, season, budget, seed,
                liquid,
            )  # fmt: skip
        conv = PatchConv(**stem)
        if n_inputs != conv.rows * conv.channels:
            raise ValueError(
                f"a stem over patches of {conv.rows} rows of {conv.channels} values needs "
                f"{conv.rows * conv.channels} inputs per step; got {n_inputs}"
            )
        if budget is not None:
            budget = max(1, budget - parameter_count(conv))
        net = _build(
            name, conv.filters, n_outputs, units, target_index, horizon, season, budget, seed,
            liquid,
        )  # fmt: skip
        return Stemmed(conv, net)


def _build(name, n_inputs, n_outputs, units, target_index, horizon, season, budget, seed, liquid):
    if name in LIQUID:
        if not name.startswith("cfc") or name.endswith("-ncp"):
            liquid = {**liquid, "backbone_layers": None}
        return LiquidNet(name, n_inputs, n_outputs, units, seed=seed, **liquid)
    if name in RECURRENT:
        if budget is None:
            budget = parameter_count(LiquidNet("cfc", n_inputs, n_outputs, units, **liquid))
        pool = liquid["pool"]
        hidden = matched_hidden(name, n_inputs, n_outputs, budget, len(check_pool(pool)))
        return RecurrentNet(name, n_inputs, n_outputs, hidden, pool=pool)
    if name in NAIVE:
        if target_index is None:
            raise ValueError(f"model '{name}' needs target_index (the targets among the inputs)")
        return NaiveNet(target_index, horizon, season if name == "seasonal_naive" else 1)
    raise ValueError(f"unknown model '{name}'; choose one of: {', '.join(MODELS)}")

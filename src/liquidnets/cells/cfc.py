"""Closed-form Continuous-time (CfC) cells: dense `CfCCell` and wiring-shaped `WiredCfCCell`."""

from __future__ import annotations

import re

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liquidnets.cells._common import WiredSizes, as_timestep, make_activation
from liquidnets.wirings import Wiring

MODES = ("default", "pure", "no_gate")


class CfCCell(nn.Module):
    r"""One step of a Closed-form Continuous-time cell (Hasani et al., Nature MI 2022).

    A CfC replaces the numerical ODE solve of an LTC by a closed-form approximation of its
    solution, so one step costs a few dense layers whatever the elapsed time `t`.

    A backbone of `backbone_layers` dense layers reads the input and the state,

        z = act(W_L ... act(W_1 [x; h] + b_1) ... + b_L)        (z = [x; h] with 0 layers)

    and heads read `z`. With `f_1 = tanh(W_f1 z)`, `f_2 = tanh(W_f2 z)` and the time gate
    `s = sigmoid(W_a z * t + W_b z)`:

    * `default`: `h' = f_1 * (1 - s) + s * f_2`, the gated closed form: `s` moves the state
      from one learned target to the other as time elapses;
    * `no_gate`: `h' = f_1 + s * f_2`;
    * `pure`: the direct closed-form solution of the LTC ODE,
      `h' = -A * exp(-t * (|w_tau| + |f|)) * f + A` with `f = W_f1 z` (no tanh), learned
      `A` and `w_tau`, one per unit.

    Args:
        input_size: features of `x`.
        hidden_size: units of `h`.
        mode: `"default"`, `"pure"` or `"no_gate"`.
        backbone_activation: `"lecun_tanh"` (default), `"silu"`, `"relu"`, `"tanh"`, `"gelu"`.
        backbone_units: width of each backbone layer (default 128).
        backbone_layers: number of backbone layers (default 1; 0 feeds `[x; h]` to the heads).
        backbone_dropout: dropout after every backbone layer (default 0). Unlike ncps 1.0.1,
            it also acts with a single backbone layer.
        sparsity_mask: optional `(input_size + hidden_size, hidden_size)` array; its absolute
            value masks the weights of the `f_1` and `f_2` heads (used by `WiredCfCCell`).
        device, dtype: where and in which precision to create the parameters.

    Inputs: `input (B, C)`, `hx (B, H)`, `ts` a number, or a tensor of shape `(B,)` or `(B, 1)`.
    Returns: `(h', h')`, both `(B, H)`: the output of a CfC cell is its state.

    >>> cell = CfCCell(4, 8)
    >>> y, h = cell(torch.randn(2, 4), torch.zeros(2, 8), 1.0)
    >>> tuple(h.shape)
    (2, 8)
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        mode: str = "default",
        backbone_activation: str = "lecun_tanh",
        backbone_units: int = 128,
        backbone_layers: int = 1,
        backbone_dropout: float = 0.0,
        sparsity_mask: np.ndarray | None = None,
        *,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"unknown CfC mode {mode!r}; expected one of {list(MODES)}")
        if backbone_layers < 0 or (backbone_layers > 0 and backbone_units < 1):
            raise ValueError(
                "backbone_layers must be >= 0 and backbone_units >= 1 when there is a backbone;"
                f" got backbone_layers={backbone_layers}, backbone_units={backbone_units}"
            )
        if not 0.0 <= backbone_dropout < 1.0:
            raise ValueError(f"backbone_dropout must be in [0, 1); got {backbone_dropout}")
        factory = {"device": device, "dtype": dtype}
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.mode = mode
        self.backbone_activation = backbone_activation
        self.backbone_units = backbone_units
        self.backbone_layers = backbone_layers
        self.backbone_dropout = backbone_dropout

        width = input_size + hidden_size
        self.backbone = nn.ModuleList()
        for _ in range(backbone_layers):
            self.backbone.append(nn.Linear(width, backbone_units, **factory))
            width = backbone_units
        self.activation = make_activation(backbone_activation)
        self.dropout = nn.Dropout(backbone_dropout) if backbone_dropout > 0 else nn.Identity()

        self.ff1 = nn.Linear(width, hidden_size, **factory)
        if mode == "pure":
            self.w_tau = nn.Parameter(torch.zeros(1, hidden_size, **factory))
            self.A = nn.Parameter(torch.ones(1, hidden_size, **factory))
        else:
            self.ff2 = nn.Linear(width, hidden_size, **factory)
            self.time_a = nn.Linear(width, hidden_size, **factory)
            self.time_b = nn.Linear(width, hidden_size, **factory)

        if sparsity_mask is None:
            self.sparsity_mask = None
        else:
            mask = np.abs(np.asarray(sparsity_mask, dtype=np.float64)).T  # (H, C + H)
            expected = (hidden_size, input_size + hidden_size)
            if mask.shape != expected:
                raise ValueError(
                    f"sparsity_mask must have shape {expected[::-1]}; got {mask.shape[::-1]}"
                )
            mask = torch.tensor(mask, device=device, dtype=dtype or torch.get_default_dtype())
            self.register_buffer("sparsity_mask", mask)
        self.register_load_state_dict_pre_hook(_renumber_ncps_backbone)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Glorot-uniform weights as in the CfC paper's code; biases keep torch's default init;
        # pure mode starts from w_tau = 0, A = 1.
        for name, p in self.named_parameters():
            if p.dim() == 2 and name not in ("w_tau", "A"):
                nn.init.xavier_uniform_(p)
        if self.mode == "pure":
            nn.init.zeros_(self.w_tau)
            nn.init.ones_(self.A)

    def _head(self, layer: nn.Linear, z: Tensor) -> Tensor:
        if self.sparsity_mask is None:
            return layer(z)
        return F.linear(z, layer.weight * self.sparsity_mask, layer.bias)

    def forward(self, input: Tensor, hx: Tensor, ts: Tensor | float = 1.0) -> tuple[Tensor, Tensor]:
        t = as_timestep(ts, input.shape[0])
        z = torch.cat([input, hx], dim=1)  # (B, C + H)
        for layer in self.backbone:
            z = self.dropout(self.activation(layer(z)))  # (B, backbone_units)
        f1 = self._head(self.ff1, z)  # (B, H)
        if self.mode == "pure":
            h = -self.A * torch.exp(-t * (torch.abs(self.w_tau) + torch.abs(f1))) * f1 + self.A
            return h, h
        f1 = torch.tanh(f1)
        f2 = torch.tanh(self._head(self.ff2, z))
        gate = torch.sigmoid(self.time_a(z) * t + self.time_b(z))  # (B, H)
        if self.mode == "no_gate":
            h = f1 + gate * f2
        else:
            h = f1 * (1.0 - gate) + gate * f2
        return h, h

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}, mode={self.mode!r}"
        if self.backbone_layers:
            s += (
                f", backbone_units={self.backbone_units}, backbone_layers={self.backbone_layers}"
                f", backbone_activation={self.backbone_activation!r}"
            )
        else:
            s += ", backbone_layers=0"
        if self.sparsity_mask is not None:
            s += ", wired"
        return s


def _renumber_ncps_backbone(module, state_dict, prefix, *args) -> None:
    """Accept ncps checkpoints: its backbone is an `nn.Sequential` of Linear, activation and
    Dropout modules, so its Linear layers sit at indices 0, 2, 4 (or 0, 2, 5, 8 with dropout)
    while ours are numbered 0, 1, 2. Renumber by rank when the indices are not ours."""
    pattern = re.compile(re.escape(prefix) + r"backbone\.(\d+)\.(weight|bias)$")
    found = sorted({int(m.group(1)) for k in state_dict if (m := pattern.match(k))})
    if found == list(range(len(found))):
        return
    rank = {index: i for i, index in enumerate(found)}
    for key in list(state_dict):
        m = pattern.match(key)
        if m:
            new = f"{prefix}backbone.{rank[int(m.group(1))]}.{m.group(2)}"
            state_dict[new] = state_dict.pop(key)


class WiredCfCCell(WiredSizes, nn.Module):
    """A CfC cell whose connectivity follows a wiring, e.g. a Neural Circuit Policy.

    The wiring's layers (for an NCP: inter, command, motor neurons) become a stack of CfC
    cells without backbone; layer `l` reads layer `l - 1` (the input for `l = 0`) and its own
    state, and the `f_1`/`f_2` heads are masked by the wiring's synapses. (As in ncps, the time
    gate heads are dense and each layer is fully recurrent within itself.) The state is the
    concatenation of the layers' states in layer order; the output is the last layer's state,
    i.e. the motor neurons.

    Args:
        input_size: features of `x`; builds the wiring for this size (`None` if already built).
        wiring: a `liquidnets.wirings.Wiring`.
        mode: the CfC mode of every layer (see `CfCCell`).
        device, dtype: where and in which precision to create the parameters.

    Inputs: `input (B, C)`, `hx (B, units)`, `timespans` as for `CfCCell`.
    Returns: `(motor (B, output_dim), state (B, units))`.

    >>> from liquidnets.wirings import AutoNCP
    >>> cell = WiredCfCCell(3, AutoNCP(10, 2))
    >>> y, h = cell(torch.randn(5, 3), torch.zeros(5, 10), 0.5)
    >>> tuple(y.shape), tuple(h.shape)
    ((5, 2), (5, 10))
    """

    def __init__(
        self,
        input_size: int | None,
        wiring: Wiring,
        mode: str = "default",
        *,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if input_size is not None:
            wiring = wiring.for_input(input_size)
        if not wiring.is_built():
            raise ValueError(
                "the wiring has no input size yet: pass input_size or call wiring.build(n) first"
            )
        self._wiring = wiring
        self.mode = mode
        self.layer_sizes = [len(wiring.get_neurons_of_layer(i)) for i in range(wiring.num_layers)]
        in_features = wiring.input_dim
        self._layers: list[CfCCell] = []
        for i in range(wiring.num_layers):
            neurons = wiring.get_neurons_of_layer(i)
            if i == 0:
                feed = wiring.sensory_adjacency_matrix[:, neurons]  # (C, n_i)
            else:
                previous = wiring.get_neurons_of_layer(i - 1)
                feed = wiring.adjacency_matrix[np.ix_(previous, neurons)]  # (n_{i-1}, n_i)
            mask = np.concatenate([feed, np.ones((len(neurons), len(neurons)))], axis=0)
            cell = CfCCell(
                in_features,
                len(neurons),
                mode,
                backbone_layers=0,
                sparsity_mask=mask,
                device=device,
                dtype=dtype,
            )
            self.add_module(f"layer_{i}", cell)
            self._layers.append(cell)
            in_features = len(neurons)
        # The state is laid out layer by layer; the output is the motor neurons (ids
        # 0..output_dim-1), which for an NCP are exactly the last layer.
        order = [
            i for layer in range(wiring.num_layers) for i in wiring.get_neurons_of_layer(layer)
        ]
        motor = [order.index(i) for i in range(wiring.output_dim)]
        last = list(range(wiring.units - self.layer_sizes[-1], wiring.units))
        self._motor_index = None if motor == last else motor

    @property
    def num_layers(self) -> int:
        return self._wiring.num_layers

    def forward(
        self, input: Tensor, hx: Tensor, timespans: Tensor | float = 1.0
    ) -> tuple[Tensor, Tensor]:
        states = torch.split(hx, self.layer_sizes, dim=1)
        x, new_states = input, []
        for cell, h in zip(self._layers, states, strict=True):
            x, _ = cell(x, h, timespans)  # (B, n_i)
            new_states.append(x)
        state = torch.cat(new_states, dim=1)  # (B, units)
        if self._motor_index is not None:
            x = state[:, self._motor_index]  # (B, output_dim)
        return x, state

    def extra_repr(self) -> str:
        return f"wiring={type(self._wiring).__name__}, layer_sizes={self.layer_sizes}"

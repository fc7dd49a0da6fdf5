"""Small pieces shared by the cells: activations, time steps, the mixed-memory LSTM, the sizes
a wired cell reads from its wiring."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from liquidnets.wirings import Wiring


class WiredSizes:
    """The sizes of a cell built on a wiring (kept as `self._wiring`), read from it."""

    _wiring: Wiring

    @property
    def wiring(self) -> Wiring:
        return self._wiring

    @property
    def state_size(self) -> int:
        return self._wiring.units

    @property
    def sensory_size(self) -> int:
        return self._wiring.input_dim

    @property
    def motor_size(self) -> int:
        return self._wiring.output_dim

    @property
    def output_size(self) -> int:
        return self.motor_size

    @property
    def synapse_count(self) -> int:
        return int(np.abs(self._wiring.adjacency_matrix).sum())

    @property
    def sensory_synapse_count(self) -> int:
        return int(np.abs(self._wiring.sensory_adjacency_matrix).sum())


class LeCunTanh(nn.Module):
    """`1.7159 * tanh(0.666 * x)`, the scaled tanh of LeCun et al. (1998).

    The slope 0.666 (not exactly 2/3) is kept because it is what CfC models trained with the
    reference implementation use; changing it would change their outputs.
    """

    def forward(self, x: Tensor) -> Tensor:
        return 1.7159 * torch.tanh(0.666 * x)


ACTIVATIONS: dict[str, type[nn.Module]] = {
    "lecun_tanh": LeCunTanh,
    "silu": nn.SiLU,
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
}


def make_activation(name: str) -> nn.Module:
    """An activation module from its name in `ACTIVATIONS`."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def as_timestep(dt: Tensor | float, batch: int) -> Tensor | float:
    """Bring an elapsed time into a shape that broadcasts against a `(B, H)` state.

    Accepts a Python number, a 0-d tensor, a `(B,)` tensor or a `(B, 1)` tensor and returns a
    number, a 0-d tensor or a `(B, 1)` tensor. (Broadcasting a `(B,)` tensor directly against
    `(B, H)` would pair batch entries with hidden units, a silent bug when `B == H`.)
    """
    if not isinstance(dt, Tensor):
        return float(dt)
    if dt.dim() == 0:
        return dt
    if dt.numel() == 1 and dt.dim() <= 2:
        return dt.reshape(())  # one elapsed time shared by the whole batch
    if dt.dim() == 1 and dt.shape[0] == batch:
        return dt.unsqueeze(-1)  # (B, 1)
    if dt.dim() == 2 and dt.shape == (batch, 1):
        return dt
    raise ValueError(
        f"elapsed time must be a number, a scalar tensor, or of shape ({batch},) or ({batch}, 1);"
        f" got shape {tuple(dt.shape)}"
    )


class LSTMCell(nn.Module):
    """The LSTM that gives a liquid layer its mixed memory (`mixed_memory=True`).

    Following ODE-LSTM (Lechner & Hasani, 2020), an LSTM cell runs beside the liquid cell: it
    reads the input and the liquid state `h`, keeps its own memory `c`, and its output replaces
    `h` before the liquid step. This gives the layer a gated path for long-term dependencies:

        z = W_x x + W_h h + b;   [g, i, f, o] = split(z)
        c' = c * sigmoid(f + 1) + tanh(g) * sigmoid(i);   h' = tanh(c') * sigmoid(o)

    The +1 on the forget gate starts training with a remembering cell.

    Args:
        input_size: features of `x`.
        hidden_size: size of `h` and `c`.
    """

    def __init__(self, input_size: int, hidden_size: int, *, device=None, dtype=None) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.input_map = nn.Linear(input_size, 4 * hidden_size, bias=True, **factory)
        self.recurrent_map = nn.Linear(hidden_size, 4 * hidden_size, bias=False, **factory)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Orthogonal recurrent weights keep the gradient norm steady over long sequences.
        nn.init.xavier_uniform_(self.input_map.weight)
        nn.init.uniform_(self.input_map.bias, -0.1, 0.1)
        nn.init.orthogonal_(self.recurrent_map.weight)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        h, c = state
        z = self.input_map(x) + self.recurrent_map(h)  # (B, 4H)
        g, i, f, o = z.chunk(4, dim=1)
        c = c * torch.sigmoid(f + 1.0) + torch.tanh(g) * torch.sigmoid(i)
        h = torch.tanh(c) * torch.sigmoid(o)
        return h, c

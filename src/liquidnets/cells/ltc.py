"""The Liquid Time-Constant (LTC) cell."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liquidnets.cells._common import WiredSizes, as_timestep
from liquidnets.cells.solvers import ODESolver, get_solver, integrate
from liquidnets.wirings import Wiring

MAPPINGS = ("affine", "linear", None)

# Uniform initialisation ranges of the LTC paper's code, in its units (membrane potentials of
# order 1, conductances in (0, 1], sigmoid steepness 3..8 so synapses start neither flat nor
# step-like).
INIT_RANGES: dict[str, tuple[float, float]] = {
    "gleak": (0.001, 1.0),
    "vleak": (-0.2, 0.2),
    "cm": (0.4, 0.6),
    "w": (0.001, 1.0),
    "sigma": (3.0, 8.0),
    "mu": (0.3, 0.8),
    "sensory_w": (0.001, 1.0),
    "sensory_sigma": (3.0, 8.0),
    "sensory_mu": (0.3, 0.8),
}

# Parameters that must stay non-negative (conductances and the capacitance).
POSITIVE = ("w", "sensory_w", "cm", "gleak")


def _mapping(value: str | None, what: str) -> str | None:
    value = None if value in (None, "none", "None") else value
    if value not in MAPPINGS:
        raise ValueError(f"{what} must be 'affine', 'linear' or None; got {value!r}")
    return value


class LTCCell(WiredSizes, nn.Module):
    r"""One step of a Liquid Time-Constant cell (Hasani et al., AAAI 2021).

    Each neuron `i` is a leaky membrane whose conductances depend on the state and the input
    through sigmoid synapses, so its time constant is "liquid":

        cm_i dv_i/dt = gleak_i (vleak_i - v_i)
                       + sum_j w_ji s(v_j; mu_ji, sigma_ji) (erev_ji - v_i)
                       + sum_k W_ki s(x_k; Mu_ki, Sigma_ki) (Erev_ki - v_i)

    with `s(u; mu, sigma) = sigmoid(sigma * (u - mu))`, the sums running over the synapses of
    the wiring (recurrent `j -> i` and sensory `k -> i`), `erev = +-1` (excitatory/inhibitory)
    at initialisation. Collecting terms gives `cm dv/dt = a(v) - b(v) v`, with the total
    conductance `b >= 0`. One call integrates this over the elapsed time `t` with
    `ode_unfolds` steps of the chosen solver. The default `"fused"` solver is the paper's
    semi-implicit Euler step, stable for any step size:

        v' = (cm v + h a(v)) / (cm + h (b(v) + epsilon)),   h = t / ode_unfolds

    Other solvers (`"euler"`, `"midpoint"`, `"heun"`, `"rk4"`) are explicit; see
    `liquidnets.cells.solvers`. The input is mapped elementwise (`x * input_w + input_b` for
    `"affine"`) before the synapses, and the output is the first `output_dim` neurons (the
    motor neurons of an NCP) mapped the same way.

    Positivity of `w`, `sensory_w`, `cm` and `gleak` is kept either implicitly, through a
    softplus at run time (`implicit_param_constraints=True`), or explicitly, by clipping them
    at zero with `apply_weight_constraints()` after each optimiser step.

    Args:
        wiring: a `liquidnets.wirings.Wiring` (e.g. `FullyConnected(units)` or an `NCP`).
        in_features: input size; builds the wiring for it (`None` if the wiring is built).
        input_mapping: `"affine"` (default), `"linear"` or `None`.
        output_mapping: `"affine"` (default), `"linear"` or `None`.
        ode_unfolds: solver steps per call (default 6).
        epsilon: added to the denominators against division by zero (default 1e-8).
        implicit_param_constraints: softplus constraints (default False, as in ncps's cell).
        solver: a name in `liquidnets.cells.solvers.SOLVERS` (default `"fused"`) or a solver.
        device, dtype: where and in which precision to create the parameters.

    Inputs: `inputs (B, C)`, `states (B, units)`, `elapsed_time` a number, `(B,)` or `(B, 1)`.
    Returns: `(outputs (B, output_dim), next_state (B, units))`.

    >>> from liquidnets.wirings import FullyConnected
    >>> cell = LTCCell(FullyConnected(6), in_features=3, solver="rk4")
    >>> y, h = cell(torch.randn(2, 3), torch.zeros(2, 6), 0.5)
    >>> tuple(y.shape)
    (2, 6)
    """

    def __init__(
        self,
        wiring: Wiring,
        in_features: int | None = None,
        input_mapping: str | None = "affine",
        output_mapping: str | None = "affine",
        ode_unfolds: int = 6,
        epsilon: float = 1e-8,
        implicit_param_constraints: bool = False,
        *,
        solver: str | ODESolver = "fused",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if in_features is not None:
            wiring = wiring.for_input(in_features)
        if not wiring.is_built():
            raise ValueError(
                "the wiring has no input size yet: pass in_features or call wiring.build(n) first"
            )
        if int(ode_unfolds) < 1:
            raise ValueError(f"ode_unfolds must be >= 1; got {ode_unfolds}")
        self._wiring = wiring
        self._input_mapping = _mapping(input_mapping, "input_mapping")
        self._output_mapping = _mapping(output_mapping, "output_mapping")
        self._ode_unfolds = int(ode_unfolds)
        self._epsilon = epsilon
        self._implicit_param_constraints = implicit_param_constraints
        self.solver = get_solver(solver, epsilon=epsilon)

        factory = {"device": device, "dtype": dtype or torch.get_default_dtype()}
        n, c, m = wiring.units, wiring.input_dim, wiring.output_dim

        def uniform(name: str, *shape: int) -> nn.Parameter:
            low, high = INIT_RANGES[name]
            return nn.Parameter(torch.empty(*shape, **factory).uniform_(low, high))

        self.gleak = uniform("gleak", n)
        self.vleak = uniform("vleak", n)
        self.cm = uniform("cm", n)
        self.sigma = uniform("sigma", n, n)
        self.mu = uniform("mu", n, n)
        self.w = uniform("w", n, n)
        self.erev = nn.Parameter(torch.tensor(wiring.erev_initializer(), **factory))
        self.sensory_sigma = uniform("sensory_sigma", c, n)
        self.sensory_mu = uniform("sensory_mu", c, n)
        self.sensory_w = uniform("sensory_w", c, n)
        self.sensory_erev = nn.Parameter(torch.tensor(wiring.sensory_erev_initializer(), **factory))
        # Masks are fixed by the wiring: buffers, saved with the model, never trained.
        mask = np.abs(wiring.adjacency_matrix)
        self.register_buffer("sparsity_mask", torch.tensor(mask, **factory))
        mask = np.abs(wiring.sensory_adjacency_matrix)
        self.register_buffer("sensory_sparsity_mask", torch.tensor(mask, **factory))

        if self._input_mapping in ("affine", "linear"):
            self.input_w = nn.Parameter(torch.ones(c, **factory))
        if self._input_mapping == "affine":
            self.input_b = nn.Parameter(torch.zeros(c, **factory))
        if self._output_mapping in ("affine", "linear"):
            self.output_w = nn.Parameter(torch.ones(m, **factory))
        if self._output_mapping == "affine":
            self.output_b = nn.Parameter(torch.zeros(m, **factory))

    # -- sizes (the wiring's, from WiredSizes) -------------------------------------------
    @property
    def ode_unfolds(self) -> int:
        return self._ode_unfolds

    # -- math ----------------------------------------------------------------------------
    def _positive(self, p: Tensor) -> Tensor:
        return F.softplus(p) if self._implicit_param_constraints else p

    def _map_inputs(self, x: Tensor) -> Tensor:
        if self._input_mapping in ("affine", "linear"):
            x = x * self.input_w
        if self._input_mapping == "affine":
            x = x + self.input_b
        return x

    def _map_outputs(self, v: Tensor) -> Tensor:
        y = v[:, : self.motor_size]  # motor neurons come first in every wiring
        if self._output_mapping in ("affine", "linear"):
            y = y * self.output_w
        if self._output_mapping == "affine":
            y = y + self.output_b
        return y

    def field(self, x: Tensor):
        """The vector field for input `x`: a function `v -> (a, b)` with
        `cm dv/dt = a - b v` (see the class docstring), and `cm`.

        The sensory synapses depend only on the input, so they are computed once here, not at
        every solver stage.
        """
        # sensory[b, k, i]: conductance of the synapse from input k to neuron i
        sensory = self._positive(self.sensory_w) * torch.sigmoid(
            (x.unsqueeze(-1) - self.sensory_mu) * self.sensory_sigma
        )  # (B, C, N)
        sensory = sensory * self.sensory_sparsity_mask
        a_in = (sensory * self.sensory_erev).sum(dim=1)  # (B, N)
        b_in = sensory.sum(dim=1)  # (B, N)
        w = self._positive(self.w)
        gleak = self._positive(self.gleak)
        a_leak = gleak * self.vleak  # (N,)

        def f(v: Tensor) -> tuple[Tensor, Tensor]:
            # syn[b, j, i]: conductance of the synapse from neuron j to neuron i
            syn = w * torch.sigmoid((v.unsqueeze(-1) - self.mu) * self.sigma)  # (B, N, N)
            syn = syn * self.sparsity_mask
            a = a_leak + (syn * self.erev).sum(dim=1) + a_in  # (B, N)
            b = gleak + syn.sum(dim=1) + b_in  # (B, N)
            return a, b

        return f, self._positive(self.cm)

    def forward(
        self, inputs: Tensor, states: Tensor, elapsed_time: Tensor | float = 1.0
    ) -> tuple[Tensor, Tensor]:
        dt = as_timestep(elapsed_time, inputs.shape[0])
        f, cm = self.field(self._map_inputs(inputs))
        v = integrate(self.solver, f, states, cm, dt, self._ode_unfolds)
        return self._map_outputs(v), v

    @torch.no_grad()
    def apply_weight_constraints(self) -> None:
        """Clip `w`, `sensory_w`, `cm` and `gleak` at zero (explicit constraints only; call it
        after every optimiser step). Does nothing with implicit (softplus) constraints."""
        if not self._implicit_param_constraints:
            for name in POSITIVE:
                getattr(self, name).clamp_(min=0.0)

    def extra_repr(self) -> str:
        return (
            f"wiring={type(self._wiring).__name__}(units={self.state_size}),"
            f" in_features={self.sensory_size}, ode_unfolds={self._ode_unfolds},"
            f" solver={self.solver.name!r},"
            f" implicit_param_constraints={self._implicit_param_constraints}"
        )

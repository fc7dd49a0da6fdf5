"""ODE solvers for liquid cells, chosen by name.

Every solver integrates an ODE written in *conductance form*

    cm * dv/dt = a(v) - b(v) * v

where `a` collects the driving terms (leak and synaptic currents times their reversal
potentials) and `b >= 0` the total conductance. The LTC neuron has exactly this form, and the
split lets the semi-implicit solver treat the stiff `-b * v` part implicitly while the explicit
solvers simply evaluate `f(v) = (a - b * v) / cm`.

A new solver is one small subclass of `ODESolver` with a `step` method, registered in `SOLVERS`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable

from torch import Tensor

#: A field maps the state `v` to the pair `(a, b)` of the conductance form above.
Field = Callable[[Tensor], tuple[Tensor, Tensor]]


class ODESolver(abc.ABC):
    """One step of size `h` of `cm * dv/dt = a(v) - b(v) * v`.

    Attributes:
        name: the registry name.
        order: the order of global convergence (error ~ h**order).
    """

    name: str = ""
    order: int = 0

    def __init__(self, epsilon: float = 1e-8) -> None:
        # epsilon keeps divisions finite when a conductance or capacitance reaches zero
        # (possible with explicit clip constraints).
        self.epsilon = epsilon

    @abc.abstractmethod
    def step(self, field: Field, v: Tensor, cm: Tensor, h: Tensor | float) -> Tensor:
        """Advance `v` by one step of size `h` (a float or a tensor broadcastable to `v`)."""

    def derivative(self, field: Field, v: Tensor, cm: Tensor) -> Tensor:
        """`dv/dt = (a(v) - b(v) * v) / cm`."""
        a, b = field(v)
        return (a - b * v) / (cm + self.epsilon)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(epsilon={self.epsilon})"


class SemiImplicit(ODESolver):
    """The fused semi-implicit Euler step of the LTC paper (Hasani et al., AAAI 2021, eq. 3).

    The conductances are taken at the current state, the state itself at the next one:

        cm * (v' - v) / h = a(v) - b(v) * v'   =>   v' = (cm * v + h * a) / (cm + h * b)

    Because `b >= 0` and `cm > 0`, `v'` is a convex-like mix of `v` and the reversal potentials,
    so the step stays bounded for any `h`: this is why LTCs train stably with a few unfolds.
    First order accurate.
    """

    name = "fused"
    order = 1

    def step(self, field: Field, v: Tensor, cm: Tensor, h: Tensor | float) -> Tensor:
        a, b = field(v)
        # Written multiplied through by h (rather than with cm / h) so that h = 0 leaves v
        # unchanged instead of producing inf / inf.
        return (cm * v + h * a) / (cm + h * (b + self.epsilon))


class Euler(ODESolver):
    """Explicit Euler: `v' = v + h * f(v)`. First order; unstable when `h * b / cm > 2`."""

    name = "euler"
    order = 1

    def step(self, field: Field, v: Tensor, cm: Tensor, h: Tensor | float) -> Tensor:
        return v + h * self.derivative(field, v, cm)


class Midpoint(ODESolver):
    """Explicit midpoint rule, second order."""

    name = "midpoint"
    order = 2

    def step(self, field: Field, v: Tensor, cm: Tensor, h: Tensor | float) -> Tensor:
        k1 = self.derivative(field, v, cm)
        return v + h * self.derivative(field, v + 0.5 * h * k1, cm)


class Heun(ODESolver):
    """Heun's method (explicit trapezoid), second order."""

    name = "heun"
    order = 2

    def step(self, field: Field, v: Tensor, cm: Tensor, h: Tensor | float) -> Tensor:
        k1 = self.derivative(field, v, cm)
        k2 = self.derivative(field, v + h * k1, cm)
        return v + 0.5 * h * (k1 + k2)


class RK4(ODESolver):
    """The classical fourth-order Runge-Kutta method."""

    name = "rk4"
    order = 4

    def step(self, field: Field, v: Tensor, cm: Tensor, h: Tensor | float) -> Tensor:
        k1 = self.derivative(field, v, cm)
        k2 = self.derivative(field, v + 0.5 * h * k1, cm)
        k3 = self.derivative(field, v + 0.5 * h * k2, cm)
        k4 = self.derivative(field, v + h * k3, cm)
        return v + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


#: Registry of solvers by name. "semi_implicit" is an alias of "fused".
SOLVERS: dict[str, type[ODESolver]] = {
    "fused": SemiImplicit,
    "semi_implicit": SemiImplicit,
    "euler": Euler,
    "midpoint": Midpoint,
    "heun": Heun,
    "rk4": RK4,
}


def get_solver(solver: str | ODESolver, epsilon: float = 1e-8) -> ODESolver:
    """Return a solver instance from a registry name (see `SOLVERS`) or pass one through.

    >>> get_solver("rk4").order
    4
    """
    if isinstance(solver, ODESolver):
        return solver
    if not isinstance(solver, str) or solver not in SOLVERS:
        raise ValueError(f"unknown ODE solver {solver!r}; expected one of {sorted(SOLVERS)}")
    return SOLVERS[solver](epsilon=epsilon)


def integrate(
    solver: ODESolver, field: Field, v: Tensor, cm: Tensor, dt: Tensor | float, steps: int
) -> Tensor:
    """Integrate over `dt` with `steps` equal steps of `solver`."""
    h = dt / steps
    for _ in range(steps):
        v = solver.step(field, v, cm, h)
    return v


__all__ = [
    "SOLVERS",
    "Euler",
    "Field",
    "Heun",
    "Midpoint",
    "ODESolver",
    "RK4",
    "SemiImplicit",
    "get_solver",
    "integrate",
]

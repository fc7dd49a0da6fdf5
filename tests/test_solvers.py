"""ODE solvers: each converges at its stated order on ODEs with known solutions."""

import itertools
import math

import pytest
import torch

from liquidnets.cells import LTCCell
from liquidnets.cells.solvers import SOLVERS, get_solver, integrate
from liquidnets.wirings import FullyConnected

NAMES = ["fused", "euler", "midpoint", "heun", "rk4"]
EXPECTED_ORDER = {"fused": 1, "euler": 1, "midpoint": 2, "heun": 2, "rk4": 4}


def observed_order(errors: list[float]) -> float:
    """Order from errors at step counts n, 2n, 4n, ...: the mean of log2 of their ratios."""
    ratios = [math.log2(a / b) for a, b in itertools.pairwise(errors)]
    return sum(ratios) / len(ratios)


@pytest.mark.parametrize("name", NAMES)
def test_order_on_nonlinear_scalar_ode(name):
    # The logistic equation dy/dt = y (1 - y), y(0) = 0.2, whose solution is
    # y(t) = 1 / (1 + 4 exp(-t)). Conductance form: cm = 1, a(y) = y, b(y) = y.
    solver = get_solver(name, epsilon=0.0)
    y0 = torch.tensor([0.2], dtype=torch.float64)
    cm = torch.ones(1, dtype=torch.float64)

    def field(y):
        return y, y

    exact = 1.0 / (1.0 + 4.0 * math.exp(-2.0))
    errors = [abs(float(integrate(solver, field, y0, cm, 2.0, n)) - exact) for n in (8, 16, 32, 64)]
    assert solver.order == EXPECTED_ORDER[name]
    assert observed_order(errors) == pytest.approx(EXPECTED_ORDER[name], abs=0.2)


@pytest.mark.parametrize("name", NAMES)
def test_order_through_the_ltc_cell(name):
    # With every recurrent synapse removed and a constant input, the LTC ODE is linear with
    # constant coefficients: cm dv/dt = a - b v  =>  v(t) = a/b + (v0 - a/b) exp(-b t / cm).
    torch.manual_seed(0)
    cell = LTCCell(FullyConnected(5), 3, epsilon=0.0, solver=name, dtype=torch.float64)
    cell.sparsity_mask.zero_()
    x = torch.randn(2, 3, dtype=torch.float64)
    v0 = torch.randn(2, 5, dtype=torch.float64)
    f, cm = cell.field(cell._map_inputs(x))
    a, b = f(v0)
    dt = 0.3
    exact = a / b + (v0 - a / b) * torch.exp(-b * dt / cm)
    errors = []
    counts = [4, 8, 16, 32] if EXPECTED_ORDER[name] < 4 else [2, 4, 8, 16]
    for n in counts:
        cell._ode_unfolds = n
        _, v = cell(x, v0, dt)
        errors.append(float((v - exact).abs().max().detach()))
    assert observed_order(errors) == pytest.approx(EXPECTED_ORDER[name], abs=0.3)


def test_fused_is_stable_where_euler_is_not():
    # A stiff decay (b / cm = 100) with a step of 0.1: explicit Euler's factor is |1 - 10| > 1.
    cm, v = torch.ones(1), torch.ones(1)

    def field(y):
        return torch.zeros_like(y), torch.full_like(y, 100.0)

    assert float(integrate(get_solver("euler"), field, v, cm, 1.0, 10).abs()) > 1e3
    assert 0.0 <= float(integrate(get_solver("fused"), field, v, cm, 1.0, 10)) < 1e-3


def test_zero_elapsed_time_keeps_the_state():
    torch.manual_seed(0)
    for name in NAMES:
        cell = LTCCell(FullyConnected(4), 2, solver=name)
        h = torch.randn(3, 4)
        _, h1 = cell(torch.randn(3, 2), h, 0.0)
        torch.testing.assert_close(h1, h)


def test_unknown_solver_names_the_choices():
    with pytest.raises(ValueError, match=r"unknown ODE solver 'rk5'.*rk4"):
        get_solver("rk5")
    assert set(NAMES) <= set(SOLVERS)

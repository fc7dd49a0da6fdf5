"""Liquid cells: one pure step `(x_t, h, dt) -> (y_t, h_next)` each."""

from liquidnets.cells._common import ACTIVATIONS, LeCunTanh, LSTMCell
from liquidnets.cells.cfc import CfCCell, WiredCfCCell
from liquidnets.cells.ltc import LTCCell
from liquidnets.cells.solvers import SOLVERS, ODESolver, get_solver

__all__ = [
    "ACTIVATIONS",
    "SOLVERS",
    "CfCCell",
    "LSTMCell",
    "LTCCell",
    "LeCunTanh",
    "ODESolver",
    "WiredCfCCell",
    "get_solver",
]

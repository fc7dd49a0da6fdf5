"""liquidnets: liquid neural networks (LTC, CfC, NCP wirings) for PyTorch.

The public names are re-exported here; everything else is an implementation detail.

>>> import torch
>>> from liquidnets import CfC
>>> out, h = CfC(20, 50)(torch.randn(2, 3, 20))
>>> tuple(out.shape)
(2, 3, 50)
"""

from liquidnets import wirings
from liquidnets.cells import CfCCell, LTCCell, WiredCfCCell
from liquidnets.cells.solvers import SOLVERS
from liquidnets.layers import LTC, CfC, LiquidRNN

__version__ = "0.1.0"

__all__ = [
    "SOLVERS",
    "CfC",
    "CfCCell",
    "LTC",
    "LTCCell",
    "LiquidRNN",
    "WiredCfCCell",
    "__version__",
    "wirings",
]

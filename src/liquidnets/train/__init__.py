"""Training on PyTorch Lightning (`pip install 'liquidnets[workflow]'`): the LightningModule
that wraps any `net(x, dt) -> (B, out)`, and the Trainer assembly (early stopping that restores
the best weights, gradient clipping, a learning-rate schedule, seeded runs, CSV and TensorBoard
logs, `accelerator`/`devices`/`strategy`/`num_nodes` passed through).

Lightning is imported when these are used, not by `import liquidnets`.
"""

from liquidnets.train.fit import (
    TrainConfig,
    TrainingError,
    check_hardware,
    fit,
    remove_stale,
    scratch,
)

__all__ = ["TrainConfig", "TrainingError", "check_hardware", "fit", "remove_stale", "scratch"]

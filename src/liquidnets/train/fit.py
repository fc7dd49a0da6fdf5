"""Fit a network `net(x (B, T, C), dt (B, T)) -> (B, out)` with PyTorch Lightning.

Nothing here is a home-made training loop: Lightning runs the epochs, the devices and DDP;
`EarlyStopping` stops on the validation loss and `ModelCheckpoint` keeps the best weights, which
are loaded back at the end with `torch.load(..., weights_only=True)`.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib.util
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

MISSING = "training needs PyTorch Lightning; install it with: pip install 'liquidnets[workflow]'"


PREFIX = "liquidnets-"  # a training's temporary folder: checkpoints, logs without a run
DONE = "done.safetensors"  # a finished training's weights, in its slot
_SCRATCH: contextvars.ContextVar[tuple[Path, list[int]] | None] = contextvars.ContextVar(
    "scratch", default=None
)


@contextlib.contextmanager
def scratch(folder: str | Path) -> Iterator[None]:
    """Within the block, trainings keep their files under `folder` (a run's own temporary
    folder, so that a killed run leaves nothing anywhere else), each in its own slot:
    `training-01`, `training-02`, ... in the order they start. A slot holds the training's
    last whole state after every epoch, and its result once it ends; a block entered again
    over the same folder (a resumed run, doing the same trainings in the same order) takes
    the finished ones' results and continues the interrupted one from its last epoch."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    token = _SCRATCH.set((Path(folder), [0]))
    try:
        yield
    finally:
        _SCRATCH.reset(token)


def _slot() -> tuple[Path | None, Path | None]:
    """(where temporary files go, this training's slot), both None outside `scratch`."""
    state = _SCRATCH.get()
    if state is None:
        return None, None
    folder, count = state
    count[0] += 1
    slot = folder / f"training-{count[0]:02d}"
    slot.mkdir(exist_ok=True)
    return folder, slot


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's, and running
        return True
    return True


def remove_stale(folder: str | Path | None = None) -> list[Path]:
    """Remove the temporary folders of trainings whose process is gone (killed, or crashed
    without cleaning up), in `folder` (default: the system's temporary directory). Returns
    what was removed."""
    folder = Path(folder or tempfile.gettempdir())
    removed = []
    for path in folder.glob(PREFIX + "*"):
        try:
            pid = int((path / "pid").read_text())
        except (OSError, ValueError):
            continue  # not one of ours, or still being made
        if not _alive(pid):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


class TrainingError(ValueError):
    """A training that gave no usable model (its validation loss was never finite): one line
    naming the likely cause."""


def _diverged(epochs: int, train: tuple, config: TrainConfig) -> str:
    """Why a validation loss was never finite, as far as the data tell: one line."""
    x, dt, y = np.asarray(train[0]), np.asarray(train[1]), np.asarray(train[-1])
    hints = []
    if not np.isfinite(x).all():
        hints.append("the inputs hold NaN or infinite values (see --missing)")
    elapsed = np.abs(dt[np.isfinite(dt)])
    if elapsed.size and elapsed.max() > 1e4:
        hints.append(
            f"the time between rows reaches {elapsed.max():.3g} time units, so the cells' "
            "time constants saturate (check --time-unit)"
        )
    if y.dtype.kind == "f" and np.isfinite(y).all() and y.size and np.abs(y).max() > 1e6:
        hints.append(f"the targets reach {np.abs(y).max():.3g} after scaling (check the data)")
    hints.append(f"the learning rate {config.lr:g} may be too large (try a smaller --lr)")
    return (
        f"training diverged: the validation loss was not finite in any of {max(epochs, 1)} "
        f"epoch(s), so no model was kept; {'; '.join(hints)}"
    )


@dataclass
class TrainConfig:
    """How to train. Every field has a CLI flag of the same name (dashes for underscores).

    Args:
        max_epochs: upper bound on epochs; early stopping usually ends sooner.
        batch_size: windows per batch; None (default): the task's choice (forecasts:
            `auto_batch_size` of the training windows; otherwise 64).
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        patience: epochs without a better validation loss before stopping.
        gradient_clip: clip the gradient norm to this (0: no clipping).
        schedule: `plateau` (halve the rate when the validation loss stalls), `cosine`
            (cosine decay over max_epochs) or `none`.
        seed: seeds Python, numpy and torch (and every DDP rank alike).
        accelerator, devices, strategy, num_nodes: passed to `lightning.Trainer`.
        progress_bar: None shows it when stderr is a terminal.
        loss: `mse`, `mae` or `cross_entropy`; None (default): the task's own (`mae` for
            forecasts and anomaly scores, `cross_entropy` for classes; `mse` for `fit` itself).
    """

    max_epochs: int = 100
    batch_size: int | None = None
    lr: float = 3e-3
    weight_decay: float = 0.0
    patience: int = 10
    gradient_clip: float = 1.0
    schedule: str = "plateau"
    seed: int = 0
    accelerator: str = "auto"
    devices: int | str = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    progress_bar: bool | None = None
    loss: str | None = None

    def __post_init__(self):
        whole = {"max_epochs": 1, "patience": 0, "num_nodes": 1, "seed": 0}
        for name, least in whole.items():
            _check_int(name, getattr(self, name), least)
        if self.batch_size is not None:
            _check_int("batch_size", self.batch_size, 1)
        for name in ("lr", "weight_decay", "gradient_clip"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not (math.isfinite(value) and value >= 0 and (value > 0 or name != "lr"))
            ):
                sign = "> 0" if name == "lr" else ">= 0"
                raise ValueError(f"{_flag(name)} must be a finite number {sign}; got {value!r}")
        if self.schedule not in ("plateau", "cosine", "none"):
            raise ValueError(f"--schedule must be plateau, cosine or none; got {self.schedule!r}")
        if self.loss not in (None, "mse", "mae", "cross_entropy"):
            raise ValueError(f"loss must be mse, mae or cross_entropy; got {self.loss!r}")
        devices = self.devices
        if isinstance(devices, str) and devices.strip().isdigit():
            self.devices = devices = int(devices)
        if not isinstance(devices, (str, list, tuple)) and devices != -1:  # "auto", "0,1"
            _check_int("devices", devices, 1)

    def to_dict(self) -> dict:
        return asdict(self)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_int(name: str, value, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ValueError(f"{_flag(name)} must be a whole number >= {least}; got {value!r}")


def check_hardware(config: TrainConfig) -> None:
    """Refuse, in one line, what this machine cannot run: `accelerator="gpu"` (or `cuda`,
    `mps`) without one, or more devices than it has (on the CPU, each device is a process:
    more of them than cores only slows training down and multiplies its memory)."""
    import os

    accelerator = str(config.accelerator).lower()
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if accelerator in ("gpu", "cuda") and not gpus and not (accelerator == "gpu" and mps):
        raise ValueError(
            f"--accelerator {config.accelerator}: this machine has no GPU that torch can use "
            "(use --accelerator cpu or auto)"
        )
    if accelerator == "mps" and not mps:
        raise ValueError("--accelerator mps: this machine has no Apple GPU (use cpu or auto)")
    if accelerator not in ("auto", "cpu", "gpu", "cuda", "mps"):
        raise ValueError(
            f"--accelerator must be auto, cpu, gpu, cuda or mps; got {config.accelerator!r}"
        )
    if not isinstance(config.devices, int) or config.devices == -1:
        return
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and gpus)
    have, what = (gpus, "GPUs") if on_gpu else (os.cpu_count() or 1, "CPU cores")
    if config.devices > have:
        raise ValueError(
            f"--devices {config.devices}: this machine has {have} {what}; ask for at most {have}"
        )


def available() -> bool:
    return importlib.util.find_spec("lightning") is not None


@functools.cache
def _module_class():
    import lightning as L

    class WindowModule(L.LightningModule):
        """`net` trained on batches `(x, dt, y)` with the configured loss."""

        def __init__(self, net: nn.Module, config: TrainConfig):
            super().__init__()
            self.net = net
            self.config = config
            self.loss_fn = {
                "mse": nn.functional.mse_loss,
                "mae": nn.functional.l1_loss,
                "cross_entropy": nn.functional.cross_entropy,
            }[config.loss or "mse"]

        def forward(self, x, dt):
            return self.net(x, dt)

        def _loss(self, batch):
            *inputs, y = batch  # (x, dt, y) or (x, dt, mask, y)
            return self.loss_fn(self.net(*inputs), y)

        def training_step(self, batch, batch_idx):
            loss = self._loss(batch)
            self.log("train_loss", loss, on_step=False, on_epoch=True, sync_dist=True)
            return loss

        def validation_step(self, batch, batch_idx):
            self.log("val_loss", self._loss(batch), on_epoch=True, sync_dist=True)

        def configure_optimizers(self):
            c = self.config
            opt = torch.optim.AdamW(self.parameters(), lr=c.lr, weight_decay=c.weight_decay)
            if c.schedule == "cosine":
                sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, c.max_epochs))
                return {"optimizer": opt, "lr_scheduler": sched}
            if c.schedule == "plateau":
                sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
                    opt, factor=0.5, patience=max(1, c.patience // 3)
                )
                return {
                    "optimizer": opt,
                    "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"},
                }
            return opt

    return WindowModule


@functools.cache
def _history_class():
    import lightning as L

    class History(L.Callback):
        """Per-epoch losses, as floats, for plots and the run's metrics."""

        def __init__(self):
            self.history: dict[str, list[float]] = {"train_loss": [], "val_loss": []}

        def on_train_epoch_end(self, trainer, module):
            for key in self.history:
                value = trainer.callback_metrics.get(key)
                if value is not None:
                    self.history[key].append(float(value))

        # kept in a resumable checkpoint, so that a resumed training has all its epochs
        def state_dict(self):
            return {k: list(v) for k, v in self.history.items()}

        def load_state_dict(self, state):
            self.history = {k: list(v) for k, v in state.items()}

    class RandomState(L.Callback):
        """The random generators' states, kept in a resumable checkpoint: a resumed training
        draws the same shuffles and dropout masks as one that was never stopped."""

        def state_dict(self):
            import random

            kind, keys, pos, has_gauss, gauss = np.random.get_state()  # noqa: NPY002
            return {
                "torch": torch.get_rng_state(),
                "numpy_keys": torch.as_tensor(keys.astype(np.int64)),
                "numpy": [kind, int(pos), int(has_gauss), float(gauss)],
                "python": [list(v) if isinstance(v, tuple) else v for v in random.getstate()],
            }  # fmt: skip

        def load_state_dict(self, state):
            import random

            torch.set_rng_state(state["torch"])
            kind, pos, has_gauss, gauss = state["numpy"]
            keys = state["numpy_keys"].numpy().astype(np.uint32)
            np.random.set_state((kind, keys, pos, has_gauss, gauss))  # noqa: NPY002
            version, internal, gauss_next = state["python"]
            random.setstate((version, tuple(internal), gauss_next))

    return History, RandomState


def _quiet_lightning() -> None:
    """Lightning's start-up notes (available accelerators, tips) on every fit would bury our
    own output; its warnings and errors still show."""
    for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)


def auto_batch_size(windows: int) -> int:
    """The default batch: a 32nd of the training windows, between 16 and 64. On the short
    series of benchmarks/quality.py (100-1,000 windows), 64 left a few optimiser steps an
    epoch, and early stopping ended training before the model had learnt.

    >>> auto_batch_size(100), auto_batch_size(1_000), auto_batch_size(100_000)
    (16, 31, 64)
    """
    return min(64, max(16, int(windows) // 32))


class _Batches(torch.utils.data.Dataset):
    """Arrays (numpy arrays or `liquidnets.data.WindowView`s, which gather windows on
    demand) read a batch at a time: the loader hands `__getitems__` a batch's indices, and
    each array is indexed once with all of them. Nothing is copied up front, so training
    memory stays that of the rows, not of every window."""

    def __init__(self, arrays, dtypes):
        self.arrays, self.dtypes = arrays, dtypes

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitems__(self, index):
        index = np.asarray(index)
        return [
            torch.as_tensor(np.asarray(a[index]), dtype=d)
            for a, d in zip(self.arrays, self.dtypes, strict=True)
        ]

    def __getitem__(self, i):
        return self.__getitems__([i])


def _as_batch(batch):
    return batch  # already one tensor per array (`_Batches.__getitems__`)


def _loader(arrays, batch_size: int, shuffle: bool, classify: bool):
    *inputs, y = arrays
    dtypes = [torch.bool if a.dtype == bool else torch.float32 for a in inputs]
    dtypes.append(torch.long if classify else torch.float32)
    inputs = [a if hasattr(a, "rows") else np.asarray(a) for a in inputs]  # views stay views
    y = y if hasattr(y, "rows") else np.asarray(y)
    data = _Batches([*inputs, y], dtypes)
    return torch.utils.data.DataLoader(
        data, batch_size=batch_size, shuffle=shuffle, collate_fn=_as_batch
    )


def fit(
    net: nn.Module,
    train: tuple[np.ndarray, np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray, np.ndarray],
    config: TrainConfig,
    run_dir: str | Path | None = None,
) -> dict:
    """Train `net` in place on `train = (x, dt, y)`, stop early on `val`, and load the best
    weights back.

    Args:
        net: the network; its weights end as those of the best validation epoch.
        train, val: `(x (N, T, C), dt (N, T), y (N, out))`, or with a padding mask
            `(x, dt, mask (N, T) bool, y)`, for `net(x, dt)` or `net(x, dt, mask)`; `y` holds
            class indices `(N,)` with the `cross_entropy` loss, and may have any shape the
            net's output has (e.g. `(N, T, out)` for sequence-to-sequence).
        config: see `TrainConfig`.
        run_dir: where logs go (`logs/` as CSV, and TensorBoard when installed); None: a
            temporary folder, removed afterwards.

    Returns:
        `{"train_loss": [...], "val_loss": [...], "best_epoch": int, "epochs": int}`.

    Raises:
        TrainingError: when no epoch's validation loss was finite (the weights diverged):
            there is no model to keep.
    """
    if not available():
        raise RuntimeError(MISSING)
    check_hardware(config)
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    L.seed_everything(config.seed, workers=True, verbose=False)
    _quiet_lightning()
    remove_stale()  # what killed trainings left behind
    where, slot = _slot()
    if slot is not None and (slot / DONE).is_file():  # finished before the run was stopped
        from safetensors.torch import load_file

        net.load_state_dict(load_file(slot / DONE))
        return json.loads((slot / "history.json").read_text())
    with warnings.catch_warnings(), tempfile.TemporaryDirectory(prefix=PREFIX, dir=where) as tmp:
        (Path(tmp) / "pid").write_text(str(os.getpid()))  # whose it is: see remove_stale
        # a deprecation inside Lightning itself, on every step; nothing a user can act on
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        root = Path(run_dir) if run_dir is not None else Path(tmp)
        loggers = [CSVLogger(root, name="logs", version="")]
        if importlib.util.find_spec("tensorboard") is not None:
            loggers.append(TensorBoardLogger(root, name="logs", version="tensorboard"))
        best = ModelCheckpoint(
            dirpath=slot or Path(tmp) / "checkpoints", monitor="val_loss", mode="min",
            save_top_k=1, save_weights_only=True, filename="best",
        )  # fmt: skip
        history_class, random_state = _history_class()
        history = history_class()
        resumable = []
        if slot is not None:  # a run's training: every epoch's whole state, to resume from
            resumable = [
                ModelCheckpoint(dirpath=slot, filename="last", monitor=None, save_top_k=1,
                                save_on_train_epoch_end=True, enable_version_counter=False),
                random_state(),
            ]  # fmt: skip
        progress = sys.stderr.isatty() if config.progress_bar is None else config.progress_bar
        trainer = L.Trainer(
            max_epochs=config.max_epochs,
            accelerator=config.accelerator,
            devices=config.devices,
            strategy=config.strategy,
            num_nodes=config.num_nodes,
            gradient_clip_val=config.gradient_clip or None,
            callbacks=[
                EarlyStopping("val_loss", patience=config.patience),
                best,
                history,
                *resumable,
            ],
            logger=loggers,
            enable_progress_bar=progress,
            enable_model_summary=False,
            log_every_n_steps=1,
            deterministic=True,
        )
        module = _module_class()(net, config)
        classify = config.loss == "cross_entropy"
        batch = config.batch_size or 64
        last = None if slot is None else slot / "last.ckpt"
        trainer.fit(
            module,
            _loader(train, batch, True, classify),
            _loader(val, batch, False, classify),
            ckpt_path=last if last is not None and last.is_file() else None,
            weights_only=True,  # never unpickle: tensors and plain values only
        )
        # every rank ends with the same best weights. Rank 0 wrote them into its own
        # temporary folder, which it deletes when it leaves this block and which other
        # machines cannot see: rank 0 reads them and sends them to every rank
        path = trainer.strategy.broadcast(best.best_model_path)
        if path:
            state = None
            if trainer.is_global_zero:
                state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
            module.load_state_dict(trainer.strategy.broadcast(state))
        epochs = trainer.current_epoch
    scores = history.history["val_loss"]
    if not any(np.isfinite(scores)):
        raise TrainingError(_diverged(len(scores), train, config))
    result = {
        **history.history,
        "best_epoch": int(np.nanargmin(np.where(np.isfinite(scores), scores, np.nan)))
        if scores
        else 0,
        "epochs": int(epochs),
    }
    if slot is not None:  # what a resumed run takes instead of training this again
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
        (slot / "history.json").write_text(json.dumps(result))
        save_file(state, slot / f"{DONE}.part")
        os.replace(slot / f"{DONE}.part", slot / DONE)
        for ckpt in slot.glob("*.ckpt"):
            ckpt.unlink()
    return result

"""Run by tests/test_train.py: fit with Lightning DDP on 2 CPU processes (gloo), and record
per rank which training windows it saw (one epoch: the sampler reshuffles its shards
every epoch) and the weights it ended with.

    python tests/ddp_worker.py OUT_DIR
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from liquidnets.tasks.models import build
from liquidnets.train import TrainConfig, fit


class Recorder(torch.nn.Module):
    """The network, noting the window ids (the last input feature) of training batches."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.seen: list[int] = []

    def forward(self, x, dt):
        if self.training:
            self.seen += x[:, 0, -1].round().long().tolist()
        return self.net(x[..., :-1], dt)


def main(out: Path) -> None:
    rng = np.random.default_rng(0)
    n, T = 64, 8
    x = rng.normal(size=(n, T, 2)).astype(np.float32)
    ids = np.broadcast_to(np.arange(n, dtype=np.float32)[:, None, None], (n, T, 1))
    x = np.concatenate([x, ids], axis=-1)
    dt = np.ones((n, T), np.float32)
    y = x[:, -1, :1].copy()
    torch.manual_seed(0)
    net = Recorder(build("cfc", n_inputs=2, n_outputs=1, units=8))
    config = TrainConfig(
        max_epochs=1, batch_size=8, accelerator="cpu", devices=2, strategy="ddp",
        progress_bar=False, patience=5,
    )  # fmt: skip
    fit(net, (x, dt, y), (x[:16], dt[:16], y[:16]), config, run_dir=out / "run")
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    weights = {k: v.tolist() for k, v in net.net.state_dict().items()}
    tmp = out / f"rank{rank}.json.tmp"  # renamed whole, so a reader never sees half a file
    tmp.write_text(json.dumps({"seen": net.seen, "weights": weights}))
    tmp.replace(out / f"rank{rank}.json")
    if rank == 0:
        # Lightning started rank 1 as a child process that may still be writing when rank 0
        # is done: wait for it, so that the test reads both files once this script returns
        deadline = time.monotonic() + 120
        while not (out / "rank1.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)


if __name__ == "__main__":
    main(Path(sys.argv[1]))

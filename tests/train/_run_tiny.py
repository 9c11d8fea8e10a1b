"""Run the tiny training config of tiny_training.py in a subprocess (used by the SIGKILL tests).

Usage: python _run_tiny.py OUT_DIR EPOCHS NUM_SAMPLES [--resume | --kill-in-epoch E]

``--kill-in-epoch E`` sends SIGKILL to this process halfway through epoch ``E`` (at the training
forward of the middle step, counted, not timed), after the checkpoint of epoch ``E - 1``.
"""

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import tiny_training  # noqa: E402  (registers the tiny model and dataset)

from dnwgraph.train import Callback, train  # noqa: E402


class KillInEpoch(Callback):
    """SIGKILL this process at the middle training step of epoch ``epoch`` (>= 2)."""

    def __init__(self, epoch: int) -> None:
        self.epoch, self.steps, self.per_epoch = epoch, 0, None

    def on_train_begin(self, model, config) -> None:
        model.register_forward_pre_hook(self._count)

    def _count(self, module, args) -> None:
        if not module.training:  # evaluation forwards are not steps
            return
        self.steps += 1
        if self.per_epoch is not None:
            if self.steps == self.per_epoch * (self.epoch - 1) + self.per_epoch // 2:
                os.kill(os.getpid(), signal.SIGKILL)

    def on_epoch_end(self, row, model) -> None:
        if self.per_epoch is None:
            self.per_epoch = self.steps


if __name__ == "__main__":
    out, epochs, samples = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if sys.argv[4:] == ["--resume"]:
        train(None, out, resume=True, progress=False)
    elif sys.argv[4:5] == ["--kill-in-epoch"]:
        callbacks = [KillInEpoch(int(sys.argv[5]))]
        config = tiny_training.resume_config(epochs, samples)
        train(config, out, progress=False, callbacks=callbacks)
    else:
        train(tiny_training.resume_config(epochs, samples), out, progress=False)

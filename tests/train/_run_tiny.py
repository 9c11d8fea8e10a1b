"""Run the tiny training config of tiny_training.py in a subprocess (used by the SIGKILL tests).

Usage: python _run_tiny.py OUT_DIR EPOCHS NUM_SAMPLES [--resume]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import tiny_training  # noqa: E402  (registers the tiny model and dataset)

from dnwgraph.train import train  # noqa: E402

if __name__ == "__main__":
    out, epochs, samples = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if sys.argv[4:] == ["--resume"]:
        train(None, out, resume=True, progress=False)
    else:
        train(tiny_training.resume_config(epochs, samples), out, progress=False)

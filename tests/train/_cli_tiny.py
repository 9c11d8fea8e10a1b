"""``dnwgraph`` on the command line, with the tiny model and dataset of tiny_training.py
registered (used by the tests that start several runs at once)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import tiny_training  # noqa: E402, F401  (registers the tiny model and dataset)

from dnwgraph.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

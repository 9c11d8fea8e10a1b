"""Time ``dnwgraph demo`` as a user runs it and write the result into ``docs/training.md``.

Runs the demo with its defaults (``mnist1d_static`` with DNW and with the random graph of the
same edges, ``DEMO_EPOCHS`` each, then GraphML and figures) into a temporary folder, and writes the
wall time and both test accuracies between the ``demo-timing`` markers of the training page.

Run: ``python benchmarks/demo_timing.py --write`` (the whole demo; the section says how long).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch  # noqa: E402
from _common import write_section  # noqa: E402

from dnwgraph.demo import DEMO_EPOCHS, run_demo  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update docs/training.md")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        rows = run_demo(Path(tmp) / "demo", progress=False)
        wall = time.perf_counter() - start
    dnw, rnd = rows["dnw"], rows["random"]
    body = (
        f"Measured by `python benchmarks/demo_timing.py --write` (`dnwgraph demo` with its "
        f"defaults: {DEMO_EPOCHS} epochs per run, no gradient clipping) on {os.cpu_count()} "
        f"CPU cores, {torch.get_num_threads()} torch threads (1-min load average "
        f"{os.getloadavg()[0]:.1f} at the end): **{wall:.0f} s** "
        f"wall time in all ({dnw['time_s']:.0f} s for the DNW run, {rnd['time_s']:.0f} s for "
        f"the random graph, the rest GraphML and figures). Result of that run (seed 0): DNW "
        f"{dnw['test_acc']:.1f}% vs random graph {rnd['test_acc']:.1f}% test accuracy "
        f"({dnw['test_acc'] - rnd['test_acc']:+.1f} points), both with {dnw['edges']:,} edges "
        f"and {dnw['params']:,} parameters; [results.md](results.md#"
        "robustness-dnw-against-the-random-graph-in-any-training-loop) has the "
        f"comparison over seeds, data draws and settings."
    )
    print(body)
    if args.write:
        write_section("demo-timing", body, ROOT / "docs" / "training.md")


if __name__ == "__main__":
    main()

"""Why DNW collapsed in a plain training loop, and what each design choice does about it.

Trains ``mnist1d_static`` and ``mnist1d_discrete`` (2 % of the candidates) for a few epochs in
the loop a newcomer writes (SGD lr 0.1, momentum 0.9, weight decay 1e-4, cosine per step,
batch 128, **no gradient clipping**), recording every step with
:class:`dnwgraph.train.monitor.WiringMonitor`, under five variants of the three choices that
this package changed from the reference code:

* ``reference``: edge weights scaled by the largest candidate in-degree
  (``fan_in="candidates"``), node norms with :math:`\\epsilon = 10^{-5}`, ReLU nodes (the
  package's defaults before 0.2, as in the reference code);
* ``norm eps only``: the reference with the norms' :math:`\\epsilon` =
  :data:`~dnwgraph.nn.node_ops.NORM_EPS`;
* ``fan-in only``: the reference with edge weights scaled by the mean selected in-degree;
* ``fan-in + eps``: both;
* ``defaults``: both and GELU nodes (today's defaults).

It draws the instrumentation (``docs/img/stability_<preset>.png``) and writes a table of the
last step and the test accuracy into ``docs/stability.md``.

Run: ``python benchmarks/stability_mnist1d.py --write [--epochs 6]`` (one thread, about 8 min).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import table, write_section  # noqa: E402

from dnwgraph import create_model  # noqa: E402
from dnwgraph.train import create_dataset  # noqa: E402
from dnwgraph.train.monitor import WiringMonitor  # noqa: E402

DOC = ROOT / "docs" / "stability.md"
IMG = ROOT / "docs" / "img"
REFERENCE_EPS = 1e-5
REFERENCE_NODES = {"eps": REFERENCE_EPS, "activation": "relu"}
VARIANTS = {
    "reference": {"fan_in": "candidates", "node_op_options": REFERENCE_NODES},
    "norm eps only": {"fan_in": "candidates", "node_op_options": {"activation": "relu"}},
    "fan-in only": {"node_op_options": REFERENCE_NODES},
    "fan-in + eps": {"node_op_options": {"activation": "relu"}},
    "defaults (+ GELU)": {},
}
PANELS = [
    ("nodes_without_input", "nodes without a selected input", "linear"),
    ("output_in_edges", "selected edges into output nodes", "linear"),
    ("weight_selected", "mean |w| of selected edges", "log"),
    ("grad_unselected", "gradient norm, unselected edges", "log"),
    ("input_scale_p50", "node input spread (median over nodes)", "log"),
    ("loss", "training loss", "linear"),
]


def run(preset: str, options: dict, data: object, epochs: int, ratio: float) -> tuple:
    torch.manual_seed(0)
    model = create_model(preset, selection="dnw", ratio=ratio, **options)
    monitor = WiringMonitor(model)
    x, y = data.train.x, data.train.y  # type: ignore[attr-defined]
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 40 * math.ceil(len(y) / 128))
    step = 0
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(y)).split(128):
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            monitor.record(step, loss)
            opt.step()
            sched.step()
            step += 1
    monitor.close()
    model.eval()
    with torch.no_grad():
        acc = (model(data.test.x).argmax(1) == data.test.y).float().mean()  # type: ignore[attr-defined]
    return monitor.columns(), 100 * float(acc)


def plot(preset: str, curves: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 6.5))
    for ax, (column, title, scale) in zip(axes.flat, PANELS, strict=True):
        for name, cols in curves.items():
            ax.plot(cols["step"], cols[column], label=name, lw=1.2)
        ax.set_title(title, fontsize=10)
        ax.set_yscale(scale)
        ax.set_xlabel("step")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(f"{preset}, DNW, plain SGD without clipping (WiringMonitor, every step)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--ratio", type=float, default=0.02)
    parser.add_argument("--write", action="store_true", help="update docs/stability.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = create_dataset("mnist1d", data_seed=42)
    rows = []
    for preset in ("mnist1d_static", "mnist1d_discrete"):
        curves = {}
        for name, options in VARIANTS.items():
            cols, acc = run(preset, options, data, args.epochs, args.ratio)
            curves[name] = cols
            last = {c: v[-1] for c, v in cols.items()}
            rows.append([
                preset, name, int(last["nodes_without_input"]), int(last["output_in_edges"]),
                f"{last['weight_selected']:.3g}", f"{max(cols['grad_unselected']):.3g}",
                f"{last['input_scale_p50']:.2g}", f"{acc:.1f}",
            ])  # fmt: skip
            print(rows[-1], flush=True)
        if args.write:
            plot(preset, curves, IMG / f"stability_{preset}.png")
    body = (
        f'After {args.epochs} epochs of `selection="dnw"` at {100 * args.ratio:.0f} % of the '
        f"candidates (seed 0, MNIST-1D draw 42). Command: `python benchmarks/stability_mnist1d.py "
        f"--write --epochs {args.epochs}`.\n\n"
        + table(
            [
                "preset",
                "variant",
                "nodes without input",
                "edges into outputs",
                "mean abs w (selected)",
                "max grad norm (unselected)",
                "median input spread",
                f"test acc % after {args.epochs} epochs",
            ],
            rows,
        )  # fmt: skip
    )
    print(body)
    if args.write:
        write_section("dynamics", body, DOC)


if __name__ == "__main__":
    main()

"""Compact inference: a trained model vs its ``compact`` form vs the dense masked reference.

For ``mnist1d_static`` (320 nodes, 2% of 41,984 candidates; 3 epochs of Adam on 1,000
generated MNIST-1D signals) and ``tiny_static`` (800 nodes, 2% of 254,960 candidates; 30 Adam
steps on random 3x32x32 images with random labels, as no CIFAR-10 is shipped), in eval mode,
same process, medians of wall time per batch (the variants alternate round by round):

* ``sparse``: the trained model as it is (fused sparse aggregation of the selected edges, the
  selection cached while the weights do not change);
* ``dense masked``: the same weights with ``impl="dense"`` (a dense N x N masked matrix per
  level, the reference code's way of aggregating);
* ``compact``: ``dnwgraph.compact(model)`` — dead nodes removed (to a fixed point), the selected
  edges as a fixed ``complete`` wiring.

Outputs of the three are checked equal. Parameter and MAC counts (per sample) come from
``dnwgraph.count_params`` / ``count_macs`` (selected edges only).

Run: ``python benchmarks/bench_compact.py [--write] [--device cuda] [--threads N]``
(``--write`` updates ``docs/benchmarks.md``; one thread gives steadier numbers on a shared
machine).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
from _common import device_name, median_ms, table, write_section
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dnwgraph import compact, count_macs, count_params, create_model  # noqa: E402
from dnwgraph.analysis import live_node_mask  # noqa: E402

RATIO = 0.02
ROUNDS = 7


def train_mnist1d(model: nn.Module) -> None:
    from dnwgraph.train import create_dataset

    data = create_dataset("mnist1d", num_samples=1000)
    x, y = data.train.x.reshape(len(data.train), -1), data.train.y
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(3):
        for idx in torch.randperm(len(y), generator=gen).split(50):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()


def train_random(model: nn.Module, shape: tuple[int, ...], steps: int = 30) -> None:
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model.train()
    for _ in range(steps):
        x = torch.randn(32, *shape, generator=gen)
        y = torch.randint(0, 10, (32,), generator=gen)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def case(name: str, batch: int, device: torch.device) -> list[list[object]]:
    torch.manual_seed(0)
    model = create_model(name, ratio=RATIO)
    shape = tuple(model.input_shape)
    if name == "mnist1d_static":
        train_mnist1d(model)
    else:
        train_random(model, shape)
    model.eval()
    dense = create_model(name, ratio=RATIO, impl="dense")
    dense.load_state_dict(model.state_dict())
    small = compact(model)
    live = int(live_node_mask(model)["executor.conv"].sum())
    variants = [("sparse (trained model)", model), ("dense masked", dense.eval())]
    variants.append(("compact", small.eval()))
    x = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(1)).to(device)
    rows = []
    with torch.no_grad():
        ref = model.to(device)(x)
        times: dict[str, list[float]] = {label: [] for label, _ in variants}
        for m in variants:
            m[1].to(device)
        # rounds alternate between the variants so that a change of machine load hits all
        for _ in range(ROUNDS):
            for label, m in variants:
                times[label].append(median_ms(lambda m=m: m(x), repeat=3, warmup=1))
        for label, m in variants:
            err = float((m(x) - ref).abs().max())
            ms = statistics.median(times[label])
            m.cpu()
            rows.append(
                [
                    name,
                    label,
                    m.num_nodes,
                    int(m.conv.active_mask().sum()),
                    f"{count_params(m):,}",
                    f"{count_macs(m, (1, *shape)):,}",
                    ms,
                    f"{err:.1e}",
                ]
            )
    print(f"{name}: {live} live nodes of {model.num_nodes}; compact keeps {small.num_nodes}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    flags = f"--device {args.device}"
    if args.threads is not None:
        flags += f" --threads {args.threads}"
    rows = case("mnist1d_static", 256, device) + case("tiny_static", 64, device)
    header = ["model", "variant", "nodes", "edges", "params", "MACs/sample", "ms/batch", "max diff"]
    body = "\n".join(
        [
            "### Compact inference (`benchmarks/bench_compact.py`)",
            "",
            f"Device: {device_name(device)}. Batches: 256 MNIST-1D signals (`mnist1d_static`), "
            f"64 images of 3x32x32 (`tiny_static`); eval mode, float32, ratio {RATIO}; "
            f"median over {ROUNDS} rounds (variants alternate) of the median of 3 runs. "
            "max diff: largest absolute output difference from the trained model.",
            "",
            table(header, rows),
            "",
            f"Command: `python benchmarks/bench_compact.py --write {flags}`",
        ]
    )
    print(body)
    if args.write:
        write_section(f"bench_compact_{device.type}", body)


if __name__ == "__main__":
    main()

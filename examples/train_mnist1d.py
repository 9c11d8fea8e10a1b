"""Train a static neural graph on MNIST-1D with DNW in a plain PyTorch loop.

The model's channels are the nodes of a block DAG (320 nodes, 41,984 candidate edges); every
step, the forward pass aggregates over the top 2,048 edges by |w| (fused sparse message
passing) and the backward pass sends a straight-through gradient to every candidate edge, so
the wiring changes while it trains.  About a minute on 2 CPU cores with the defaults.

Run: ``python examples/train_mnist1d.py [--epochs 3] [--num-samples 5000]``
(``dnwgraph train --config examples/configs/mnist1d_static_dnw.yaml`` is the full version with
checkpoints, metrics and resume.)
"""

from __future__ import annotations

import argparse
import math

import torch
from torch import nn

from dnwgraph import WiringConv, count_params, create_model
from dnwgraph.train import create_dataset


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--num-samples", type=int, default=5000, help="generated, split 80/20")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    data = create_dataset("mnist1d", num_samples=args.num_samples)
    x_train, y_train = data.train.x, data.train.y  # [N, 40], [N]
    x_test, y_test = data.test.x, data.test.y
    model = create_model("mnist1d_static", selection="dnw", ratio=2048)
    conv = next(m for m in model.modules() if isinstance(m, WiringConv))
    print(f"{conv}\nparameters (selected edges only): {count_params(model):,}")

    batch = 128
    steps = args.epochs * math.ceil(len(y_train) / batch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    previous = conv.active_mask().clone()
    acc = 0.0
    for epoch in range(1, args.epochs + 1):
        model.train()
        total = 0.0
        for index in torch.randperm(len(y_train)).split(batch):
            loss = nn.functional.cross_entropy(model(x_train[index]), y_train[index])
            optimizer.zero_grad()
            loss.backward()  # straight-through: every candidate edge gets a gradient
            optimizer.step()
            schedule.step()
            total += loss.item() * len(index)
        model.eval()
        with torch.no_grad():
            acc = (model(x_test).argmax(1) == y_test).float().mean().item()
        mask = conv.active_mask()
        swapped = int((mask & ~previous).sum())
        previous = mask.clone()
        print(
            f"epoch {epoch}: train loss {total / len(y_train):.3f}  test acc {100 * acc:.1f}%  "
            f"edges swapped in {swapped} of {int(mask.sum())}"
        )
    return acc


if __name__ == "__main__":
    main()

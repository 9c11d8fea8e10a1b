"""WiringConv vs the dense masked straight-through layer of the reference code.

The reference (official DNW code) keeps a dense N x N weight, multiplies it by a top-k mask and
runs a dense matmul; its backward forms the full dense G X^T.  ``WiringConv`` runs the selected
edges as one sparse CSR matmul and gathers the all-candidate gradient as an SDDMM.

Cases (float32, same process, medians):

* paper scale: 800 channel-nodes in blocks [32, 192, 192, 192, 192] (``block_dag``), 32,000
  selected edges (5% of 800^2), ``x`` of shape [800, 64, 8, 8] (batch 64 at 8x8);
* the same at 1% density (6,400 edges);
* large: 20,000 nodes, 2,000,000 random DAG candidates, 25k-200k selected edges, ``x`` of
  shape [20000, 256]: time follows the selected edges, not N^2.  Peak memory is measured in a
  child process per variant (``ru_maxrss`` above the inputs).

Run: ``python benchmarks/bench_wiring.py [--write] [--device cuda] [--skip-large]``
(``--write`` updates ``docs/benchmarks.md``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch
from _common import device_name, median_ms, peak_memory_mb, reset_peak_memory, table, write_section

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dnwgraph import Wiring, WiringConv, block_dag  # noqa: E402


class DenseMasked(torch.nn.Module):
    """The reference code's layer: dense N x N weight x top-k mask, straight-through."""

    def __init__(self, wiring: Wiring, k: int) -> None:
        super().__init__()
        n = wiring.num_nodes
        self.k = k
        src, dst = wiring.edge_index
        self.weight = torch.nn.Parameter(torch.zeros(n, n))
        cand = torch.zeros(n, n, dtype=torch.bool)
        cand[dst, src] = True
        self.register_buffer("candidates", cand)
        with torch.no_grad():
            self.weight[cand] = torch.empty(int(cand.sum())).uniform_(-1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        score = w.detach().abs().masked_fill(~self.candidates, -1.0)
        mask = torch.zeros_like(w).view(-1)
        mask[torch.topk(score.view(-1), self.k, sorted=False).indices] = 1.0
        mask = mask.view_as(w)
        # value w*m, gradient 1 for every candidate (the reference's straight-through rule)
        w_eff = w * mask + (w - w.detach()) * (self.candidates.to(w.dtype) - mask)
        return (w_eff @ x.reshape(x.size(0), -1)).view_as(x)


def random_dag_edges(num_nodes: int, num_edges: int, seed: int = 0) -> Wiring:
    """``num_edges`` distinct random edges oriented low -> high (a DAG), generated in torch."""
    g = torch.Generator().manual_seed(seed)
    keys = torch.empty(0, dtype=torch.long)
    while keys.numel() < num_edges:
        u = torch.randint(0, num_nodes, (2 * num_edges,), generator=g)
        v = torch.randint(0, num_nodes, (2 * num_edges,), generator=g)
        lo, hi = torch.minimum(u, v), torch.maximum(u, v)
        ok = lo != hi
        keys = torch.unique(torch.cat([keys, lo[ok] * num_nodes + hi[ok]]))
    keys = keys[torch.randperm(keys.numel(), generator=g)[:num_edges]]
    edge_index = torch.stack([keys // num_nodes, keys % num_nodes])
    return Wiring(edge_index, num_nodes=num_nodes)


def time_layer(layer: torch.nn.Module, x: torch.Tensor, repeat: int) -> dict[str, float]:
    """Forward with changing weights (training), cached forward (inference), training step."""
    params = [p for p in layer.parameters()]
    opt = torch.optim.SGD(params, lr=1e-6)
    g = torch.randn_like(x)
    xg = x.clone().requires_grad_(True)

    def nudge() -> None:  # a weight update invalidates any cached selection, as in training
        with torch.no_grad():
            params[0].add_(1e-7)

    def forward_train() -> None:
        nudge()
        with torch.no_grad():
            layer(x)

    def forward_cached() -> None:
        with torch.no_grad():
            layer(x)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        (layer(xg) * g).sum().backward()
        opt.step()

    return {
        "forward": median_ms(forward_train, repeat=repeat),
        "forward_cached": median_ms(forward_cached, repeat=repeat),
        "step": median_ms(step, repeat=repeat),
    }


def step_memory_mb(kind: str, num_nodes: int, num_edges: int, k: int, features: int) -> float:
    """Peak RSS (MB) of one training step in a fresh child process, above its inputs."""
    args = json.dumps([kind, num_nodes, num_edges, k, features])
    out = subprocess.run(
        [sys.executable, __file__, "--child", args], capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def child(spec: str) -> None:
    kind, num_nodes, num_edges, k, features = json.loads(spec)
    torch.manual_seed(0)
    wiring = random_dag_edges(num_nodes, num_edges)
    layer = WiringConv(wiring, k) if kind == "ours" else DenseMasked(wiring, k)
    x = torch.randn(num_nodes, features, requires_grad=True)
    g = torch.randn(num_nodes, features)
    base = reset_peak_memory()
    (layer(x) * g).sum().backward()
    print(peak_memory_mb() - base)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    device = torch.device(args.device)
    torch.manual_seed(0)

    rows = []
    paper = block_dag([32, 192, 192, 192, 192])
    x = torch.randn(800, 64, 8, 8, device=device)
    for label, k in (("paper scale, 5% (32,000 edges)", 32_000), ("1% (6,400 edges)", 6_400)):
        ours = WiringConv(paper, k).to(device)
        dense = DenseMasked(paper, k).to(device)
        with torch.no_grad():  # same weights, same selection
            dense.weight.zero_()
            src, dst = ours.edge_index
            dense.weight[dst, src] = ours.edge_weight
        t_ours, t_dense = time_layer(ours, x, args.repeat), time_layer(dense, x, args.repeat)
        for what, name in (
            ("forward", "forward (weights changed)"),
            ("forward_cached", "forward (cached, inference)"),
            ("step", "training step (fwd + bwd, all-candidate grads)"),
        ):
            rows.append(
                [label, name, t_dense[what], t_ours[what], f"{t_dense[what] / t_ours[what]:.1f}x"]
            )
    header = ["case", "measure", "dense masked (ms)", "WiringConv (ms)", "speed-up"]
    paper_table = table(header, rows)
    print(paper_table)

    large_table = ""
    if not args.skip_large:
        n, e, f = 20_000, 2_000_000, 256
        wiring = random_dag_edges(n, e)
        xl = torch.randn(n, f, device=device)
        large_rows = []
        for k in (25_000, 50_000, 100_000, 200_000):
            t = time_layer(WiringConv(wiring, k).to(device), xl, max(3, args.repeat // 2))
            mem = step_memory_mb("ours", n, e, k, f) if device.type == "cpu" else float("nan")
            large_rows.append([f"{k:,}", t["forward"], t["forward_cached"], t["step"], mem])
        dense = DenseMasked(wiring, 100_000).to(device)
        t = time_layer(dense, xl, 3)
        mem = step_memory_mb("dense", n, e, 100_000, f) if device.type == "cpu" else float("nan")
        row = ["dense masked, 100,000", t["forward"], t["forward_cached"], t["step"], mem]
        large_rows.append(row)
        large_table = table(
            [
                "selected edges",
                "forward (ms)",
                "cached forward (ms)",
                "training step (ms)",
                "peak memory of a step (MB)",
            ],
            large_rows,
        )
        print(large_table)

    if args.write:
        cmd = "python benchmarks/bench_wiring.py --write"
        if args.device != "cpu":
            cmd += f" --device {args.device}"
        body = (
            f"### WiringConv vs dense masked ({device_name(device)}, torch {torch.__version__})\n\n"
            f"`{cmd}` — float32, medians of {args.repeat} runs, same process. Targets on a "
            "2-core CPU: forward >= 3x, training step >= 1.5x.\n\n"
            f"{paper_table}\n"
        )
        if large_table:
            body += (
                "\nLarge: 20,000 nodes, 2,000,000 random-DAG candidates, `x` [20000, 256]. "
                "Peak memory: extra resident memory of one training step in a fresh process.\n\n"
                f"{large_table}\n"
            )
        write_section(f"wiring-{device.type}", body)


if __name__ == "__main__":
    main()

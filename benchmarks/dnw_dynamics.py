"""What helps DNW itself: variants of its selection dynamics, chosen on a dev split and
confirmed on held-out draws and seeds against default DNW and the strongest random graph.

DNW (``docs/concepts.md``) trains every candidate weight: the top-k by :math:`|w|` is used
forward, and every unused candidate gets the straight-through gradient
:math:`\\langle x_u, \\partial L/\\partial \\mathrm{out}_v\\rangle`, the first-order change of
the loss were the edge used. An unused edge swaps in when its :math:`|w|` overtakes the
weakest used one. What else moves an unused weight, and how often the top-k is looked at,
are choices the paper does not study; each variant changes one of them (:data:`VARIANTS`):

* ``decay_selected_only``: weight decay pulls every unused weight towards 0 at the rate
  :math:`\\eta\\lambda` whatever its gradient says, so an edge that left the top-k sinks
  further the longer it stays out (a bias towards the current wiring); here only the used
  edges decay (SGD's own decay is off for the edge weights and added by hand where used).
* ``momentum_selected_only``: the paper's swap argument is for plain gradient steps; with
  momentum an unused weight keeps the velocity of earlier steps (of the time it was used,
  or of gradients that no longer hold), so it can cross the threshold on stale evidence.
  Here the momentum buffer of every unused edge is zeroed before each step: unused weights
  take plain SGD steps, used ones keep their momentum.
* ``st_scale_0.5``, ``st_scale_2``: the straight-through gradient of the unused edges times
  0.5 or 2 (0 is ``dnw_no_update``, 1 is DNW): less or more exploration of the candidates,
  the used edges' gradient untouched.
* ``reselect_10``: ``selection="dnw_periodic", frequency=10``: the top-k is chosen every 10
  steps and held in between (RigL's period), so an edge near the threshold cannot enter and
  leave the forward pass on alternate steps, while every candidate still gets its
  straight-through gradient at every step.

Everything else is the plain loop of ``benchmarks/strongest_baseline.py`` (SGD lr 0.1,
momentum 0.9, weight decay 1e-4, cosine per step, batch 128, no clipping; every DNW variant
with dnwgraph 0.2's defaults, ``strongest_baseline.SETTINGS["defaults"]``, spelt out: the
study ran before 0.3.0 gave ``tiny_static`` the norm epsilon 1e-5), on two harder test beds
(:data:`TESTBEDS`):

* ``mnist1d_noisy``: ``mnist1d_static`` on MNIST-1D generated with ``iid_noise_scale=0.05``
  (2.5 times the standard noise), 40 epochs;
* ``digits_1k``: ``tiny_static`` on 1,000 of the real digits (the first 1,000 of the
  4,000-digit training part of ``strongest_baseline``'s split of draw ``d``; tested on its
  1,000 held-out digits), 40 epochs (320 steps, as 10 epochs on 4,000 digits).

Draw ``d`` has the data seed ``100 + d`` (as ``strongest_baseline``, whose draws are 0-2).
The protocol:

1. ``--phase dev`` (draw 10, seeds 0-1): every variant and default DNW.
2. The choice, per test bed: the variant with the largest mean paired gap over default DNW
   on the dev runs, if that gap is positive (:func:`choose`).
3. ``--phase confirm`` (held-out draws 11-13 x seeds 2-4, paired by (draw, seed)): the
   chosen variant, default DNW, and the random graph with 0.2's defaults and with the
   reference choices (the stronger by its mean is the baseline, as in
   ``strongest_baseline``); 95 % Student-t intervals of the mean paired gaps. On a test bed
   whose preset's package defaults are no longer 0.2's (``digits_1k`` since 0.3.0), DNW and
   the random graph with today's package defaults too (:data:`PACKAGE_ARMS`): the study's
   question asked again of what a user gets now.

Every finished run appends one JSON line to ``--results`` (a run on file is skipped, so the
script resumes); ``--list`` prints the runs to go; ``--write`` trains nothing and writes the
``selection-dynamics`` section of ``docs/results.md`` from the file, every partial cell labelled
*in progress*.

Run: ``python benchmarks/dnw_dynamics.py --phase dev --jobs 2``, then ``--phase confirm``,
then ``python benchmarks/dnw_dynamics.py --write``.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import strongest_baseline as sb  # noqa: E402
import torch  # noqa: E402
from _common import write_section  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "dnw_dynamics.jsonl"
DOC = ROOT / "docs" / "results.md"


# ---------------------------------------------------------------------------- variants
@dataclass(frozen=True)
class Variant:
    """One change to DNW's selection dynamics; the default values are DNW's.

    ``selection`` and ``options`` go to ``create_model``; the three loop fields act on the
    edge weights of every :class:`~dnwgraph.WiringConv` between ``backward`` and ``step``.
    """

    what: str
    selection: str = "dnw"
    options: dict[str, Any] = field(default_factory=dict)
    decay_unselected: bool = True
    momentum_unselected: bool = True
    unselected_grad_scale: float = 1.0

    @property
    def changes_loop(self) -> bool:
        return not (
            self.decay_unselected and self.momentum_unselected and self.unselected_grad_scale == 1
        )


#: The variants tried on the dev split (``dnw`` is the control).
VARIANTS: dict[str, Variant] = {
    "dnw": Variant("DNW with 0.2's defaults (ε 0.1 for both beds)"),
    "decay_selected_only": Variant("weight decay on the used edges only", decay_unselected=False),
    "momentum_selected_only": Variant(
        "no momentum for the unused edges (buffer zeroed)", momentum_unselected=False
    ),
    "st_scale_0.5": Variant(
        "straight-through gradient of the unused edges x 0.5", unselected_grad_scale=0.5
    ),
    "st_scale_2": Variant(
        "straight-through gradient of the unused edges x 2", unselected_grad_scale=2.0
    ),
    "reselect_10": Variant(
        "top-k re-chosen every 10 steps (`dnw_periodic`)", "dnw_periodic", {"frequency": 10}
    ),
}
#: The random graph at both settings of ``strongest_baseline`` (confirm phase only).
BASELINES = {f"random_{s}": s for s in sb.SETTINGS}
CONTROL = "dnw"
#: DNW and the random graph with the package defaults of today, where those are not 0.2's
#: (confirm phase only): arm -> selection.
PACKAGE_ARMS = {"dnw_package": "dnw", "random_package": "random"}


def package_arms(testbed: str) -> list[str]:
    """:data:`PACKAGE_ARMS` where the test bed's preset no longer has 0.2's defaults."""
    changed = sb.package_setting(TESTBEDS[testbed].preset) != "defaults"
    return list(PACKAGE_ARMS) if changed else []


def baselines(testbed: str) -> list[str]:
    """The random graphs the baseline of ``testbed`` is the strongest of."""
    return [*BASELINES, *(a for a in package_arms(testbed) if PACKAGE_ARMS[a] == "random")]


class Dynamics:
    """The plain loop's :class:`strongest_baseline.StepHook` for a :class:`Variant`.

    Args:
        variant (Variant): the change.
        model (nn.Module): the model; every :class:`~dnwgraph.WiringConv` in it is changed.
    """

    def __init__(self, variant: Variant, model: torch.nn.Module) -> None:
        from dnwgraph import WiringConv

        self.variant = variant
        self.convs = [m for m in model.modules() if isinstance(m, WiringConv)]

    def param_groups(self, model: torch.nn.Module) -> list[dict[str, Any]]:
        if self.variant.decay_unselected:
            return [{"params": list(model.parameters())}]
        edges = {id(c.edge_weight) for c in self.convs}
        rest = [p for p in model.parameters() if id(p) not in edges]
        # the edge weights decay by hand, where used (before_step)
        return [
            {"params": rest},
            {"params": [c.edge_weight for c in self.convs], "weight_decay": 0.0},
        ]

    @torch.no_grad()
    def before_step(self, opt: torch.optim.Optimizer) -> None:
        v = self.variant
        for conv in self.convs:
            w = conv.edge_weight
            if w.grad is None:
                continue
            used = conv.active_mask()  # the mask of this step's forward (same weights)
            if v.unselected_grad_scale != 1:
                w.grad[~used] *= v.unselected_grad_scale
            if not v.decay_unselected:
                w.grad.add_(w * used, alpha=sb.WEIGHT_DECAY)
            if not v.momentum_unselected:
                buf = opt.state.get(w, {}).get("momentum_buffer")
                if buf is not None:  # none before the first step
                    buf[~used] = 0.0


# --------------------------------------------------------------------------- test beds
@dataclass(frozen=True)
class TestBed:
    preset: str
    data: str  # "mnist1d" or "digits"
    epochs: int
    train_size: int | None = None  # the first n training samples; None: all
    noise: dict[str, float] = field(default_factory=dict)  # mnist1d's noise options

    __test__ = False  # not a pytest class


TESTBEDS: dict[str, TestBed] = {
    "digits_1k": TestBed("tiny_static", "digits", 40, train_size=1000),
    "mnist1d_noisy": TestBed("mnist1d_static", "mnist1d", 40, noise={"iid_noise_scale": 0.05}),
}
DEV = {"draws": [10], "seeds": [0, 1]}
HELD_OUT = {"draws": [11, 12, 13], "seeds": [2, 3, 4]}
PHASES = {"dev": DEV, "confirm": HELD_OUT}


@lru_cache(maxsize=2)
def load_data(testbed: str, draw: int) -> tuple[torch.Tensor, ...]:
    """``(x_train, y_train, x_test, y_test)`` of ``testbed`` at draw ``draw``."""
    bed = TESTBEDS[testbed]
    if bed.data == "mnist1d":
        from dnwgraph.train import create_dataset

        d = create_dataset("mnist1d", data_seed=sb.data_seed(draw), **bed.noise)
        x, y, xt, yt = d.train.x, d.train.y, d.test.x, d.test.y
    else:
        x, y, xt, yt = sb.load_data(bed.data, draw)
    n = bed.train_size or len(y)
    return x[:n], y[:n], xt, yt


# ---------------------------------------------------------------------------- training
def build(arm: str, preset: str, seed: int) -> tuple[torch.nn.Module, Dynamics | None]:
    """The model of ``arm`` (a variant or a baseline) and its loop hook (``None``: the plain
    loop). Seeds the initial weights with ``seed``."""
    from dnwgraph import create_model

    torch.manual_seed(seed)
    if arm in BASELINES:
        return create_model(
            preset, selection="random", seed=seed, **sb.SETTINGS[BASELINES[arm]]
        ), None
    if arm in PACKAGE_ARMS:  # today's defaults, whatever they are: left to the package
        seeded = {"seed": seed} if PACKAGE_ARMS[arm] == "random" else {}
        return create_model(preset, selection=PACKAGE_ARMS[arm], **seeded), None
    v = VARIANTS[arm]  # 0.2's defaults spelt out: the study's meaning does not move with them
    model = create_model(preset, selection=v.selection, **sb.SETTINGS["defaults"], **v.options)
    return model, Dynamics(v, model) if v.changes_loop else None


def run_one(job: dict) -> dict:
    """Train one job in this process (one thread) and return its record."""
    torch.set_num_threads(1)
    start = time.perf_counter()
    bed = TESTBEDS[job["testbed"]]
    model, hook = build(job["arm"], bed.preset, job["seed"])
    out = sb.plain_loop(
        model, load_data(job["testbed"], job["draw"]), job["epochs"], job["seed"], hook
    )
    return {
        **job,
        "preset": bed.preset,
        "data_seed": sb.data_seed(job["draw"]),
        **out,
        "acc": out["curve"][-1],
        "time_s": round(time.perf_counter() - start, 1),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
    }


# -------------------------------------------------------------------------------- grid
KEY = ("testbed", "arm", "draw", "seed", "epochs")


def key(rec: dict) -> tuple:
    return tuple(str(rec[f]) for f in KEY)


def grid(args: argparse.Namespace, chosen: dict[str, list[str]]) -> Iterator[dict]:
    """Test bed by test bed, (draw, seed) pair by pair, every arm of a pair before the next
    pair. Dev: every variant; confirm: the chosen variants, the control, the baselines."""
    split = PHASES[args.phase]
    for testbed in args.testbeds:
        if args.phase == "dev":
            arms = list(args.variants)
        else:
            arms = [*chosen.get(testbed, []), CONTROL, *BASELINES, *package_arms(testbed)]
        for draw in split["draws"]:
            for seed in split["seeds"]:
                for arm in arms:
                    yield dict(
                        testbed=testbed,
                        arm=arm,
                        phase=args.phase,
                        draw=draw,
                        seed=seed,
                        epochs=args.epochs or TESTBEDS[testbed].epochs,
                    )


def choose(records: list[dict], testbed: str) -> tuple[str | None, str]:
    """The variant to confirm on ``testbed``: the largest mean paired gap over the control on
    the dev runs, if positive; ``None`` with the reason otherwise (dev incomplete, or no
    variant ahead)."""
    dev = _runs(records, "dev", testbed)
    pairs = len(DEV["draws"]) * len(DEV["seeds"])
    missing = [v for v in VARIANTS if len(dev.get(v, {})) < pairs]
    if missing:
        return None, f"dev in progress ({', '.join(missing)} not complete)"
    gaps = {v: statistics.mean(_gaps(dev[v], dev[CONTROL])) for v in VARIANTS if v != CONTROL}
    best = max(gaps, key=gaps.__getitem__)
    if gaps[best] <= 0:
        return None, f"no variant ahead of DNW on the dev runs (best: {best} {gaps[best]:+.2f})"
    return best, f"{best} ({gaps[best]:+.2f} over DNW on the dev runs)"


def train_all(args: argparse.Namespace, argv: list[str]) -> None:
    done = sb.load(args.results, key)
    records = list(done.values())
    chosen: dict[str, list[str]] = {}
    if args.phase == "confirm":
        for testbed in args.testbeds:
            name, why = (args.chosen[0], "given") if args.chosen else choose(records, testbed)
            print(f"{testbed}: confirm {name or 'no variant'}: {why}", flush=True)
            chosen[testbed] = list(args.chosen or ([name] if name else []))
    extra = {
        "command": " ".join(["python benchmarks/dnw_dynamics.py", *argv]),
        "commit": sb.commit(),
    }
    todo = [{**j, **extra} for j in grid(args, chosen) if key(j) not in done]
    print(f"{len(done)} runs on file, {len(todo)} to go ({args.results})", flush=True)
    if args.list:
        for j in todo:
            print(" ".join(str(j[f]) for f in KEY))
        return
    sb.run_jobs(todo, run_one, args.results, args.jobs, key)


# ----------------------------------------------------------------------------- summary
def _runs(records: list[dict], phase: str, testbed: str) -> dict[str, dict[tuple, dict]]:
    """``{arm: {(draw, seed): record}}`` of ``phase`` on ``testbed`` at its epochs (runs at
    other epochs, such as a smoke test's, are left out)."""
    out: dict[str, dict[tuple, dict]] = {}
    for r in records:
        if (r["phase"], r["testbed"], r["epochs"]) == (phase, testbed, TESTBEDS[testbed].epochs):
            out.setdefault(r["arm"], {})[(r["draw"], r["seed"])] = r
    return out


def _gaps(a: dict[tuple, dict], b: dict[tuple, dict]) -> list[float]:
    """Paired ``a - b`` over the common (draw, seed)."""
    return [a[p]["acc"] - b[p]["acc"] for p in sorted(set(a) & set(b))]


def _late(runs: dict[tuple, dict]) -> str:
    """Mean change of the test accuracy over the last quarter of the epochs (0 at a plateau)."""
    gains = []
    for r in runs.values():
        q = len(r["curve"]) - math.ceil(len(r["curve"]) / 4)
        gains.append(r["curve"][-1] - r["curve"][q - 1])
    return f"{statistics.mean(gains):+.2f}"


def dev_table(records: list[dict]) -> str:
    """Every variant on the dev runs: accuracy, paired gap over DNW, late gain."""
    rows = []
    pairs = len(DEV["draws"]) * len(DEV["seeds"])
    for testbed in TESTBEDS:
        cells = _runs(records, "dev", testbed)
        for arm in [a for a in VARIANTS if a in cells]:
            gaps = _gaps(cells[arm], cells.get(CONTROL, {})) if arm != CONTROL else []
            n = len(cells[arm])
            status = "complete" if n >= pairs else f"in progress ({n} of {pairs})"
            rows.append(
                [
                    testbed,
                    arm,
                    VARIANTS[arm].what,
                    sb._pm(cells[arm]),
                    sb._gap_text(gaps),
                    _late(cells[arm]),
                    status,
                ]
            )
    header = [
        "test bed",
        "variant",
        "what it changes",
        "test acc. % (runs)",
        "gap over DNW, paired [95 % CI]",
        "gain over the last quarter",
        "status",
    ]
    return sb.table(header, rows)


def confirm_table(records: list[dict]) -> str:
    """Held-out runs: each confirmed variant against DNW and against the stronger random
    graph, and DNW against that random graph."""
    rows = []
    full = len(HELD_OUT["draws"]) * len(HELD_OUT["seeds"])
    for testbed in TESTBEDS:
        cells = _runs(records, "confirm", testbed)
        found = {b: cells[b] for b in baselines(testbed) if b in cells}
        base = max(found, key=lambda b: sb._mean(found[b])) if found else None
        learned = [*VARIANTS, *(a for a in package_arms(testbed) if a not in found)]
        for arm in [a for a in learned if a in cells]:
            against = [(CONTROL, cells.get(CONTROL, {}))] if arm != CONTROL else []
            if base is not None:
                against.append((f"{base} (stronger)", found[base]))
            for name, other in against:
                gaps = _gaps(cells[arm], other)
                status = "complete" if len(gaps) >= full else f"in progress ({len(gaps)} of {full})"
                label = {CONTROL: "DNW", "dnw_package": "today's DNW"}.get(arm, arm)
                control = "0.2's DNW" if arm == "dnw_package" else "DNW"
                names = (label, control) if name == CONTROL else (label, "baseline")
                verdict = sb.verdict(gaps, *names) if len(gaps) >= full else ""
                rows.append(
                    [
                        testbed,
                        arm,
                        sb._pm(cells[arm]),
                        name,
                        sb._pm(other) if other else "",
                        sb._gap_text(gaps),
                        f"{sum(g > 0 for g in gaps)} of {len(gaps)}",
                        verdict,
                        status,
                    ]
                )
    header = [
        "test bed",
        "arm",
        "test acc. % (runs)",
        "against",
        "its acc. % (runs)",
        "gap, paired [95 % CI]",
        "arm ahead",
        "verdict",
        "status",
    ]
    return sb.table(header, rows)


def section(records: list[dict], path: Path) -> str:
    """The ``selection-dynamics`` section of ``docs/results.md``: what is on file, nothing more."""
    commands = sorted({r.get("command", "") for r in records} - {""})
    hours = sum(r["time_s"] for r in records) / 3600
    choices = "\n".join(f"* {t}: {choose(records, t)[1]}" for t in TESTBEDS)
    rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    other = sum(r["epochs"] != TESTBEDS[r["testbed"]].epochs for r in records)
    return (
        f"Made by `python benchmarks/dnw_dynamics.py --write` from `{rel}` ({len(records)} "
        f"runs, {hours:.1f} CPU hours, one thread a run"
        + (f"; {other} at other epoch counts, not shown" if other else "")
        + "), which these invocations filled:\n\n"
        + ("\n".join(f"    {c}" for c in commands) or "    (none yet)")
        + "\n\n**Dev split** (draw 10, seeds 0-1, 40 epochs; used to choose, so it shows nothing "
        "about the chosen variant on its own; 2 pairs make a weak choice):\n\n"
        + dev_table(records)
        + "\n\n**The choice** (the largest mean gap over DNW on the dev runs, if positive):\n\n"
        + choices
        + "\n\n**Held out** (draws 11-13 x seeds 2-4, not used to choose; `dnw` and the "
        "variants with 0.2's defaults, `dnw_package` with today's where they differ; the random "
        "graph at the strongest of 0.2's defaults, the reference choices and, where they "
        "differ, today's defaults; a verdict only once all 9 pairs are in):\n\n"
        + confirm_table(records)
        + "\n"
    )


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--phase", choices=list(PHASES), default="dev")
    p.add_argument("--testbeds", nargs="+", default=list(TESTBEDS), choices=list(TESTBEDS))
    p.add_argument(
        "--variants",
        nargs="+",
        default=list(VARIANTS),
        choices=list(VARIANTS),
        help="variants of the dev phase",
    )
    p.add_argument(
        "--chosen",
        nargs="+",
        default=None,
        choices=[v for v in VARIANTS if v != CONTROL],
        help="confirm these variants (default: each test bed's choice from the dev runs)",
    )
    p.add_argument("--epochs", type=int, default=None, help="(default: the test bed's, 40)")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--list", action="store_true", help="print the runs to go and stop")
    p.add_argument(
        "--write",
        action="store_true",
        help="train nothing; write the selection-dynamics section of docs/results.md",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.write:
        body = section(list(sb.load(args.results, key).values()), args.results)
        write_section("selection-dynamics", body, DOC)
        print(body)
        return
    train_all(args, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()

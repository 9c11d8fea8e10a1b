"""Speed kept across a change: an earlier revision's whole-model benchmark against this tree's.

The tree of ``--base`` (any git revision, e.g. the commit before a redesign) is exported to a
temporary folder with ``git archive`` (the repository, its index and its worktrees are not
touched), and its own ``benchmarks/bench_official.py`` is run in turn with this tree's, each
run a fresh process with the same arguments, ``--rounds`` times; the revision that goes first
alternates from round to round. Each run times ours against the official pattern in one
process (``bench_official``'s table), so its speed-up is a paired figure that a change of load
hits on both sides; this script reports, per revision, the medians over the rounds of our
train step and eval forward (ms) and of the two speed-ups, and their change.

Each revision runs its own benchmark script against its own package, so the base may predate
any API of this tree; only ``bench_official``'s table row is read, which has not changed
format since it was written.

Run: ``python benchmarks/bench_revisions.py --base ff0f5f6 --write`` (about 2 minutes).
"""

from __future__ import annotations

import argparse
import io
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch  # noqa: E402
from _common import device_name, table, write_section  # noqa: E402

#: one row of bench_official's table: threads, preset, batch, then per workload the official
#: pattern's ms, ours and the speed-up (train step, then eval forward)
ROW = re.compile(
    r"^\| (\d+) \| (\w+) \| \d+ "
    r"\| ([\d.]+) \| ([\d.]+) \| [\d.]+x \| ([\d.]+) \| ([\d.]+) \| [\d.]+x \|$",
    re.M,
)
HEADER = [
    "threads",
    "preset",
    "revision",
    "train step, ours (ms)",
    "train step speed-up",
    "eval forward, ours (ms)",
    "eval forward speed-up",
]


def git(*args: str) -> str:
    """The output of ``git ARGS`` in the repository, or one line of error."""
    proc = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        message = (proc.stderr.strip().splitlines() or ["git failed"])[-1]
        raise SystemExit(f"bench_revisions: git {' '.join(args)}: {message}")
    return proc.stdout.strip()


def commit_of(rev: str) -> str:
    """The full hash of the commit ``rev`` names, or one line of error."""
    try:
        return git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except SystemExit:
        raise SystemExit(f"bench_revisions: {rev!r} is not a commit of this repository") from None


def describe(rev: str, commit: str) -> str:
    """``rev`` (the commit ``commit``) as a short hash and its subject's first words, for the
    table's caption."""
    subject = git("log", "-1", "--format=%s", commit)
    name = commit[:7] if commit.startswith(rev) else f"{rev} = {commit[:7]}"
    return f"{name} ({subject[:60]}{'...' if len(subject) > 60 else ''})"


def export(rev: str, dest: Path) -> Path:
    """Write the tree of ``rev`` into ``dest`` (``git archive``) and return ``dest``."""
    proc = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True)
    if proc.returncode != 0:
        raise SystemExit(f"bench_revisions: cannot export {rev!r}: {proc.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def parse_rows(output: str) -> dict[tuple[int, str], tuple[float, float, float, float]]:
    """``(threads, preset) -> (official step, our step, official eval, our eval)`` in ms
    from a run of ``bench_official.py`` (each row is printed twice: as it is measured and in
    the final table; both are the same)."""
    return {
        (int(t), name): (float(a), float(b), float(c), float(d))
        for t, name, a, b, c, d in ROW.findall(output)
    }


def run_official(tree: Path, threads: list[int], presets: list[str], repeat: int) -> str:
    """The output of ``tree``'s own ``benchmarks/bench_official.py``, with ``tree`` first on
    the import path (so it times the package of that tree)."""
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")])
    )
    cmd = [sys.executable, "benchmarks/bench_official.py", "--repeat", str(repeat)]
    cmd += ["--threads", *map(str, threads), "--presets", *presets]
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(f"bench_revisions: bench_official failed in {tree}: {last}")
    return proc.stdout


def summarise(runs: dict[str, list[dict]]) -> list[list[object]]:
    """Table rows: per (threads, preset) and revision, the medians over the rounds of our
    train step and eval forward (ms) and of the two speed-ups against the official pattern
    (each the ratio within one run), then a row of the change (the last revision against the
    first: time as a ratio, the speed-ups as a difference)."""
    rows = []
    keys = sorted({k for parsed in runs.values() for p in parsed for k in p})
    for key in keys:
        medians = []
        for label, parsed in runs.items():
            figures = [p[key] for p in parsed if key in p]
            step = statistics.median(f[1] for f in figures)
            step_x = statistics.median(f[0] / f[1] for f in figures)
            ev = statistics.median(f[3] for f in figures)
            ev_x = statistics.median(f[2] / f[3] for f in figures)
            medians.append((step, step_x, ev, ev_x))
            rows.append([*key, label, step, f"{step_x:.2f}x", ev, f"{ev_x:.2f}x"])
        (s0, x0, e0, y0), (s1, x1, e1, y1) = medians[0], medians[-1]
        rows.append(
            [
                *key,
                "change",
                f"{s1 / s0:.2f}x the time",
                f"{x1 - x0:+.2f}",
                f"{e1 / e0:.2f}x the time",
                f"{y1 - y0:+.2f}",
            ]
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the git revision to compare against")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[2])
    parser.add_argument("--presets", nargs="+", default=["tiny_static"])
    parser.add_argument("--repeat", type=int, default=9, help="bench_official's --repeat")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    commit = commit_of(args.base)
    base = describe(args.base, commit)
    head = git("rev-parse", "--short=7", "HEAD")
    # changes to the code timed (the package and the benchmarks), not to the docs or to the
    # results files a background benchmark appends to
    code = ["dnwgraph", "benchmarks", ":!benchmarks/results"]
    dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", *code))
    here = f"this tree ({head}{', with uncommitted changes' if dirty else ''})"

    if commit[:7] == head:
        raise SystemExit(f"bench_revisions: --base {args.base} is this tree's HEAD ({head})")
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="dnwgraph-base-") as tmp:
        trees = {commit[:7]: export(commit, Path(tmp)), head: ROOT}
        runs: dict[str, list[dict]] = defaultdict(list)
        for r in range(args.rounds):
            order = list(trees) if r % 2 == 0 else list(trees)[::-1]
            for label in order:
                out = run_official(trees[label], args.threads, args.presets, args.repeat)
                parsed = parse_rows(out)
                if not parsed:
                    raise SystemExit(f"bench_revisions: no table row in {label}'s output")
                runs[label].append(parsed)
                print(f"round {r + 1}/{args.rounds} {label}: {parsed}", flush=True)
    load_end = os.getloadavg()[0]
    runs = {label: runs[label] for label in trees}  # base first, then this tree

    cmd = f"python benchmarks/bench_revisions.py --base {args.base} --write"
    for flag, value, default in [
        ("--rounds", args.rounds, 5),
        ("--threads", args.threads, [2]),
        ("--presets", args.presets, ["tiny_static"]),
        ("--repeat", args.repeat, 9),
    ]:
        if value != default:
            cmd += f" {flag} " + (
                " ".join(map(str, value)) if isinstance(value, list) else str(value)
            )
    body = (
        f"Base: {base}. Against it: {here}. {device_name('cpu').split(',')[0]}, torch "
        f"{torch.__version__}; 1-minute load average "
        f"{load_start:.1f} at the start and {load_end:.1f} at the end. Command: `{cmd}`.\n\n"
        f"{args.rounds} rounds; in each, both revisions run their own "
        f"`benchmarks/bench_official.py --repeat {args.repeat}` (ours and the official pattern "
        "in one process, interleaved, medians), one after the other, the first alternating. "
        "Figures: medians over the rounds; a speed-up is the official pattern's time over "
        "ours within one run. The change row: this tree's time as a multiple of the base's, "
        "and the difference of the speed-ups.\n\n"
        f"{table(HEADER, summarise(runs))}\n"
    )
    print(body)
    if args.write:
        write_section("bench_revisions", body)


if __name__ == "__main__":
    main()

"""benchmarks/bench_revisions.py reads bench_official's rows and summarises paired runs."""

from __future__ import annotations

import statistics
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def script(load_script):
    return load_script("bench_revisions")


def test_it_reads_the_rows_bench_official_writes(script, load_script):
    official = load_script("bench_official")
    rows = [
        [2, "tiny_static", 64, 121.5, 60.25, "2.02x", 64.0, 14.5, "4.41x"],
        [1, "mnist1d_static", 128, 22.0, 17.75, "1.24x", 11.5, 6.75, "1.70x"],
    ]
    printed = official.table(official.HEADER, rows)
    # bench_official prints each row as it is measured, then the whole table again
    output = "\n".join(printed.splitlines()[2:]) + "\n\nsome prose\n\n" + printed + "\n"
    assert script.parse_rows(output) == {
        (2, "tiny_static"): (121.5, 60.25, 64.0, 14.5),
        (1, "mnist1d_static"): (22.0, 17.75, 11.5, 6.75),
    }
    assert script.parse_rows("no table here\n") == {}


def test_the_summary_is_the_median_of_paired_ratios(script):
    key = (2, "tiny_static")
    base = [{key: (120.0, 60.0, 60.0, 15.0)}, {key: (130.0, 50.0, 70.0, 14.0)},
            {key: (100.0, 55.0, 66.0, 12.0)}]  # fmt: skip
    head = [{key: (110.0, 55.0, 60.0, 20.0)}, {key: (140.0, 70.0, 80.0, 16.0)},
            {key: (120.0, 50.0, 64.0, 16.0)}]  # fmt: skip
    rows = script.summarise({"base": base, "head": head})
    assert [r[2] for r in rows] == ["base", "head", "change"]
    # medians computed here from the figures, independently of the script's loop
    base_x = statistics.median([2.0, 2.6, 100 / 55])
    head_x = statistics.median([2.0, 2.0, 2.4])
    assert rows[0][3] == 55.0 and rows[0][4] == f"{base_x:.2f}x"
    assert rows[1][3] == 55.0 and rows[1][4] == f"{head_x:.2f}x"
    assert rows[1][5] == 16.0 and rows[1][6] == f"{statistics.median([3.0, 5.0, 4.0]):.2f}x"
    assert rows[2][3] == "1.00x the time"
    assert rows[2][4] == f"{head_x - base_x:+.2f}"
    assert rows[2][5] == f"{16.0 / 14.0:.2f}x the time"


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs the git repository")
def test_a_revision_is_exported_without_touching_the_repository(script, tmp_path):
    before = subprocess.run(["git", "-C", str(ROOT), "worktree", "list"], capture_output=True)
    tree = script.export("HEAD", tmp_path)
    assert (tree / "benchmarks" / "bench_official.py").is_file()
    assert (tree / "dnwgraph" / "__init__.py").is_file()
    after = subprocess.run(["git", "-C", str(ROOT), "worktree", "list"], capture_output=True)
    assert before.stdout == after.stdout
    with pytest.raises(SystemExit, match="is not a commit of this repository"):
        script.commit_of("no-such-revision")

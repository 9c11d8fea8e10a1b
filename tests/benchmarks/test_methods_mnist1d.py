"""benchmarks/methods_mnist1d.py without training: the grid keeps the keys and the order of
the runs already recorded, the table pairs the gap to DNW, the section says how much is done."""

from __future__ import annotations

import argparse

import pytest


@pytest.fixture(scope="module")
def script(load_script):
    return load_script("methods_mnist1d")


def _args(script, cnn=True, **kwargs):
    defaults = dict(presets=list(script.PRESETS), methods=list(script.METHODS), draws=2, seeds=3,
                    epochs=40, cnn=cnn)  # fmt: skip
    return argparse.Namespace(**{**defaults, **kwargs})


def test_the_grid_keeps_the_keys_and_order_of_the_recorded_runs(script):
    record = {"preset": "static", "ratio": 0.02, "method": "dnw", "draw": 0, "seed": 1,
              "epochs": 40, "acc": 94.9, "ms_per_step": 18.22, "time_s": 26.7}  # fmt: skip
    assert script.key(record) == "static/0.02/dnw/0/1/40"
    graph = [script.key(j) for j in script.grid(_args(script, cnn=False))]
    assert len(graph) == 2 * 2 * 9 * 2 * 3 == 216
    assert graph[:4] == [f"static/0.02/dnw/{d}/{s}/40" for d, s in [(0, 0), (0, 1), (0, 2), (1, 0)]]
    assert graph[-1] == "discrete/0.05/complete/1/2/40"
    jobs = list(script.grid(_args(script)))
    assert [script.key(j) for j in jobs[:216]] == graph  # the CNN runs come after
    cnn = jobs[216:]
    assert [j["method"] for j in cnn[::3]] == [
        "dnw", "rigl", "set", "gmp", "snip", "edge_popup", "random", "complete"
    ]  # fmt: skip
    assert script.key(cnn[0]) == "cnn_digits/0.1/dnw/0/0/40"


def test_the_table_pairs_the_gap_and_shows_the_measured_cost(script):
    def rec(method, seed, acc):
        return dict(preset="static", ratio=0.02, method=method, draw=0, seed=seed, epochs=40,
                    acc=acc, ms_per_step=99.0)  # fmt: skip

    records = [rec("dnw", 0, 90.0), rec("dnw", 1, 92.0), rec("rigl", 0, 89.0),
               rec("rigl", 1, 90.0), rec("random", 0, 80.0)]  # fmt: skip
    text = script.summary(records, {"static/0.02/rigl": 12.345})
    rows = [line.split(" | ") for line in text.splitlines()[2:]]
    assert [r[2] for r in rows] == ["dnw", "rigl", "random"]
    assert rows[0][4:7] == ["91.00 ± 1.41", "", "- |"]
    # the paired gaps are -1 and -2: mean -1.5, sd 0.71; the cost is the measured one
    assert rows[1][3:7] == ["2", "89.50 ± 0.71", "-1.50 ± 0.71", "12.3 |"]
    assert rows[2][3:6] == ["1", "80.00 ± 0.00", "-10.00 ± 0.00"]


def test_the_section_says_how_many_runs_are_done(script):
    assert "**3 of 224 runs** of the grid are done" in script.progress(3, 224)
    assert script.progress(224, 224) == "All 224 runs of the grid are done."


def test_the_findings_rank_the_methods_trained_once_and_count_dnw_firsts(script):
    def rec(preset, method, seed, acc):
        return dict(preset=preset, ratio=0.02, method=method, draw=0, seed=seed, epochs=40,
                    acc=acc)  # fmt: skip

    records = [rec("static", "dnw", 0, 90.0), rec("static", "rigl", 0, 91.0),
               rec("static", "rigl", 1, 93.0), rec("static", "lottery", 0, 99.0),
               rec("discrete", "dnw", 0, 95.0), rec("discrete", "random", 0, 94.0),
               rec("discrete", "complete", 0, 97.0)]  # fmt: skip
    text = script.findings(records)
    assert "DNW has the highest mean in 1 of 2 cells" in text
    # rigl's mean is 92: ahead of dnw; lottery trains twice and is not ranked
    assert "* static 2%: rigl 92.00 > dnw 90.00; beside them lottery 99.00" in text
    assert "* discrete 2%: dnw 95.00 > random 94.00; beside them complete 97.00" in text

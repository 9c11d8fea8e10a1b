from __future__ import annotations

import json

import networkx as nx
import pytest
import torch
from _analysis_helpers import shared_fake_run, snapshot
from torch import nn

from dnwgraph import Wiring, WiringConv, random_dag
from dnwgraph.analysis import analyze, load_source
from dnwgraph.cli import main


@pytest.fixture
def fake_run(tmp_path_factory):
    return shared_fake_run(tmp_path_factory)


def test_load_source_kinds(fake_run, tmp_path):
    run, model = fake_run
    loaded = load_source(run)
    assert loaded.training is False
    assert torch.equal(loaded.conv.active_mask(), model.conv.active_mask())
    assert isinstance(load_source(run / "checkpoint.pt"), torch.nn.Module)
    snap = load_source(run / "wiring" / "epoch_0001.pt")
    assert set(snap) == {"executor.conv"}
    path = tmp_path / "w.csv"
    path.write_text("0,1\n1,2\n")
    assert isinstance(load_source(path), Wiring)


def test_load_source_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such run"):
        load_source(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="not a readable torch file"):
        load_source(bad)
    torch.save({"something": torch.ones(1)}, bad)
    with pytest.raises(ValueError, match="is neither a dnwgraph checkpoint.*nor a wiring snapshot"):
        load_source(bad)
    (tmp_path / "x.dat").write_text("hi")
    with pytest.raises(ValueError, match="expected a run folder"):
        load_source(tmp_path / "x.dat")
    (tmp_path / "x.txt").write_text("hi")  # .txt is an edge list now
    with pytest.raises(ValueError, match=r"x\.txt: line 1: unexpected columns"):
        load_source(tmp_path / "x.txt")


def test_analyze_writes_report_and_json(fake_run, tmp_path):
    run, model = fake_run
    table, report = analyze(run, tmp_path / "out", num_random=1, figures=False)
    assert report == tmp_path / "out" / "report.md"
    text = report.read_text()
    assert "| selected edges |" in text and "## Edge churn" in text
    assert "Effective size (selected edges only): params" in text and "macs" in text
    doc = json.loads((tmp_path / "out" / "metrics.json").read_text())
    (m,) = doc["wirings"]
    assert m["module"] == "executor.conv" and m["selected_edges"] == model.conv.k
    assert m["random"]["selected_edges"] == model.conv.k
    assert len(doc["churn"]) == 3
    assert f"| selected edges | {model.conv.k} | {model.conv.k} |" in table


def test_cli_export(fake_run, tmp_path, capsys):
    run, model = fake_run
    for ext in ("gexf", "csv"):  # every format round-trips in test_export.py
        out = tmp_path / f"w.{ext}"
        assert main(["export", str(run), "-o", str(out)]) == 0
        back = Wiring.from_file(out, **({"num_nodes": model.num_nodes} if ext == "csv" else {}))
        assert back.num_edges == model.conv.k
    assert f"{model.conv.k} selected edges" in capsys.readouterr().out
    # a small snapshot file, every candidate
    conv = WiringConv(random_dag("er", 30, seed=0), ratio=0.3)
    torch.save(snapshot(nn.Sequential(conv)), tmp_path / "snap.pt")
    args = ["export", str(tmp_path / "snap.pt"), "-o", str(tmp_path / "all.graphml")]
    assert main([*args, "--all-candidates"]) == 0
    g = nx.read_graphml(tmp_path / "all.graphml")
    assert g.number_of_edges() == conv.num_edges and g.number_of_nodes() == 30
    assert sum(d["selected"] for _, _, d in g.edges(data=True)) == conv.k
    assert nx.is_directed_acyclic_graph(g)


def test_cli_analyze_and_plot(fake_run, tmp_path, capsys):
    run, _ = fake_run
    args = ["analyze", str(run), "-o", str(tmp_path / "a"), "--num-random", "0", "--no-figures"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "| depth (longest input→output path) |" in out and "report:" in out
    assert "## Edge churn" in (tmp_path / "a" / "report.md").read_text()
    # figures are embedded (a wiring file: the run's figures are tested in test_plots.py)
    wiring = tmp_path / "found.graphml"
    assert main(["export", str(run / "wiring" / "epoch_0003.pt"), "-o", str(wiring)]) == 0
    assert main(["analyze", str(wiring)]) == 0
    text = (tmp_path / "found_analysis" / "report.md").read_text()
    assert "![wiring (png)](figures/wiring.png)" in text
    assert (tmp_path / "found_analysis" / "figures" / "degrees.png").stat().st_size > 0
    capsys.readouterr()
    assert main(["plot", str(wiring), "-o", str(tmp_path / "p")]) == 0
    printed = capsys.readouterr().out.split()
    assert sorted(p.rsplit("/", 1)[1] for p in printed) == [
        "adjacency.png",
        "degrees.png",
        "wiring.png",
    ]


def test_cli_errors_are_one_line(tmp_path, capsys):
    # user errors exit with code 2, like every dnwgraph command (docs/guarantees.md)
    assert main(["export", str(tmp_path / "missing"), "-o", str(tmp_path / "w.csv")]) == 2
    assert capsys.readouterr().err.startswith("dnwgraph: error: no such run")
    bad = tmp_path / "bad.graphml"
    bad.write_text("<graphml")
    assert main(["analyze", str(bad)]) == 2
    assert "malformed GraphML" in capsys.readouterr().err
    assert main(["analyze", str(tmp_path), "--input-shape", "a,b"]) == 2
    assert "'--input-shape' must be integers" in capsys.readouterr().err


def test_damaged_or_foreign_torch_files_are_one_line(tmp_path, capsys):
    import random

    bad = tmp_path / "snap.pt"
    bad.write_bytes(b"\x80\x02garbage" * 10)
    assert main(["analyze", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is corrupt or truncated" in err
    torch.save({"w": random.Random(0)}, bad)
    assert main(["export", str(bad), "-o", str(tmp_path / "w.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "safe (weights-only) load refuses" in err
    assert "corrupt or truncated" not in err


def test_help_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys; from dnwgraph.cli import main\n"
        "for c in ('export', 'analyze', 'plot'):\n"
        "    try: main([c, '--help'])\n"
        "    except SystemExit: pass\n"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "RUN_OR_CHECKPOINT" in done.stdout

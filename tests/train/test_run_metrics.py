"""Wiring statistics on hand-built masks, snapshots, metrics.csv, TensorBoard."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from dnwgraph.graph import Wiring
from dnwgraph.nn import WiringConv
from dnwgraph.runs.run import COLUMNS, read_metrics_csv, write_metrics_csv
from dnwgraph.train.metrics import (
    TensorBoardLogger,
    tensorboard_tag,
    wiring_snapshot,
    wiring_stats,
)

# 0, 1 -> 2, 3 -> 4 ; all candidate edges between consecutive layers
EDGES = [(0, 2), (0, 3), (1, 2), (1, 3), (2, 4), (3, 4)]


def _net(active: set[tuple[int, int]], with_wiring: bool) -> nn.Module:
    wiring = Wiring(EDGES, num_nodes=5, input_nodes=[0, 1], output_nodes=[4])
    net = nn.Module()
    net.conv = WiringConv(wiring, ratio=len(active), selection="fixed")
    net.conv.selection.mask.copy_(_mask_in_conv_order(net.conv, active))
    net.conv.selection.frozen.fill_(True)
    if with_wiring:
        net.wiring = wiring
    return net


def _mask_in_conv_order(conv: WiringConv, active: set[tuple[int, int]]) -> torch.Tensor:
    return torch.tensor([(int(s), int(d)) in active for s, d in conv.edge_index.t()])


@pytest.mark.parametrize("with_wiring", [True, False])
def test_stats_count_dead_hidden_nodes_and_swaps(with_wiring: bool) -> None:
    # selected: 0->2, 1->2, 2->4 : node 3 (hidden) has neither input nor output
    net = _net({(0, 2), (1, 2), (2, 4)}, with_wiring)
    stats, masks = wiring_stats(net)
    assert stats == {
        "selected_edges": 3,
        "swapped_in": 0,
        "swapped_out": 0,
        "no_input_nodes": 1,
        "no_output_nodes": 1,
    }
    conv = net.conv
    assert torch.equal(masks["conv"], _mask_in_conv_order(conv, {(0, 2), (1, 2), (2, 4)}))
    # swap 1->2 out, 0->3 and 3->4 in: node 3 now has both, node 2 still has both
    conv.selection.mask.copy_(_mask_in_conv_order(conv, {(0, 2), (0, 3), (2, 4), (3, 4)}))
    stats, _ = wiring_stats(net, masks)
    assert stats == {
        "selected_edges": 4,
        "swapped_in": 2,
        "swapped_out": 1,
        "no_input_nodes": 0,
        "no_output_nodes": 0,
    }


def test_stats_of_a_model_without_wirings_are_zero() -> None:
    stats, masks = wiring_stats(nn.Linear(2, 2))
    assert set(stats.values()) == {0} and masks == {}


def test_snapshot_is_weights_only_loadable(tmp_path: Path) -> None:
    net = _net(set(EDGES), True)
    torch.save(wiring_snapshot(net), tmp_path / "s.pt")
    snap = torch.load(tmp_path / "s.pt", weights_only=True)
    assert set(snap) == {"conv"}
    entry = snap["conv"]
    assert torch.equal(entry["edge_index"], net.conv.edge_index)
    assert torch.equal(entry["edge_weight"], net.conv.edge_weight.detach())
    assert entry["active"].dtype == torch.bool and entry["active"].all()
    assert entry["num_nodes"] == 5


def test_metrics_csv_round_trip(tmp_path: Path) -> None:
    rows = [
        {
            c: (i if c == "epoch" or "edges" in c or "swapped" in c or "nodes" in c else 0.5 * i)
            for c in COLUMNS
        }
        for i in (1, 2)
    ]
    write_metrics_csv(tmp_path / "m.csv", rows)
    assert (tmp_path / "m.csv").read_text().splitlines()[0] == ",".join(COLUMNS)
    assert read_metrics_csv(tmp_path / "m.csv") == rows


def test_tensorboard_logger(tmp_path: Path) -> None:
    TensorBoardLogger(tmp_path / "off", enabled=False).log({})  # disabled: a no-op
    assert not (tmp_path / "off").exists()
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = TensorBoardLogger(tmp_path / "tb", enabled=True)
    row = {c: 1 for c in COLUMNS} | {"epoch": 3, "train_acc": 0.5, "test_acc": 0.25}
    tb.log(row)
    tb.close()
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/acc_percent", "test/loss", "test/acc_percent"} <= tags
    assert {
        "train/lr",
        "train/epoch_time_s",
        "wiring/selected_edges",
        "wiring/no_input_nodes",
    } <= tags
    assert not any(tag.startswith("train/test") for tag in tags)
    (test_acc,) = events.Scalars("test/acc_percent")
    assert (test_acc.step, test_acc.value) == (3, 25.0)


def test_tensorboard_tags_group_test_metrics_under_test() -> None:
    assert tensorboard_tag("test_loss") == "test/loss"
    assert tensorboard_tag("test_acc") == "test/acc_percent"
    assert tensorboard_tag("train_loss") == "train/loss"
    assert tensorboard_tag("no_output_nodes") == "wiring/no_output_nodes"
    assert tensorboard_tag("epoch_time_s") == "train/epoch_time_s"


def test_tensorboard_logger_writes_a_histogram_of_abs_weights_per_wiring_layer(
    tmp_path: Path,
) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model = nn.Sequential(
        WiringConv(Wiring([(0, 1), (1, 2)]), ratio=1),
        WiringConv(Wiring([(0, 1), (0, 2), (1, 2)]), ratio=2),
    )
    with torch.no_grad():
        model[0].edge_weight.copy_(torch.tensor([-0.5, 2.0]))
        model[1].edge_weight.copy_(torch.tensor([1.0, -3.0, 0.25]))
    tb = TensorBoardLogger(tmp_path / "tb", enabled=True)
    row = {c: 1 for c in COLUMNS}
    for epoch in (1, 2):
        tb.log(row | {"epoch": epoch}, model)
    tb.close()
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"histograms": 0})
    events.Reload()
    assert events.Tags()["histograms"] == ["edge_weight_abs/0", "edge_weight_abs/1"]
    first, second = events.Histograms("edge_weight_abs/1")
    assert (first.step, second.step) == (1, 2)
    summary = first.histogram_value  # |w| of the 3 candidate edges, the unselected one too
    assert (summary.num, summary.min, summary.max, summary.sum) == (3, 0.25, 3.0, 4.25)

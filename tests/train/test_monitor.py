import networkx as nx
import pytest
import torch

from dnwgraph import StaticNeuralGraph, Wiring, WiringConv, WiringSpec, block_dag, create_model
from dnwgraph.train.monitor import MONITOR_COLUMNS, WiringMonitor


def _model():
    torch.manual_seed(0)
    wiring = block_dag([4, 8, 8, 4])
    return StaticNeuralGraph(wiring, WiringSpec(20, node_op="conv1d"), num_classes=3)


def _step(model, monitor, step):
    loss = torch.nn.functional.cross_entropy(model(torch.randn(6, 4, 10)), torch.arange(6) % 3)
    model.zero_grad()
    loss.backward()
    return monitor.record(step, loss), loss


def test_record_matches_an_independent_count():
    model = _model()
    monitor = WiringMonitor(model)
    row, loss = _step(model, monitor, 0)
    conv = model.conv
    mask = conv.active_mask()
    g = nx.DiGraph()
    g.add_nodes_from(range(model.num_nodes))
    g.add_edges_from(conv.edge_index[:, mask].t().tolist())
    candidates = nx.DiGraph(conv.edge_index.t().tolist())
    inputs = set(model.input_nodes.tolist())
    outputs = set(model.output_nodes.tolist())
    expected = sum(
        1 for v in candidates if v not in inputs and candidates.in_degree(v) and not g.in_degree(v)
    )
    assert row["nodes_without_input"] == expected
    assert row["output_in_edges"] == sum(g.in_degree(v) for v in outputs)
    assert row["selected_edges"] == 20 and row["swapped_in"] == 0
    assert row["loss"] == pytest.approx(float(loss.detach()))
    w, grad = conv.edge_weight.detach(), conv.edge_weight.grad
    assert row["weight_selected"] == pytest.approx(float(w[mask].abs().mean()))
    assert row["threshold"] == pytest.approx(float(w[mask].abs().min()))
    assert row["grad_selected"] == pytest.approx(float(grad[mask].norm()))
    assert row["grad_unselected"] == pytest.approx(float(grad[~mask].norm()))
    assert row["grad_unselected"] > 0  # straight-through: unused edges get a gradient


def test_input_scale_is_the_spread_seen_by_the_norms():
    model = _model()
    seen = []
    for op in model.executor.node_ops:
        op.norm.register_forward_pre_hook(lambda m, i: seen.append(i[0].detach()))
    monitor = WiringMonitor(model)
    row, _ = _step(model, monitor, 0)
    assert len(seen) == len(model.executor.node_ops) == 3
    # per node and sample: std over the positions; mean over the batch; quantiles over nodes
    spread = torch.cat([x.std(-1).mean(0) for x in seen])
    expected = torch.quantile(spread, torch.tensor([0.1, 0.5, 0.9])).tolist()
    got = [row["input_scale_p10"], row["input_scale_p50"], row["input_scale_p90"]]
    assert got == pytest.approx(expected)


def test_swaps_and_columns():
    model = _model()
    monitor = WiringMonitor(model)
    _step(model, monitor, 0)
    conv = model.conv
    with torch.no_grad():  # swap one unselected edge in
        i = int((~conv.active_mask()).nonzero()[0])
        conv.edge_weight[i] = 100.0
    row, _ = _step(model, monitor, 1)
    assert row["swapped_in"] == 1
    cols = monitor.columns()
    assert list(cols) == list(MONITOR_COLUMNS)
    assert cols["step"] == [0.0, 1.0]


def test_close_removes_the_hooks():
    model = _model()
    monitor = WiringMonitor(model)
    monitor.close()
    row, _ = _step(model, monitor, 0)
    assert row["input_scale_p50"] != row["input_scale_p50"]  # nan: nothing was seen


def test_plain_wiring_conv_has_no_roles():
    conv = WiringConv(Wiring([(0, 1), (1, 2), (0, 2)], num_nodes=3), ratio=2)
    monitor = WiringMonitor(torch.nn.Sequential(conv))
    conv(torch.randn(3, 4)).sum().backward()
    row = monitor.record()
    assert row["output_in_edges"] == 0 and row["nodes_without_input"] in (0, 1)


def test_no_wiring_conv():
    with pytest.raises(ValueError, match="holds no WiringConv"):
        WiringMonitor(torch.nn.Linear(2, 2))


def test_presets_are_monitored():
    monitor = WiringMonitor(create_model("mnist1d_discrete"))
    assert len(monitor.convs) == 1

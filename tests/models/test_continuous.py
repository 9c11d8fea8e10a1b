import sys

import pytest
import torch

from dnwgraph import ContinuousTimeNeuralGraph, WiringSpec, complete

pytest.importorskip("torchdiffeq")


def small_model(**kwargs):
    torch.manual_seed(0)
    wiring = complete(6, self_loops=True, input_nodes=[0, 1], output_nodes=[4, 5])
    return ContinuousTimeNeuralGraph(wiring, WiringSpec(12, node_op="conv1d"), **kwargs)


def test_euler_equals_hand_rolled_integration():
    model = small_model(solver="euler", step_size=0.25)
    x = torch.randn(3, 2, 7)
    z = model.initial_state(x)
    for _ in range(4):  # t = 0, 0.25, 0.5, 0.75 -> 1
        z = z + 0.25 * model.func.step(z)
    expected = model.read(z)
    model.func.nfe = 0
    assert torch.allclose(model(x), expected, atol=1e-5)
    assert model.func.nfe == 4


def test_adjoint_gradients_agree_with_backpropagation():
    x = torch.randn(2, 2, 7)
    grads = []
    for adjoint in (False, True):
        # the adjoint integrates the state backwards: it needs tight tolerances to agree
        model = small_model(solver="dopri5", rtol=1e-5, atol=1e-5, adjoint=adjoint)
        model(x).sum().backward()
        grads.append(model.conv.edge_weight.grad)
        active = model.conv.active_mask()
        assert model.conv.edge_weight.grad[~active].abs().sum() > 0
    assert (grads[0] - grads[1]).norm() < 0.1 * grads[0].norm()
    assert torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0) > 0.99


def test_errors(monkeypatch):
    with pytest.raises(ValueError, match="'solver' must be one of"):
        small_model(solver="leapfrog")
    with pytest.raises(ValueError, match="'rtol' must be a positive number"):
        small_model(rtol=0)
    with pytest.raises(ValueError, match="'step_size' must be a positive number"):
        small_model(step_size=-1.0)
    monkeypatch.setitem(sys.modules, "torchdiffeq", None)
    with pytest.raises(
        ImportError, match=r"install the 'ode' extra: pip install 'dnwgraph\[ode\]'"
    ):
        small_model()


def test_adaptive_solver_runs_and_counts_evaluations():
    model = small_model()  # dopri5, tolerances 1e-3 as in the paper's code
    out = model(torch.randn(2, 2, 7))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    assert model.func.nfe >= 6  # at least one dopri5 step


def test_solvers_match_torchdiffeq():
    """``SOLVERS`` is a documented tuple (no private torchdiffeq import in the package); it
    names exactly the methods the installed torchdiffeq accepts."""
    from dnwgraph.models.continuous import SOLVERS

    odeint = pytest.importorskip("torchdiffeq._impl.odeint")
    assert sorted(SOLVERS) == sorted(odeint.SOLVERS)

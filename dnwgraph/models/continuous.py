r"""The continuous-time neural graph: :math:`dZ/dt = F(Z)` integrated with torchdiffeq."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from dnwgraph.errors import DNWGraphError
from dnwgraph.models._graph import NeuralGraphClassifier
from dnwgraph.models.discrete import GraphStep, check_readout
from dnwgraph.nn.spec import WiringSpec, check_spec

#: The ``method`` names ``torchdiffeq.odeint`` accepts (torchdiffeq 0.2.x, as its README lists
#: them); a test checks this tuple against the installed torchdiffeq.
SOLVERS: tuple[str, ...] = (
    "dopri8",
    "dopri5",
    "bosh3",
    "fehlberg2",
    "adaptive_heun",
    "euler",
    "midpoint",
    "heun2",
    "heun3",
    "rk4",
    "explicit_adams",
    "implicit_adams",
    "fixed_adams",
    "scipy_solver",
)


def _torchdiffeq() -> Any:
    try:
        import torchdiffeq
    except ImportError as err:  # pragma: no cover - the extra is installed in CI
        raise ImportError(
            "ContinuousTimeNeuralGraph needs torchdiffeq, which is not installed; install the "
            "'ode' extra: pip install 'dnwgraph[ode]'"
        ) from err
    return torchdiffeq


class ODEFunc(nn.Module):
    r"""The vector field :math:`F(t, Z) = \mathrm{norm}(A_{\mathcal{A}}\, g(Z))` of
    :class:`ContinuousTimeNeuralGraph`, counting its evaluations in ``nfe``.

    Args:
        step (GraphStep): the node update.
    """

    def __init__(self, step: GraphStep) -> None:
        super().__init__()
        self.step = step
        self.nfe = 0

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        self.nfe += 1
        return self.step(z)


class ContinuousTimeNeuralGraph(NeuralGraphClassifier):
    r"""A continuous-time neural graph from *Discovering Neural Wirings* (Wortsman, Farhadi &
    Rastegari, NeurIPS 2019, https://arxiv.org/abs/1906.00586), section 2.3.

    The node states follow the ODE

    .. math::
        Z(0) = [v \in \text{inputs}]\,\mathrm{stem}(x)_v, \qquad
        \frac{dZ}{dt} = \mathrm{norm}\big(A_{\mathcal{A}} \cdot
        \mathrm{conv}(\sigma(Z(t)))\big), \quad t \in [0, t_1]

    (:math:`\sigma` the node activation, GELU by default), integrated with
    ``torchdiffeq.odeint`` (or ``odeint_adjoint``); the output nodes of
    :math:`Z(t_1)` are pooled and classified.  The selection is chosen once per forward pass and
    shared by every function evaluation.  Needs the ``ode`` extra (torchdiffeq).

    Args:
        wiring (Wiring): candidate wiring (cycles and self loops allowed).
        spec (WiringSpec): the learned wiring's parameters: edge budget ``ratio`` (``int``:
            edges kept; ``float`` in (0, 1]: fraction of the candidates kept), selection and
            its options, backend, initialisation, and the node op before the aggregation
            (see :class:`~dnwgraph.models.discrete.GraphStep`).
        stem (nn.Module, optional): ``[B, *]`` → ``[B, n_in, *S]``; ``None``: identity.
        norm (str, optional): norm after the aggregation. (default: ``"instance"``)
        solver (str, optional): a torchdiffeq method (``"dopri5"``, ``"euler"``, ``"rk4"``, ...).
            (default: ``"dopri5"``)
        rtol (float, optional): relative tolerance. (default: ``1e-3``, as in the paper's code)
        atol (float, optional): absolute tolerance. (default: ``1e-3``)
        step_size (float, optional): step of fixed-grid solvers. (default: ``None``)
        adjoint (bool, optional): backpropagate with the adjoint method (memory :math:`O(1)` in
            the number of steps). (default: ``False``)
        t1 (float, optional): end time. (default: ``1.0``)
        num_classes (int, optional): outputs of the head. (default: ``10``)
        readout (str, optional): ``"max"``, ``"centre"`` or ``"mean"``; ``"mean"`` is refused
            with ``norm="instance"`` (the mean of an instance-normalised map is its shift,
            whatever the input). (default: ``"max"``)
        input_shape (sequence of int, optional): per-sample input shape to check.

    Shapes:
        - **input:** :math:`[B, *]`
        - **output:** :math:`[B, \text{num\_classes}]`

    Raises:
        ImportError: torchdiffeq is missing (names the ``ode`` extra).
        ValueError: an unknown solver, non-positive tolerances, step size or ``t1``, any error
            of :class:`~dnwgraph.models.discrete.GraphStep`, or (in forward) an input of the
            wrong shape.

    Examples:
        >>> from dnwgraph import WiringSpec, complete
        >>> wiring = complete(6, input_nodes=[0, 1], output_nodes=[4, 5])
        >>> spec = WiringSpec(10, node_op="conv1d")
        >>> model = ContinuousTimeNeuralGraph(wiring, spec, solver="rk4", step_size=0.25)
        >>> model(torch.randn(2, 2, 7)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        wiring: Any,
        spec: WiringSpec,
        *,
        stem: nn.Module | None = None,
        norm: str = "instance",
        solver: str = "dopri5",
        rtol: float = 1e-3,
        atol: float = 1e-3,
        step_size: float | None = None,
        adjoint: bool = False,
        t1: float = 1.0,
        num_classes: int = 10,
        readout: str = "max",
        input_shape: Sequence[int] | None = None,
    ) -> None:
        _torchdiffeq()
        if solver not in SOLVERS:
            raise DNWGraphError(f"'solver' must be one of {list(SOLVERS)} (got {solver!r})")
        for name, value in (("rtol", rtol), ("atol", atol), ("t1", t1)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise DNWGraphError(f"'{name}' must be a positive number (got {value!r})")
        if step_size is not None and (not isinstance(step_size, (int, float)) or step_size <= 0):
            raise DNWGraphError(
                f"'step_size' must be a positive number or None (got {step_size!r})"
            )
        check_readout(readout, norm)
        super().__init__(
            wiring, stem=stem, num_classes=num_classes, readout=readout, input_shape=input_shape
        )
        self.solver, self.rtol, self.atol = solver, float(rtol), float(atol)
        self.step_size, self.adjoint, self.t1 = step_size, bool(adjoint), float(t1)
        self.spec = check_spec(spec)
        self.func = ODEFunc(GraphStep(wiring, self.spec, norm=norm))

    @property
    def conv(self) -> nn.Module:
        """The learned wiring (a :class:`~dnwgraph.WiringConv`)."""
        return self.func.step.conv

    def integrate(self, z0: Tensor) -> Tensor:
        """:math:`Z(t_1)` from :math:`Z(0)` ``[N, B, *S]``."""
        tde = _torchdiffeq()
        t = torch.tensor([0.0, self.t1], dtype=z0.dtype, device=z0.device)
        kwargs: dict[str, Any] = dict(rtol=self.rtol, atol=self.atol, method=self.solver)
        if self.step_size is not None:
            kwargs["options"] = {"step_size": self.step_size}
        if self.adjoint:
            params = tuple(p for p in self.func.parameters() if p.requires_grad)
            return tde.odeint_adjoint(self.func, z0, t, adjoint_params=params, **kwargs)[-1]
        return tde.odeint(self.func, z0, t, **kwargs)[-1]

    def forward(self, x: Tensor) -> Tensor:
        return self.read(self.integrate(self.initial_state(x)))

r"""Node operations :math:`Z_v = f_{\theta_v}(I_v)`, computed for a whole set of nodes at once.

Every node of a neural graph owns its parameters :math:`\theta_v`; the nodes of one level (or
all nodes of a recurrent graph) are evaluated together as **one** grouped operation:

* spatial nodes (a channel each, features ``[n, B, L]`` or ``[n, B, H, W]``):
  normalization (instance / batch / none) → activation → single-channel convolution
  (kernel 3), order configurable; the convolution of :math:`n` nodes is one
  ``Conv{1,2}d(n, n, k, groups=n)`` (:class:`ChannelNodeOp`, registered as ``"conv1d"`` and
  ``"conv2d"``);
* vector nodes (a neuron each, features ``[n, B]``): :math:`Z_v = \sigma(I_v + b_v)`
  (:class:`NeuronNodeOp`, ``"neuron"``).

Features are node-first (as :class:`~dnwgraph.WiringConv` takes them): ``[n, B, *S]``.  Every
parameter and buffer of a node op has the nodes as its leading dimension, so a node op over a
subset of nodes (:meth:`NodeOp.select`) or over nodes of several ops (:func:`concat_node_ops`)
is built by indexing.

A node whose input is identically zero gets :math:`\beta_v` out of an affine ``instance`` norm,
so after the activation :math:`\sigma` and the bias-free convolution it outputs
:math:`\mathrm{conv}(\sigma(\beta_v))`: zero at the start (:math:`\beta_v = 0`,
:math:`\sigma(0) = 0`).  With ``"relu"`` it then stays zero, since :math:`\sigma'(0) = 0`: no
gradient reaches its norm, its convolution or the candidate edges into it.  The default
``"gelu"`` has :math:`\sigma'(0) = 1/2`, so the straight-through gradient still reaches those
candidates and the node can be rewired (``docs/stability.md``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from dnwgraph._tracing import static_shape
from dnwgraph.errors import DNWGraphError
from dnwgraph.nn.kernels import apply_node_first
from dnwgraph.registry import Registry

#: Node ops by name: ``(class, bound constructor keywords)``.
NODE_OPS: Registry[tuple[type[NodeOp], dict[str, Any]]] = Registry("node op")

#: Activations by name (used by every node op): module classes built without arguments.
ACTIVATIONS: Registry[Callable[[], nn.Module]] = Registry("activation")
ACTIVATIONS.register("relu", nn.ReLU)
ACTIVATIONS.register("gelu", nn.GELU)
ACTIVATIONS.register("tanh", nn.Tanh)
ACTIVATIONS.register("sigmoid", nn.Sigmoid)
ACTIVATIONS.register("identity", nn.Identity)
NORMS: tuple[str, ...] = ("instance", "batch", "none")
#: Default :math:`\epsilon` of the node norms (:class:`ChannelNodeOp`).
NORM_EPS: float = 0.1
STEPS: tuple[str, ...] = ("norm", "act", "conv")


def register_node_op(name: str, **defaults: Any) -> Callable[[type[NodeOp]], type[NodeOp]]:
    """Class decorator registering a :class:`NodeOp` subclass under ``name``.

    Args:
        name (str): registry name.
        **defaults: constructor keywords bound for this name (e.g. ``dim=2``).

    Raises:
        ValueError: if ``name`` is already registered.
    """

    def wrap(cls: type[NodeOp]) -> type[NodeOp]:
        NODE_OPS.register(name, (cls, dict(defaults)))
        return cls

    return wrap


def list_node_ops() -> list[str]:
    """Names of the registered node operations.

    Examples:
        >>> list_node_ops()
        ['conv1d', 'conv2d', 'neuron']
    """
    return NODE_OPS.list()


def node_op_options(name: str) -> list[str] | None:
    """The options a user may give node op ``name`` (its constructor's keywords, less those
    its registration binds); ``None`` where it takes any keyword.

    Examples:
        >>> node_op_options("neuron")
        ['activation', 'bias']
    """
    cls, bound = NODE_OPS.get(name)
    params = list(inspect.signature(cls.__init__).parameters.values())[2:]  # self, num_nodes
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return sorted(p.name for p in params if p.kind in named and p.name not in bound)


def create_node_op(name: str, num_nodes: int, **options: Any) -> NodeOp:
    """Build the node operation registered as ``name`` over ``num_nodes`` nodes.

    Args:
        name (str): one of :func:`list_node_ops`.
        num_nodes (int): number of nodes :math:`n` the op computes at once.
        **options: constructor options of the op (``norm``, ``order``, ``activation``, ...).

    Raises:
        ValueError: for an unknown name (the message lists the valid ones) or bad options.

    Examples:
        >>> op = create_node_op("conv2d", 3, norm="batch")
        >>> op(torch.randn(3, 2, 4, 4)).shape
        torch.Size([3, 2, 4, 4])
    """
    cls, defaults = NODE_OPS.get(name)
    return cls(num_nodes, **{**defaults, **options})


def _check_num_nodes(num_nodes: Any) -> int:
    if isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or num_nodes < 1:
        raise DNWGraphError(f"'num_nodes' must be a positive int (got {num_nodes!r})")
    return num_nodes


def _activation(name: str) -> nn.Module:
    return ACTIVATIONS.create(name)


class NodeOp(nn.Module):
    r"""Base class: :math:`Z_v = f_{\theta_v}(I_v)` for :math:`n` nodes at once.

    Subclasses store their constructor keywords in ``self.config`` and give every parameter and
    buffer the nodes as leading dimension (scalars such as BatchNorm's step counter excepted),
    which makes :meth:`select` and :func:`concat_node_ops` generic.

    Shapes:
        - **input:** node inputs :math:`[n, B, *]`
        - **output:** node outputs :math:`[n, B, *]`
    """

    num_nodes: int
    config: dict[str, Any]

    def select(self, index: Tensor | Sequence[int]) -> NodeOp:
        """A new op of the same kind over the nodes ``index`` (parameters copied).

        Examples:
            >>> op = create_node_op("neuron", 4)
            >>> op.select([3, 1]).num_nodes
            2
        """
        return concat_node_ops([(self, torch.as_tensor(index, dtype=torch.long))])

    def extra_repr(self) -> str:
        return f"num_nodes={self.num_nodes}"


def concat_node_ops(parts: Sequence[tuple[NodeOp, Tensor]]) -> NodeOp:
    """One node op over the nodes ``index`` of each ``(op, index)`` part, concatenated in order.

    All ops must be of the same class and configuration, each with the modules and settings
    its configuration builds (a swapped activation cannot be copied by its tensors); the new
    op has the device and floating dtype of the first.  Used to regroup nodes into new levels
    (:func:`regroup_node_ops`).

    Args:
        parts: ``(op, index)`` pairs; ``index`` is a LongTensor of local node ids of ``op``.

    Raises:
        ValueError: no parts, no nodes, ops of different kinds or configurations, or an op
            changed after it was built.

    Examples:
        >>> a, b = create_node_op("neuron", 2), create_node_op("neuron", 3)
        >>> concat_node_ops([(a, torch.tensor([1])), (b, torch.tensor([0, 2]))]).num_nodes
        3
    """
    if not parts:
        raise DNWGraphError("'parts' must hold at least one (op, index) pair")
    first = parts[0][0]
    for op, _ in parts:
        if type(op) is not type(first) or op.config != first.config:
            raise DNWGraphError(
                f"cannot concatenate node ops of different kinds "
                f"({type(first).__name__}{first.config} vs {type(op).__name__}{op.config})"
            )
    changed = next(
        (op for op in {id(op): op for op, _ in parts}.values() if not _as_built(op)), None
    )
    if changed is not None:
        raise DNWGraphError(
            "cannot concatenate a node op whose modules or settings were changed after it was "
            f"built (expected what its config {changed.config} builds, got {changed!r})"
        )
    indices = [torch.as_tensor(i, dtype=torch.long).view(-1).cpu() for _, i in parts]
    total = sum(int(i.numel()) for i in indices)
    with torch.random.fork_rng(devices=[]):  # its initial values are overwritten: no draws
        new = type(first)(_check_num_nodes(total), **first.config)
    states = [op.state_dict() for op, _ in parts]
    merged = {}
    for key, value in states[0].items():
        if value.dim() >= 1 and value.size(0) == first.num_nodes:
            rows = [
                s[key].index_select(0, i.to(s[key].device))
                for s, i in zip(states, indices, strict=True)
            ]
            merged[key] = torch.cat(rows)
        else:
            merged[key] = value.clone()
    new.load_state_dict(merged)
    floats = [v for v in states[0].values() if v.is_floating_point()]
    return new.to(device=floats[0].device, dtype=floats[0].dtype) if floats else new


def stacked_rows(groups: Sequence[Tensor], size: int) -> Tensor:
    """Every node's row in the node ops of ``groups`` concatenated in order, ``-1`` for a
    node of none (``size`` nodes, ``LongTensor [size]`` on the CPU).

    Examples:
        >>> stacked_rows([torch.tensor([3, 0]), torch.tensor([1])], 5).tolist()
        [1, 2, -1, 0, -1]
    """
    nodes = torch.cat([torch.as_tensor(g, dtype=torch.long).view(-1).cpu() for g in groups])
    row = torch.full((size,), -1, dtype=torch.long)
    row[nodes] = torch.arange(nodes.numel())
    return row


def _as_built(op: NodeOp) -> bool:
    """Whether ``op``'s modules and their settings are those its configuration builds (its
    ``repr`` names every module and setting): a new op from the configuration is then the
    same op once the tensors are copied."""
    with torch.random.fork_rng(devices=[]):
        template = type(op)(op.num_nodes, **op.config)
    return repr(template) == repr(op)


def regroup_node_ops(
    ops: Sequence[NodeOp], groups: Sequence[Tensor], new_groups: Sequence[Tensor]
) -> list[NodeOp]:
    """The node ops of the same nodes grouped anew: node ``new_groups[j][r]`` is row ``r`` of
    the ``j``-th new op, with the parameters (copied) it has in ``ops[i]``, the op of the
    group ``groups[i]`` that holds it.

    Used to run the levels of another wiring over the same nodes (the selected edges' levels
    in :class:`~dnwgraph.nn.LevelExecutor`; a subgraph's in
    :meth:`~dnwgraph.StaticNeuralGraph.subgraph`).  The ops of one kind and configuration
    are concatenated once and each new op gathers its rows from them, so a new group may
    not mix kinds.

    Args:
        ops: one node op per group, ``ops[i].num_nodes == len(groups[i])``.
        groups: the node ids of every op (LongTensors, disjoint).
        new_groups: node ids (non-empty), each in one of ``groups``.

    Raises:
        ValueError: an empty new group, one holding a node of no group, or one mixing ops of
            different kinds or configurations.

    Examples:
        >>> a, b = create_node_op("neuron", 2), create_node_op("neuron", 1)
        >>> with torch.no_grad():
        ...     _ = a.bias.copy_(torch.tensor([1.0, 2.0])), b.bias.fill_(3.0)
        >>> new = regroup_node_ops([a, b], [torch.tensor([0, 4]), torch.tensor([2])],
        ...                        [torch.tensor([4, 2]), torch.tensor([0])])
        >>> [op.bias.tolist() for op in new]
        [[2.0, 3.0], [1.0]]
    """
    new_groups = [torch.as_tensor(g, dtype=torch.long).view(-1).cpu() for g in new_groups]
    groups = [torch.as_tensor(g, dtype=torch.long).view(-1).cpu() for g in groups]
    for j, g in enumerate(new_groups):
        if g.numel() == 0:
            raise DNWGraphError(f"'new_groups[{j}]' must hold at least one node (got none)")
    kinds: dict[str, list[int]] = {}  # the ops of each kind and configuration
    for i, op in enumerate(ops):
        kinds.setdefault(f"{type(op).__qualname__}{sorted(op.config.items())}", []).append(i)
    size = 1 + max(int(g.max()) for g in [*groups, *new_groups] if g.numel())
    kind_of = torch.full((size,), -1, dtype=torch.long)
    row = torch.full((size,), -1, dtype=torch.long)  # node -> row among its kind's ops
    stacked = []
    for k, members in enumerate(kinds.values()):
        mine = stacked_rows([groups[i] for i in members], size)
        inside = mine >= 0
        kind_of[inside], row[inside] = k, mine[inside]
        stacked.append(concat_node_ops([(ops[i], torch.arange(ops[i].num_nodes)) for i in members]))
    out = []
    for j, g in enumerate(new_groups):
        k = kind_of[g].unique()
        if bool((k < 0).any()):
            missing = g[kind_of[g] < 0][:5].tolist()
            raise DNWGraphError(
                f"'new_groups[{j}]' must hold nodes of 'groups' only (got nodes {missing})"
            )
        if k.numel() > 1:
            a, b = (stacked[int(i)] for i in k[:2])
            raise DNWGraphError(
                f"'new_groups[{j}]' mixes node ops of different kinds ({type(a).__name__}"
                f"{a.config} vs {type(b).__name__}{b.config}); one op runs one kind"
            )
        out.append(stacked[int(k)].select(row[g]))
    return out


@register_node_op("conv1d", dim=1)
@register_node_op("conv2d", dim=2)
class ChannelNodeOp(NodeOp):
    r"""Per-channel node operation of the DNW tiny classifiers, for all nodes of a level at once.

    With the default order, for every node :math:`v` and sample :math:`b`:

    .. math::
        Z_v = \mathrm{conv}_{\theta_v}\big(\sigma(\mathrm{norm}_v(I_v))\big)

    where :math:`\mathrm{norm}_v` is InstanceNorm (per node and sample over the spatial
    dimensions, affine), BatchNorm (per node over batch and space) or nothing, :math:`\sigma` an
    activation and :math:`\mathrm{conv}_{\theta_v}` a single-channel ``k``-wide convolution
    without bias (zero padding, same size).  The :math:`n` convolutions are one grouped
    convolution ``Conv{dim}d(n, n, k, groups=n)``.

    Args:
        num_nodes (int): :math:`n`.
        dim (int, optional): spatial dimensions, 1 or 2. (default: ``2``)
        norm (str, optional): ``"instance"``, ``"batch"`` or ``"none"``. (default:
            ``"instance"``)
        order (sequence of str, optional): the steps in order, each of ``"norm"``, ``"act"``,
            ``"conv"`` at most once; a step left out is not built. (default:
            ``("norm", "act", "conv")``)
        activation (str, optional): one of :data:`ACTIVATIONS`. (default: ``"gelu"``)
        kernel_size (int, optional): odd convolution width. (default: ``3``)
        affine (bool, optional): learned scale and shift of the norm. (default: ``True``)
        eps (float, optional): the :math:`\epsilon` of the norm,
            :math:`\hat{x} = (x - \mu) / \sqrt{\sigma^2 + \epsilon}`.  It bounds how much
            the norm amplifies the gradient of a node whose input is weak, by
            :math:`1/\sqrt{\epsilon}`; see :data:`NORM_EPS`. (default: :data:`NORM_EPS`)

    Shapes:
        - **input:** :math:`[n, B, L]` (``dim=1``) or :math:`[n, B, H, W]` (``dim=2``)
        - **output:** same as the input

    Raises:
        ValueError: on a bad ``dim``, ``norm``, ``order``, ``activation`` or ``kernel_size``,
            or an input of the wrong shape.

    Examples:
        >>> op = ChannelNodeOp(4, dim=2)
        >>> op(torch.randn(4, 2, 8, 8)).shape
        torch.Size([4, 2, 8, 8])
    """

    def __init__(
        self,
        num_nodes: int,
        *,
        dim: int = 2,
        norm: str = "instance",
        order: Sequence[str] = STEPS,
        activation: str = "gelu",
        kernel_size: int = 3,
        affine: bool = True,
        eps: float = NORM_EPS,
    ) -> None:
        super().__init__()
        n = self.num_nodes = _check_num_nodes(num_nodes)
        if dim not in (1, 2):
            raise DNWGraphError(f"'dim' must be 1 or 2 (got {dim!r})")
        if norm not in NORMS:
            raise DNWGraphError(f"'norm' must be one of {list(NORMS)} (got {norm!r})")
        order = tuple(order)
        if any(s not in STEPS for s in order) or len(set(order)) != len(order):
            raise DNWGraphError(
                f"'order' must list distinct steps from {list(STEPS)} (got {list(order)!r})"
            )
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1:
            raise DNWGraphError(f"'kernel_size' must be a positive int (got {kernel_size!r})")
        if kernel_size % 2 == 0:
            raise DNWGraphError(f"'kernel_size' must be odd to keep the size (got {kernel_size})")
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
            raise DNWGraphError(f"'eps' must be a positive number (got {eps!r})")
        self.dim = dim
        self.order = order
        self.config = dict(
            dim=dim,
            norm=norm,
            order=order,
            activation=activation,
            kernel_size=kernel_size,
            affine=affine,
            eps=float(eps),
        )
        steps: dict[str, nn.Module] = {}
        if "norm" in order and norm != "none":
            cls: type[nn.Module]
            if norm == "instance":
                cls = nn.InstanceNorm1d if dim == 1 else nn.InstanceNorm2d
            else:
                cls = nn.BatchNorm1d if dim == 1 else nn.BatchNorm2d
            steps["norm"] = cls(n, affine=affine, eps=float(eps))
        if "act" in order:
            steps["act"] = _activation(activation)
        if "conv" in order:
            conv_cls = nn.Conv1d if dim == 1 else nn.Conv2d
            steps["conv"] = conv_cls(
                n, n, kernel_size, padding=kernel_size // 2, groups=n, bias=False
            )
        self.norm = steps.get("norm")
        self.act = steps.get("act")
        self.conv = steps.get("conv")
        self._steps = [s for s in order if s in steps]

    def forward(self, x: Tensor) -> Tensor:
        shape = static_shape(x)  # a check, not recorded by a trace
        if len(shape) != self.dim + 2 or shape[0] != self.num_nodes:
            layout = "[n, B, L]" if self.dim == 1 else "[n, B, H, W]"
            raise DNWGraphError(
                f"'x' must have shape {layout} with n={self.num_nodes} (got {tuple(x.shape)})"
            )
        out = x  # the modules see the nodes as channels, through views (no transposes)
        for step in self._steps:
            module = getattr(self, step)
            out = module(out) if step == "act" else apply_node_first(module, out)
        return out

    def extra_repr(self) -> str:
        return f"num_nodes={self.num_nodes}, order={self._steps}"


@register_node_op("neuron")
class NeuronNodeOp(NodeOp):
    r"""Per-neuron operation for vector nodes: :math:`Z_v = \sigma(I_v + b_v)`.

    Args:
        num_nodes (int): :math:`n`.
        activation (str, optional): one of :data:`ACTIVATIONS`. (default: ``"relu"``)
        bias (bool, optional): learn :math:`b_v` (initialised to 0). (default: ``True``)

    Shapes:
        - **input:** :math:`[n, B, *]`
        - **output:** same as the input

    Raises:
        ValueError: on an unknown activation or an input with the wrong number of rows.

    Examples:
        >>> op = NeuronNodeOp(3)
        >>> op(torch.tensor([[-1.0], [0.5], [2.0]])).view(-1).tolist()
        [0.0, 0.5, 2.0]
    """

    def __init__(self, num_nodes: int, *, activation: str = "relu", bias: bool = True) -> None:
        super().__init__()
        n = self.num_nodes = _check_num_nodes(num_nodes)
        self.config = dict(activation=activation, bias=bias)
        self.act = _activation(activation)
        self.bias = nn.Parameter(torch.zeros(n)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() < 1 or x.size(0) != self.num_nodes:
            raise DNWGraphError(
                f"'x' must have {self.num_nodes} rows, one per node (got {tuple(x.shape)})"
            )
        if self.bias is not None:
            x = x + self.bias.view(-1, *([1] * (x.dim() - 1)))
        return self.act(x)

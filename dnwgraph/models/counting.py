r"""Parameter and multiply-accumulate (MAC) counts, the way the DNW paper reports them.

Convention (paper, section 4 and its tiny-classifier tables): a learned wiring costs its
**selected** edges only, one parameter each and, per sample, one MAC per edge and per element of
the node's feature map (:math:`k \cdot \prod S` for :math:`k` selected edges and features of
spatial size :math:`S`); unselected candidates cost nothing.  Every other module counts its
parameters, and its MACs per sample:

* ``Conv{1,2,3}d``: :math:`\text{out elements} \times (C_{in}/\text{groups}) \times
  \prod \text{kernel}`, plus one per output element for the bias;
* ``ConvTranspose{1,2,3}d``: :math:`\text{in elements} \times (C_{out}/\text{groups}) \times
  \prod \text{kernel}` (each input value is multiplied by each of its weights and scattered),
  plus one per output element for the bias;
* ``Linear``: :math:`\text{out elements} \times \text{in features}`, plus the bias;
* BatchNorm / InstanceNorm / LayerNorm / GroupNorm: one per element when affine (the scale and
  shift fold into one multiply-add; the normalisation itself is not counted);
* anything else (activations, pooling, identity): no MACs.

MACs are counted with forward hooks during one forward pass, so repeated use (the ``T`` steps
of a discrete-time graph, the function evaluations of an ODE solver, the levels of a static
graph) is counted as executed.  Other areas register counts for their own modules with
:func:`register_counter`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from dnwgraph.errors import DNWGraphError, DNWGraphTypeError
from dnwgraph.nn.node_ops import NeuronNodeOp
from dnwgraph.nn.wiring_conv import WiringConv
from dnwgraph.registry import Registry


class Counter:
    """How to count one module type: override :meth:`params` and/or :meth:`macs`.

    A module with a registered counter is counted as a whole: its children are not visited.
    """

    def params(self, module: nn.Module) -> int:
        """Parameters of ``module`` (default: every parameter, recursively)."""
        return sum(p.numel() for p in module.parameters())

    def macs(
        self, module: nn.Module, inputs: tuple[Any, ...], kwargs: dict[str, Any], output: Any
    ) -> int:
        """MACs of one call ``output = module(*inputs, **kwargs)`` for the whole batch
        (default: 0)."""
        return 0


#: Counters by the module class they count (the most specific registered class wins).
COUNTERS: Registry[Counter] = Registry("counter")


@runtime_checkable
class CountingParametrization(Protocol):
    """A parametrization (``torch.nn.utils.parametrize``) that says how the layer it
    parametrizes is counted, e.g. :class:`~dnwgraph.models.sparsify.MaskedWeight`: only the kept
    weights.  A layer is counted by its parametrization first, then by its class."""

    @property
    def counter(self) -> Counter: ...


def register_counter(module_type: type[nn.Module]) -> Callable[[type[Counter]], type[Counter]]:
    """Class decorator registering a :class:`Counter` for ``module_type`` and its subclasses
    (the most specific registered type wins).

    Raises:
        TypeError: ``module_type`` is not an ``nn.Module`` subclass.

    Examples:
        >>> class Scale(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.s = nn.Parameter(torch.ones(3))
        ...     def forward(self, x):
        ...         return x * self.s
        >>> @register_counter(Scale)
        ... class _ScaleCounter(Counter):
        ...     def macs(self, module, inputs, kwargs, output):
        ...         return output.numel()
        >>> count_macs(Scale(), (2, 3))
        3
    """
    if not (isinstance(module_type, type) and issubclass(module_type, nn.Module)):
        raise DNWGraphTypeError(
            f"'module_type' must be an nn.Module subclass (got {module_type!r})"
        )

    def wrap(cls: type[Counter]) -> type[Counter]:
        COUNTERS.register(module_type, cls(), replace=True)
        return cls

    return wrap


def _counter(module: nn.Module) -> Counter | None:
    parametrizations = getattr(module, "parametrizations", None)
    if isinstance(parametrizations, nn.ModuleDict):
        for plist in parametrizations.values():
            for p in plist:
                if isinstance(p, CountingParametrization):
                    return p.counter
    for cls in type(module).__mro__:
        if (counter := COUNTERS.find(cls)) is not None:
            return counter
    return None


def _counted_modules(model: nn.Module) -> list[tuple[nn.Module, Counter | None]]:
    """Modules with a counter (their subtree skipped), and every other module for its own
    (non-recursive) parameters."""
    out: list[tuple[nn.Module, Counter | None]] = []

    def visit(m: nn.Module) -> None:
        c = _counter(m)
        out.append((m, c))
        if c is None:
            for child in m.children():
                visit(child)

    visit(model)
    return out


def count_params(model: nn.Module) -> int:
    """Parameters of ``model``, counting only the selected edges of every learned wiring.

    Args:
        model (nn.Module): any module.

    Returns:
        int: the count (see the module docstring for the convention).

    Examples:
        >>> from dnwgraph import Wiring
        >>> count_params(WiringConv(Wiring([(0, 2), (1, 2), (2, 3)]), ratio=2))
        2
    """
    total = 0
    for module, counter in _counted_modules(model):
        if counter is None:
            total += sum(p.numel() for p in module.parameters(recurse=False))
        else:
            total += counter.params(module)
    return total


@torch.no_grad()
def count_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates per sample of one forward pass of ``model`` (in eval mode).

    Args:
        model (nn.Module): any module taking one tensor.
        input_shape (sequence of int): the input shape **with** the batch dimension, e.g.
            ``(1, 3, 32, 32)``; the result is divided by the batch size.

    Returns:
        int: MACs per sample (rounded down).

    Raises:
        ValueError: an empty or non-positive ``input_shape``.

    Examples:
        >>> count_macs(nn.Linear(4, 3), (2, 4))
        15
    """
    shape = tuple(int(s) for s in input_shape)
    if not shape or min(shape) < 1:
        raise DNWGraphError(f"'input_shape' must be positive sizes with the batch (got {shape!r})")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen).to(device=device, dtype=dtype)
    total = [0]
    handles = []
    for module, c in _counted_modules(model):
        if c is None:
            continue

        def hook(m: nn.Module, inputs: Any, kwargs: Any, output: Any, c: Counter = c) -> None:
            total[0] += int(c.macs(m, inputs, kwargs, output))

        handles.append(module.register_forward_hook(hook, with_kwargs=True))
    was_training = model.training
    model.eval()
    try:
        model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return total[0] // shape[0]


# ---------------------------------------------------------------------- built-in counters
@register_counter(WiringConv)
class WiringConvCounter(Counter):
    """Selected edges; per call, selected edges leaving the group times the features per sample
    (the input is node-first ``[n, B, *S]``; vector features ``[n, B]`` count one each)."""

    def params(self, module: Any) -> int:
        return int(module.k)

    def macs(
        self, module: Any, inputs: tuple[Any, ...], kwargs: dict[str, Any], output: Any
    ) -> int:
        x: Tensor = inputs[0]
        # group and the rows are keyword-only (positional argument 1 is PyG's edge_index)
        rows = (kwargs.get("group"), kwargs.get("first_row", 0), kwargs.get("last_row"))
        edges = int(module.plan(*rows).selected.ids.numel())
        return edges * (x.numel() // max(x.size(0), 1))


class _ConvCounter(Counter):
    def macs(
        self, module: Any, inputs: tuple[Any, ...], kwargs: dict[str, Any], output: Any
    ) -> int:
        kernel = 1
        for k in module.kernel_size:
            kernel *= k
        bias = output.numel() if module.bias is not None else 0
        if isinstance(module, TRANSPOSED_CONVS):  # scatters: each input value times its weights
            return inputs[0].numel() * (module.out_channels // module.groups) * kernel + bias
        return output.numel() * (module.in_channels // module.groups) * kernel + bias


class _LinearCounter(Counter):
    def macs(
        self, module: Any, inputs: tuple[Any, ...], kwargs: dict[str, Any], output: Any
    ) -> int:
        return output.numel() * (module.in_features + (module.bias is not None))


class _NormCounter(Counter):
    def macs(
        self, module: nn.Module, inputs: tuple[Any, ...], kwargs: dict[str, Any], output: Any
    ) -> int:
        affine = getattr(module, "affine", getattr(module, "elementwise_affine", False))
        return output.numel() if affine else 0


@register_counter(NeuronNodeOp)
class _NeuronCounter(Counter):
    def macs(
        self, module: nn.Module, inputs: tuple[Any, ...], kwargs: dict[str, Any], output: Any
    ) -> int:
        return output.numel() if module.bias is not None else 0


#: Public torch layers with a built-in counter (lazy convolutions subclass the eager
#: ones; lazy norms do not, so they are listed).  Only public classes: torch's private bases
#: (``_ConvNd``, ``_NormBase``) may move between releases.
#: Convolutions whose weight is ``[C_in, C_out / groups, *K]`` and that scatter their input.
TRANSPOSED_CONVS: tuple[type[nn.Module], ...] = (
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)
_CONVS: tuple[type[nn.Module], ...] = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)
_NORMS: tuple[type[nn.Module], ...] = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.LazyBatchNorm1d,
    nn.LazyBatchNorm2d,
    nn.LazyBatchNorm3d,
    nn.SyncBatchNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.LazyInstanceNorm1d,
    nn.LazyInstanceNorm2d,
    nn.LazyInstanceNorm3d,
    nn.LayerNorm,
    nn.GroupNorm,
)


def _register_torch_layers() -> None:
    for types, counter in (
        (_CONVS, _ConvCounter()),
        ((nn.Linear,), _LinearCounter()),
        (_NORMS, _NormCounter()),
    ):
        for module_type in types:
            COUNTERS.register(module_type, counter)


_register_torch_layers()

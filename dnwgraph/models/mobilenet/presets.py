"""The registered MobileNetV1 models (``create_model("mobilenetv1_dnw_x225")`` and friends).

Examples:
    >>> [name for name, *_ in PRESETS][:2]
    ['mobilenetv1_dnw_x225', 'mobilenetv1_dnw_x3']
    >>> from dnwgraph.models import list_models
    >>> all(name in list_models() for name, *_ in PRESETS)
    True
"""

from __future__ import annotations

from typing import Any

from dnwgraph.models.mobilenet.baseline import MobileNetV1
from dnwgraph.models.mobilenet.model import MobileNetV1DNW
from dnwgraph.models.presets import preset_spec
from dnwgraph.models.registry import register_model


def _dnw_preset(
    name: str, default_width: float, *, small: bool = False, default_selection: str = "dnw"
) -> Any:
    def factory(
        num_classes: int = 10,
        selection: str = default_selection,
        width: float = default_width,
        impl: str = "auto",
        input_size: int = 32,
        **selection_options: Any,
    ) -> MobileNetV1DNW:
        # the stages' budgets come from the width: the spec's ratio is not used
        spec, rest = preset_spec(1.0, selection_options, selection=selection, impl=impl)
        return MobileNetV1DNW(width, num_classes, spec, input_size=input_size, small=small, **rest)

    head = "a DNW-graph classifier" if small else "a dense linear classifier"
    factory.__doc__ = (
        f"MobileNetV1-DNW x{default_width} ({default_selection} wiring, {head}): ``width`` "
        f"(default {default_width}) is the width d of the budget; see :class:`MobileNetV1DNW`."
    )
    return factory


#: The registered MobileNetV1-DNW presets: (name, width d, small, selection).
PRESETS: tuple[tuple[str, float, bool, str], ...] = (
    ("mobilenetv1_dnw_x225", 0.225, False, "dnw"),
    ("mobilenetv1_dnw_x3", 0.3, False, "dnw"),
    ("mobilenetv1_dnw_x49", 0.49, False, "dnw"),
    ("mobilenetv1_dnw_small_x15", 0.15, True, "dnw"),
    ("mobilenetv1_dnw_small_x225", 0.225, True, "dnw"),
    ("mobilenetv1_random_x225", 0.225, False, "random"),
    ("mobilenetv1_random_x49", 0.49, False, "random"),
)


def _register_presets() -> None:
    for name, width, small, selection in PRESETS:
        register_model(name)(_dnw_preset(name, width, small=small, default_selection=selection))


_register_presets()


@register_model("mobilenetv1_x25")
def mobilenetv1_x25(
    num_classes: int = 10, input_size: int = 32, width: float = 0.25
) -> MobileNetV1:
    """Plain MobileNetV1 x0.25, the paper's baseline; see :class:`MobileNetV1`."""
    return MobileNetV1(width, num_classes, input_size)

"""xUnit (Kligvasser, Rott Shaham, Michaeli, "xUnit: Learning a Spatial Activation Function for Efficient
Image Restoration", CVPR 2018): a learnable spatial activation ``r = x ⊙ g(d(x))`` where ``d`` is a
per-channel (depthwise) convolution branch and ``g`` a gate. Three forms as in kligvasser/xUnit
(``models/modules/activations.py``), with the same ``features`` Sequential so reference state dicts load
as they are. ``swap_activations`` turns a ReLU network into its xUnit counterpart.
"""

from __future__ import annotations

import copy
from typing import Callable, Literal

import torch
from torch import nn

from ..errors import RestoreKitError

Gate = Literal["sigmoid", "gaussian"]


class Gaussian(nn.Module):
    """``exp(−x²)``, the paper's gate (the reference code uses a sigmoid instead)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(-x * x)


def _gate(gate: str) -> nn.Module:
    if gate == "sigmoid":
        return nn.Sigmoid()
    if gate == "gaussian":
        return Gaussian()
    raise ValueError(f"unknown xUnit gate {gate!r} (expected 'sigmoid' or 'gaussian')")


def _norm(num_features: int, batch_norm: bool) -> nn.Module:
    # An instance, never the class: the reference passes ``Identity`` uninstantiated and so cannot build
    # its full xUnit without batch norm. Identity has no state, so the state-dict indices stay the same.
    return nn.BatchNorm2d(num_features) if batch_norm else nn.Identity()


def _depthwise(num_features: int, kernel_size: int) -> nn.Conv2d:
    if kernel_size % 2 == 0:
        raise ValueError(f"xUnit kernel_size must be odd to keep the image size, got {kernel_size}")
    return nn.Conv2d(num_features, num_features, kernel_size, padding=kernel_size // 2, groups=num_features)


class _SpatialUnit(nn.Module):
    """Common part of the xUnit forms: ``forward(x) = x * features(x)``."""

    features: nn.Sequential

    def __init__(self, num_features: int, kernel_size: int, batch_norm: bool, gate: Gate) -> None:
        super().__init__()
        self.num_features, self.kernel_size, self.batch_norm, self.gate = num_features, kernel_size, batch_norm, gate

    def gate_map(self, x: torch.Tensor) -> torch.Tensor:
        """The weights ``g(d(x))`` that multiply ``x``."""
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.features(x)

    def extra_repr(self) -> str:
        return f"{self.num_features}, kernel_size={self.kernel_size}, batch_norm={self.batch_norm}, gate={self.gate!r}"


class XUnit(_SpatialUnit):
    """Full xUnit: BN → ReLU → depthwise k×k conv → BN → gate."""

    def __init__(self, num_features: int, kernel_size: int = 7, batch_norm: bool = False, gate: Gate = "sigmoid") -> None:
        super().__init__(num_features, kernel_size, batch_norm, gate)
        self.features = nn.Sequential(
            _norm(num_features, batch_norm),
            # Not in place: without batch norm it would overwrite x, which the product still needs.
            nn.ReLU(),
            _depthwise(num_features, kernel_size),
            _norm(num_features, batch_norm),
            _gate(gate),
        )


class XUnitS(_SpatialUnit):
    """Slim xUnit: depthwise k×k conv → BN → gate."""

    def __init__(self, num_features: int, kernel_size: int = 7, batch_norm: bool = False, gate: Gate = "sigmoid") -> None:
        super().__init__(num_features, kernel_size, batch_norm, gate)
        self.features = nn.Sequential(
            _depthwise(num_features, kernel_size), _norm(num_features, batch_norm), _gate(gate)
        )


class XUnitD(_SpatialUnit):
    """Dense xUnit: 1×1 conv → BN → ReLU → depthwise k×k conv → BN → gate."""

    def __init__(self, num_features: int, kernel_size: int = 7, batch_norm: bool = False, gate: Gate = "sigmoid") -> None:
        super().__init__(num_features, kernel_size, batch_norm, gate)
        self.features = nn.Sequential(
            nn.Conv2d(num_features, num_features, 1),
            _norm(num_features, batch_norm),
            nn.ReLU(),
            _depthwise(num_features, kernel_size),
            _norm(num_features, batch_norm),
            _gate(gate),
        )


XUNITS = (XUnit, XUnitS, XUnitD)


def paper_xunit(num_features: int) -> XUnit:
    """The paper's xUnit: full form, 9×9 depthwise conv, batch norm, Gaussian gate (xDnCNN's unit)."""
    return XUnit(num_features, kernel_size=9, batch_norm=True, gate="gaussian")


# Modules that keep the channel count, so a ReLU after them sees what came before them.
_CHANNEL_PRESERVING = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh,
    nn.Identity, nn.Dropout, nn.Dropout2d,
)


def _out_channels(module: nn.Module, incoming: int | None) -> int | None:
    if isinstance(module, nn.modules.conv._ConvNd):
        return module.out_channels
    if isinstance(module, (nn.BatchNorm2d, nn.InstanceNorm2d)):
        return module.num_features
    if isinstance(module, nn.GroupNorm):
        return module.num_channels
    if isinstance(module, _SpatialUnit):
        return module.num_features
    if isinstance(module, _CHANNEL_PRESERVING):
        return incoming
    return None


_Plan = list[tuple[nn.Module, str, int]]


def _plan_static(module: nn.Module, path: str, incoming: int | None, plan: _Plan) -> int | None:
    """Add (parent, name, channels) of the ReLUs below ``module`` to ``plan``; return the channel count
    ``module`` outputs (None: unknown)."""
    if isinstance(module, _SpatialUnit):
        return module.num_features  # its inner ReLU is part of the unit
    if isinstance(module, nn.Sequential):
        channels = incoming
        for name, child in list(module.named_children()):
            where = f"{path}.{name}" if path else name
            if isinstance(child, nn.ReLU):
                if channels is None:
                    raise RestoreKitError(
                        f"swap_activations: cannot infer the channel count of the ReLU at {where!r} "
                        "(no conv/BN before it in its Sequential); pass example= to trace it"
                    )
                plan.append((module, name, channels))
            else:
                channels = _plan_static(child, where, channels, plan)
        return channels
    for name, child in module.named_children():
        where = f"{path}.{name}" if path else name
        if isinstance(child, nn.ReLU):
            # Outside a Sequential the order of the forward pass is not known from the module tree.
            raise RestoreKitError(
                f"swap_activations: cannot infer the channel count of the ReLU at {where!r} "
                f"(an attribute of {type(module).__name__}, not inside an nn.Sequential); pass example= to trace it"
            )
        _plan_static(child, where, None, plan)
    return _out_channels(module, incoming)


def _relus(module: nn.Module, path: str = "") -> list[str]:
    found = []
    for name, child in module.named_children():
        where = f"{path}.{name}" if path else name
        if isinstance(child, nn.ReLU):
            found.append(where)
        elif not isinstance(child, _SpatialUnit):
            found += _relus(child, where)
    return found


def _plan_traced(model: nn.Module, example: torch.Tensor, plan: _Plan) -> None:
    paths = _relus(model)
    seen: dict[str, list[int]] = {p: [] for p in paths}
    hooks = [
        model.get_submodule(p).register_forward_hook(lambda _m, inp, _o, p=p: seen[p].append(int(inp[0].shape[1])))
        for p in paths
    ]
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()  # keep BatchNorm running statistics untouched
        with torch.no_grad():
            model(example)
    finally:
        for h in hooks:
            h.remove()
        for m, training in modes.items():
            m.train(training)
    for p in paths:
        if not seen[p]:
            raise RestoreKitError(f"swap_activations: the ReLU at {p!r} did not run on the example input")
        if len(seen[p]) > 1:
            # One xUnit in several places would tie its weights across them.
            raise RestoreKitError(
                f"swap_activations: the ReLU at {p!r} is applied {len(seen[p])} times in forward; "
                "give each place its own nn.ReLU first"
            )
        parent, _, name = p.rpartition(".")
        plan.append((model.get_submodule(parent), name, seen[p][0]))


def swap_activations(
    model: nn.Module,
    factory: Callable[[int], nn.Module] | None = None,
    *,
    example: torch.Tensor | None = None,
    inplace: bool = False,
) -> nn.Module:
    """``model`` with every ``nn.ReLU`` replaced by ``factory(num_channels)`` (default :func:`paper_xunit`).

    Returns a modified deep copy unless ``inplace``. Without ``example`` the channel count of each ReLU
    is read from the conv/norm layer before it in its ``nn.Sequential`` (nested Sequentials are followed);
    with ``example`` (an input tensor) a forward pass in eval mode records it, which works for any module
    structure. ReLUs inside xUnits are left alone. The result no longer matches its registry entry, so a
    copied ``info`` attribute is dropped.
    """
    make = factory or paper_xunit
    if not inplace:
        model = copy.deepcopy(model)
    plan: _Plan = []
    # Plan everything before replacing anything, so that an error leaves an in-place model untouched.
    if example is None:
        _plan_static(model, "", None, plan)
    else:
        _plan_traced(model, example, plan)
    for parent, name, channels in plan:
        parent._modules[name] = make(channels)
    if "info" in model.__dict__:
        del model.__dict__["info"]
    return model

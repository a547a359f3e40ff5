"""xUnit activations, xDnCNN, the kligvasser/xUnit generators and their checkpoint converter."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from restorekit.convert import convert_file
from restorekit.convert.xdncnn import convert_xunit
from restorekit.errors import RestoreKitError
from restorekit.models import count_parameters, create_model, model_info
from restorekit.models.xunit import XUNITS, Gaussian, XUnit, XUnitD, XUnitS, swap_activations
from restorekit.models.xdncnn import XDnCNN

torch.set_num_threads(1)

COUNTS = {
    "xdncnn": 306_947,
    "xdncnn-gray": 304_641,
    "xdncnn-ref": 333_001,
    "xdncnn-ref-gray": 409_411,
    "dncnn-ref": 302_659,
    "dncnn-9": 260_096,
    "dncnn-s-xunit": 644_096,
}


def _units(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, XUNITS)]


def _randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial weights and BatchNorm statistics, so that loading the wrong tensor shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, value in model.state_dict().items():
            if not value.is_floating_point():
                continue
            noise = torch.rand(value.shape, generator=g)
            value.copy_(0.5 + noise if key.endswith("running_var") else 0.2 * (noise - 0.5))
    return model.eval()


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_parameter_counts(name: str) -> None:
    model = create_model(name)
    assert count_parameters(model) == COUNTS[name] == model.info.params


def test_metadata() -> None:
    for name in COUNTS:
        info = model_info(name)
        assert (info.task, info.input_range, info.size_multiple) == ("denoise", 1.0, 1)
    assert model_info("xdncnn").channels == 3 and model_info("xdncnn-gray").channels == 1
    assert model_info("xdncnn-ref-gray").channels == 1 and model_info("dncnn-ref").channels == 3


def test_xdncnn_structure() -> None:
    model = create_model("xdncnn")
    convs = [m for m in model.body if isinstance(m, nn.Conv2d)]
    units = _units(model)
    assert len(convs) == 9 and all(c.kernel_size == (3, 3) and c.bias is not None for c in convs)
    assert len(units) == 8 and all(isinstance(u, XUnit) for u in units)
    assert {(u.kernel_size, u.batch_norm, u.gate) for u in units} == {(9, True, "gaussian")}
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.body) == 7
    # The authors' first code puts the BN before the conv: same size, different order.
    other = XDnCNN(3, norm_before_conv=True)
    assert count_parameters(other) == 306_947
    assert isinstance(other.body[2], nn.BatchNorm2d) and isinstance(model.body[3], nn.BatchNorm2d)


@pytest.mark.parametrize("cls", XUNITS)
@pytest.mark.parametrize("batch_norm", [True, False])
@pytest.mark.parametrize("gate", ["sigmoid", "gaussian"])
def test_units_forward_backward(cls: type, batch_norm: bool, gate: str) -> None:
    torch.manual_seed(0)
    unit = cls(4, kernel_size=7, batch_norm=batch_norm, gate=gate)
    assert any(isinstance(m, nn.BatchNorm2d) for m in unit.modules()) == batch_norm
    x = torch.randn(2, 4, 23, 31, requires_grad=True)
    x_before = x.detach().clone()
    y = unit(x)
    assert y.shape == x.shape
    assert torch.equal(x.detach(), x_before)  # the inner ReLU must not work in place on x
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name, p in unit.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_unit_validation() -> None:
    with pytest.raises(ValueError, match="gate"):
        XUnit(4, gate="relu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="odd"):
        XUnitS(4, kernel_size=8)


def _identity_depthwise(unit: nn.Module) -> None:
    with torch.no_grad():
        for m in unit.modules():
            if isinstance(m, nn.Conv2d) and m.groups == m.in_channels and m.kernel_size != (1, 1):
                m.weight.zero_()
                m.weight[:, :, m.kernel_size[0] // 2, m.kernel_size[1] // 2] = 1.0
                m.bias.zero_()


def test_gaussian_gate_hand_checked() -> None:
    x = torch.tensor([[[[0.0, 1.0], [-2.0, 0.5]]]])
    # exp(0), exp(-1), exp(-4), exp(-1/4)
    expected = torch.tensor([[[[1.0, 0.36787944], [0.01831564, 0.77880078]]]])
    assert torch.allclose(Gaussian()(x), expected, atol=1e-7)

    slim = XUnitS(1, kernel_size=3, batch_norm=False, gate="gaussian")
    _identity_depthwise(slim)  # pre-gate = x
    assert torch.allclose(slim.gate_map(x), expected, atol=1e-7)
    assert torch.allclose(slim(x), x * expected, atol=1e-7)

    full = XUnit(1, kernel_size=3, batch_norm=False, gate="gaussian")
    _identity_depthwise(full)  # pre-gate = relu(x): the -2 gives exp(0) = 1
    expected_full = torch.tensor([[[[1.0, math.exp(-1.0)], [1.0, math.exp(-0.25)]]]])
    assert torch.allclose(full.gate_map(x), expected_full, atol=1e-7)

    sig = XUnitS(1, kernel_size=3, batch_norm=False, gate="sigmoid")
    _identity_depthwise(sig)
    assert torch.allclose(sig.gate_map(x), torch.sigmoid(x))


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_variants_forward_backward(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name)
    c = model.info.channels
    x = torch.rand(1, c, 23, 31, requires_grad=True)
    y = model(x)
    assert y.shape == x.shape
    y.mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    with torch.no_grad():
        assert model(torch.rand(1, c, 17, 9)).shape == (1, c, 17, 9)


def test_residual_directions() -> None:
    x = torch.rand(1, 3, 11, 13)
    xd = _randomise(create_model("xdncnn"))
    ref = _randomise(create_model("xdncnn-ref"))
    with torch.no_grad():
        assert torch.allclose(xd(x), x - xd.noise(x))
        assert torch.allclose(ref(x), x + ref.residual(x))


def test_swap_activations_on_dncnn_s() -> None:
    base = create_model("dncnn-s")
    swapped = swap_activations(base)
    assert sum(isinstance(m, nn.ReLU) for m in base.modules()) == 16  # a copy by default
    assert not hasattr(swapped, "info")
    units = _units(swapped)
    assert len(units) == 16 and all(u.num_features == 64 for u in units)
    outside = [m for m in swapped.body if isinstance(m, nn.ReLU)]
    assert not outside
    assert count_parameters(swapped) == 556_032 + 16 * 5_504
    x = torch.rand(1, 1, 23, 31)
    assert swapped(x).shape == x.shape
    assert swapped.state_dict().keys() == create_model("dncnn-s-xunit").state_dict().keys()


def test_swap_activations_channel_inference() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16)),
        nn.Dropout2d(0.0),
        nn.ReLU(inplace=True),
        nn.Sequential(nn.ReLU(), nn.Conv2d(16, 5, 1)),
        nn.GroupNorm(1, 5),
        nn.ReLU(),
    )
    swap_activations(model, lambda n: XUnitS(n, kernel_size=3), inplace=True)
    assert [u.num_features for u in _units(model)] == [8, 16, 16, 5]
    assert all(isinstance(u, XUnitS) for u in _units(model))
    assert model(torch.rand(1, 3, 9, 7)).shape == (1, 5, 9, 7)


def test_swap_activations_errors_and_tracing() -> None:
    with pytest.raises(RestoreKitError, match=r"'0'"):
        swap_activations(nn.Sequential(nn.ReLU(), nn.Conv2d(1, 2, 3)))

    # dncnn-ref keeps its ReLUs as block attributes: not inferable from the tree, so it must say so
    # and leave an in-place model untouched.
    ref = create_model("dncnn-ref")
    with pytest.raises(RestoreKitError, match=r"image_to_features\.relu.*example="):
        swap_activations(ref, inplace=True)
    assert not _units(ref)
    traced = swap_activations(ref, example=torch.rand(1, 3, 8, 8))
    assert [u.num_features for u in _units(traced)] == [64] * 9
    assert ref.training and all(m.training for m in traced.modules())
    assert traced(torch.rand(1, 3, 11, 9)).shape == (1, 3, 11, 9)

    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.relu = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.relu(self.b(self.relu(self.a(x))))

    with pytest.raises(RestoreKitError, match="2 times"):
        swap_activations(Shared(), example=torch.rand(1, 1, 5, 5))


def _reference_keys(blocks: int, xunit: bool) -> list[str]:
    """Key names as kligvasser/xUnit's g_xdncnn / g_dncnn state dicts spell them."""
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    keys: list[str] = []
    for i, prefix in enumerate(["image_to_features"] + [f"features.{n}" for n in range(blocks)]):
        if xunit:
            keys += [f"{prefix}.bn.{k}" for k in bn] + [f"{prefix}.conv.weight", f"{prefix}.conv.bias"]
            keys += [f"{prefix}.xunit.features.0.weight", f"{prefix}.xunit.features.0.bias"]
            keys += [f"{prefix}.xunit.features.1.{k}" for k in bn]
        else:
            keys += [f"{prefix}.conv.weight"] + ([f"{prefix}.conv.bias"] if i == 0 else [])
            keys += [f"{prefix}.bn.{k}" for k in bn]
    return keys + ["features_to_image.weight", "features_to_image.bias"]


def test_reference_key_layout() -> None:
    assert list(create_model("xdncnn-ref").state_dict()) == _reference_keys(8, xunit=True)
    assert list(create_model("xdncnn-ref-gray").state_dict()) == _reference_keys(10, xunit=True)
    assert list(create_model("dncnn-ref").state_dict()) == _reference_keys(8, xunit=False)
    unit = XUnit(4, batch_norm=False)  # Identity keeps the conv at index 2, as in the reference
    assert list(unit.state_dict()) == ["features.2.weight", "features.2.bias"]
    assert list(XUnitD(4, batch_norm=True).state_dict())[5:7] == ["features.1.running_var", "features.1.num_batches_tracked"]


@pytest.mark.parametrize(
    "name, args, expect_arch, expect_args, prefix, old_torch",
    [
        ("xdncnn-ref", {}, "xdncnn-ref", {}, "module.", False),
        ("xdncnn-ref-gray", {}, "xdncnn-ref-gray", {}, "", True),
        ("dncnn-ref", {}, "dncnn-ref", {}, "module.", False),
        ("xdncnn-ref", {"channels": 1, "blocks": 2, "features": 16}, "xdncnn-ref-gray",
         {"blocks": 2, "features": 16}, "", False),
    ],
)
def test_convert_round_trip(tmp_path, name, args, expect_arch, expect_args, prefix, old_torch) -> None:
    source = _randomise(create_model(name, **args), seed=1)
    state = {prefix + k: v for k, v in source.state_dict().items()
             if not (old_torch and k.endswith("num_batches_tracked"))}
    path = tmp_path / "g_xdncnn_e100.pt"
    torch.save(state, path)

    conv = convert_file(path)
    assert (conv.arch, conv.args, conv.source_format) == (expect_arch, expect_args, "kligvasser/xUnit state_dict")
    model = create_model(conv.arch, **conv.args)
    model.load_state_dict(conv.state_dict, strict=True)
    model.eval()
    x = torch.rand(1, source.channels, 19, 21)
    with torch.no_grad():
        assert torch.equal(model(x), source(x))


def test_converter_leaves_other_layouts() -> None:
    dncnn = create_model("dncnn-s").state_dict()
    saoyan = {k.replace("body.", "dncnn."): v for k, v in dncnn.items()}
    kair = {k.replace("body.", "model."): v for k, v in create_model("dncnn-s-folded").state_dict().items()}
    for state in (dncnn, saoyan, kair, create_model("xdncnn").state_dict()):
        assert convert_xunit(state, None) is None  # type: ignore[arg-type]
    # Same top-level names, wrong inner layout (a ReLU block where xUnit blocks are expected): not ours.
    mixed = dict(create_model("xdncnn-ref").state_dict())
    mixed.pop("features.3.xunit.features.0.weight")
    assert convert_xunit(mixed, None) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["xdncnn-gray", "dncnn-s"])
def test_denoisers_start_near_the_identity(name: str) -> None:
    # A freshly built denoiser predicts a small residual; xDnCNN with plain He init on its output conv
    # predicted one of std ~0.9 and lost hundreds of training steps undoing it.
    torch.manual_seed(0)
    model = create_model(name).train()
    noisy = torch.rand(4, 1, 40, 40)
    with torch.no_grad():
        residual = noisy - model(noisy)
    assert residual.std().item() < 0.05

"""Training losses: hand-computed values, reference re-implementations and gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from restorekit.errors import RestoreKitError
from restorekit.losses import (
    CharbonnierLoss,
    CompositeLoss,
    ContrastiveLoss,
    DuRNMixLoss,
    EdgeLoss,
    L1Loss,
    MSELoss,
    SSIMLoss,
    build_loss,
)
from restorekit.metrics import ssim


def _pair(c: int = 3, n: int = 2, hw: int = 24, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(n, c, hw, hw, generator=g)
    pred = (target + 0.1 * torch.randn(n, c, hw, hw, generator=g)).clamp(0, 1)
    return pred.requires_grad_(True), target


def _assert_grad(loss: torch.Tensor, pred: torch.Tensor) -> None:
    loss.backward()
    assert pred.grad is not None
    assert torch.isfinite(pred.grad).all()
    assert pred.grad.abs().sum() > 0


def test_l1_and_mse_hand_values() -> None:
    pred = torch.tensor([[[[1.0, 2.0], [3.0, -1.0]]], [[[0.0, 0.0], [0.0, 2.0]]]])
    target = torch.zeros_like(pred)
    # |d| = 1,2,3,1,0,0,0,2 ; d^2 = 1,4,9,1,0,0,0,4
    assert L1Loss()(pred, target).item() == pytest.approx(9 / 8)
    assert L1Loss("sum")(pred, target).item() == pytest.approx(9)
    assert MSELoss()(pred, target).item() == pytest.approx(19 / 8)
    assert MSELoss("sum")(pred, target).item() == pytest.approx(19)
    assert MSELoss("sum_half_n")(pred, target).item() == pytest.approx(19 / (2 * 2))


def test_charbonnier_values() -> None:
    x = torch.zeros(1, 1, 4, 4)
    assert CharbonnierLoss()(x, x).item() == pytest.approx(1e-3, rel=1e-6)
    assert CharbonnierLoss(eps=0.5)(x, x).item() == pytest.approx(0.5)
    pred = torch.tensor([[[[3.0, 0.0]]]])
    expected = (math.sqrt(9 + 1e-6) + 1e-3) / 2
    value = CharbonnierLoss()(pred, torch.zeros_like(pred)).item()
    assert value == pytest.approx(expected, rel=1e-6)


def _pytorch_ssim_reference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """pytorch-ssim as DuRN uses it: 2-D 11x11 Gaussian, padding 5 with zeros, groups=C."""
    c = a.shape[1]
    g = torch.exp(-((torch.arange(11, dtype=a.dtype) - 5) ** 2) / (2 * 1.5**2))
    g = g / g.sum()
    win = torch.outer(g, g).expand(c, 1, 11, 11).contiguous()

    def conv(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, win, padding=5, groups=c)

    m1, m2 = conv(a), conv(b)
    s1, s2, s12 = conv(a * a) - m1 * m1, conv(b * b) - m2 * m2, conv(a * b) - m1 * m2
    c1, c2 = 0.01**2, 0.03**2
    smap = ((2 * m1 * m2 + c1) * (2 * s12 + c2)) / ((m1**2 + m2**2 + c1) * (s1 + s2 + c2))
    return smap.mean()


def test_ssim_loss_matches_pytorch_ssim_and_metric() -> None:
    pred, target = _pair(c=3, seed=1)
    ref = _pytorch_ssim_reference(pred.detach().double(), target.double()).item()
    neg = SSIMLoss()(pred, target)
    assert neg.dtype == torch.float32
    assert neg.item() == pytest.approx(-ref, abs=1e-5)
    assert SSIMLoss("one_minus")(pred, target).item() == pytest.approx(1 - ref, abs=1e-5)
    metric = float(ssim(pred.detach(), target, border="same"))
    assert metric == pytest.approx(ref, abs=1e-12)
    _assert_grad(neg, pred)


def test_ssim_loss_identical_images() -> None:
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    assert SSIMLoss("neg")(x, x).item() == pytest.approx(-1.0, abs=1e-6)
    assert SSIMLoss("one_minus")(x, x).item() == pytest.approx(0.0, abs=1e-6)


def _mprnet_edge_reference(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """MPRNet's EdgeLoss written out for any channel count with a repeated 5x5 kernel."""
    c = x.shape[1]
    k = torch.tensor([[0.05, 0.25, 0.4, 0.25, 0.05]], dtype=x.dtype)
    kern = (k.t() @ k).unsqueeze(0).repeat(c, 1, 1, 1)

    def gauss(img: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(img, (2, 2, 2, 2), mode="replicate"), kern, groups=c)

    def lap(img: torch.Tensor) -> torch.Tensor:
        f = gauss(img)
        up = torch.zeros_like(f)
        up[:, :, ::2, ::2] = f[:, :, ::2, ::2] * 4
        return img - gauss(up)

    d = lap(x) - lap(y)
    return torch.sqrt(d * d + 1e-6).mean()


@pytest.mark.parametrize("channels", [1, 3, 5])
def test_edge_loss_any_channel_count(channels: int) -> None:
    pred, target = _pair(c=channels, hw=21, seed=channels)
    loss = EdgeLoss()(pred, target)
    ref = _mprnet_edge_reference(pred.detach(), target)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
    assert loss.item() > 2e-3
    # Identical inputs: the detail layers agree and only the Charbonnier floor eps remains.
    assert EdgeLoss()(target, target).item() == pytest.approx(1e-3, rel=1e-5)
    _assert_grad(loss, pred)


def test_edge_laplacian_of_constant_is_zero_inside() -> None:
    # The zero-interleaved upsampling times 4 is a partition of unity away from the borders;
    # at the borders replicate padding of the interleaved image breaks it (as in MPRNet).
    lap = EdgeLoss().laplacian(torch.full((1, 2, 16, 16), 0.7))
    assert lap[..., 3:-3, 3:-3].abs().max().item() < 1e-6
    assert lap.abs().max().item() > 1e-2


def test_contrastive_hand_value() -> None:
    # Two images, one patch each, orthogonal features: positive sim 1, negative sim 0.
    f = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
    # l = -log(exp(1/0.1) / exp(0)) = -10 for both images.
    assert ContrastiveLoss(0.1)(f).item() == pytest.approx(-10.0, abs=1e-5)
    assert ContrastiveLoss(0.5)(f).item() == pytest.approx(-2.0, abs=1e-5)


def test_contrastive_prefers_aligned_patches() -> None:
    g = torch.Generator().manual_seed(4)
    n, p, d = 4, 6, 16
    centers = torch.randn(n, 1, d, generator=g)
    aligned = centers + 0.05 * torch.randn(n, p, d, generator=g)
    random = torch.randn(n, p, d, generator=g).requires_grad_(True)
    loss = ContrastiveLoss()
    assert loss(aligned).item() < loss(random).item() - 1.0
    _assert_grad(loss(random), random)


def test_contrastive_errors() -> None:
    with pytest.raises(RestoreKitError):
        ContrastiveLoss()(torch.randn(1, 4, 8))
    with pytest.raises(RestoreKitError):
        ContrastiveLoss()(torch.randn(4, 8))
    with pytest.raises(RestoreKitError):
        ContrastiveLoss(temperature=0)


def test_durn_mix_loss() -> None:
    pred, target = _pair(c=3, seed=5)
    ref_ssim = _pytorch_ssim_reference(pred.detach().double(), target.double()).item()
    expected = -1.1 * ref_ssim + 0.75 * (pred.detach() - target).abs().mean().item()
    loss = DuRNMixLoss()(pred, target)
    assert loss.item() == pytest.approx(expected, abs=1e-5)
    _assert_grad(loss, pred)
    x = target
    assert DuRNMixLoss()(x, x).item() == pytest.approx(-1.1, abs=1e-6)


def test_composite_sums_weighted_terms_and_stages() -> None:
    target = torch.zeros(1, 1, 2, 2)
    p1 = torch.full((1, 1, 2, 2), 1.0, requires_grad=True)
    p2 = torch.full((1, 1, 2, 2), 2.0, requires_grad=True)
    loss = CompositeLoss([(1.0, L1Loss()), (0.5, MSELoss())])
    assert loss(p1, target).item() == pytest.approx(1 + 0.5 * 1)
    staged = loss([p1, p2], target)
    assert staged.item() == pytest.approx((1 + 0.5) + (2 + 0.5 * 4))
    assert loss((p1, p2), [target, target + 1]).item() == pytest.approx((1 + 0.5) + (1 + 0.5))
    staged.backward()
    assert p1.grad is not None and p2.grad is not None
    with pytest.raises(RestoreKitError):
        loss([p1, p2], [target])
    with pytest.raises(RestoreKitError):
        loss([], target)
    with pytest.raises(RestoreKitError):
        CompositeLoss([])
    with pytest.raises(RestoreKitError):
        CompositeLoss([(1.0, "l1")])


def test_build_loss_specs() -> None:
    pred, target = _pair(seed=6)
    single = build_loss("l1")
    assert single(pred, target).item() == pytest.approx(L1Loss()(pred, target).item())
    mprnet = build_loss([{"name": "charbonnier", "weight": 1.0}, {"name": "edge", "weight": 0.05}])
    expected = CharbonnierLoss()(pred, target) + 0.05 * EdgeLoss()(pred, target)
    assert mprnet([pred, pred], target).item() == pytest.approx(2 * expected.item(), rel=1e-6)
    dncnn = build_loss({"name": "mse", "reduction": "sum_half_n"})
    assert dncnn(pred, target).item() == pytest.approx(
        MSELoss("sum_half_n")(pred, target).item()
    )
    ssim_loss = build_loss({"name": "ssim", "form": "one_minus", "weight": 2})
    assert ssim_loss(target, target).item() == pytest.approx(0.0, abs=1e-6)
    feats = torch.randn(3, 4, 8, generator=torch.Generator().manual_seed(7))
    assert build_loss("contrastive")(feats, None).item() == pytest.approx(
        ContrastiveLoss()(feats).item()
    )
    for name in ("durn-mix", "mse", "ssim"):
        value = build_loss(name)(pred, target)
        assert torch.isfinite(value)


def test_build_loss_errors() -> None:
    with pytest.raises(RestoreKitError, match="did you mean 'charbonnier'"):
        build_loss("charbonier")
    with pytest.raises(RestoreKitError, match="did you mean 'durn-mix'"):
        build_loss([{"name": "durn_mix"}])
    with pytest.raises(RestoreKitError, match="bad options"):
        build_loss({"name": "l1", "eps": 1.0})
    with pytest.raises(RestoreKitError, match="weight"):
        build_loss({"name": "l1", "weight": "heavy"})
    with pytest.raises(RestoreKitError, match="name"):
        build_loss([{"weight": 1.0}])
    with pytest.raises(RestoreKitError):
        build_loss([])
    with pytest.raises(RestoreKitError):
        build_loss({"name": "mse", "reduction": "median"})
    with pytest.raises(RestoreKitError):
        SSIMLoss(form="pos")
    with pytest.raises(RestoreKitError, match="shapes differ"):
        L1Loss()(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 3))

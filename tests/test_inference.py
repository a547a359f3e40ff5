"""Inference path: padding, tiling and blending, ensemble, colour order, range, tasks, precision, errors."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from restorekit.errors import RestoreKitError
from restorekit.inference import (
    InferenceOptions,
    tile_window,
    dihedral,
    dihedral_inverse,
    plan_tiles,
    prepare_model,
    receptive_radius,
    resolve_device,
    restore_tensor,
)
from restorekit.models import ModelInfo, create_model, list_models, model_info
from restorekit.models.dncnn import DnCNN

# 12×12 inputs of 3×3 patches (IPT's default is 48×48 and 115M parameters).
IPT_SMALL = {"patch_size": 12, "patch_dim": 3, "n_feats": 8, "num_heads": 2, "num_layers": 1}


def _info(**kw: object) -> ModelInfo:
    base: dict[str, object] = {"name": "toy", "family": "toy", "task": "denoise", "channels": 3}
    base.update(kw)
    return ModelInfo(**base)  # type: ignore[arg-type]


class Toy(nn.Module):
    """A metadata-carrying test model around a function; counts its calls."""

    def __init__(self, fn, **info: object) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.fn = fn
        self.info = _info(**info)
        self.calls = 0
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.fn(x)


def _dncnn5(seed: int = 0, channels: int = 1) -> DnCNN:
    torch.manual_seed(seed)
    model = DnCNN(channels, depth=5, features=16, batch_norm=True)
    model.info = model_info("dncnn-s", channels=channels)  # type: ignore[assignment]
    with torch.no_grad():
        for m in model.modules():  # BN away from identity, and scales of 1 not DnCNN's tiny initial ones:
            if isinstance(m, nn.BatchNorm2d):  # the network must change its input for the tests to mean anything
                m.weight.uniform_(0.5, 1.5)
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    return model


def _eval_forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(x)


# ---------------------------------------------------------------------------------------------------------
# every registered model, odd size


def _small(name: str) -> nn.Module:
    torch.manual_seed(0)
    if model_info(name).family == "ipt":
        return create_model(name, **IPT_SMALL)
    return create_model(name)


@pytest.mark.parametrize("name", list_models())
def test_every_model_keeps_odd_sizes(name: str) -> None:
    info = model_info(name)
    model = _small(name)
    task = info.tasks[0] if len(info.tasks) > 1 else None
    scale = info.scales[0] if info.scales else info.scale
    x = torch.rand(1, info.channels, 33, 37)
    y = restore_tensor(model, x, InferenceOptions(task=task))
    assert y.shape == (1, info.channels, 33 * scale, 37 * scale)
    assert y.dtype == torch.float32 and torch.isfinite(y).all()
    assert 0.0 <= y.min() and y.max() <= 1.0


def test_padded_output_is_the_model_on_a_reflected_multiple() -> None:
    model = _small("mprnet-derain")
    x = torch.rand(1, 3, 33, 37)
    expected = _eval_forward(model, F.pad(x, (0, 3, 0, 7), mode="reflect"))[0][..., :33, :37]
    got = restore_tensor(model, x, InferenceOptions(clamp=False))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_padding_falls_back_to_replicate_for_tiny_images() -> None:
    seen: list[torch.Tensor] = []
    model = Toy(lambda t: seen.append(t) or t, size_multiple=8)
    x = torch.rand(1, 3, 2, 3)
    assert torch.equal(restore_tensor(model, x), x)
    assert seen[0].shape[-2:] == (8, 8)
    torch.testing.assert_close(seen[0][..., 7, 7], x[..., 1, 2])


def test_caller_model_is_left_as_it_was() -> None:
    model = _dncnn5()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    restore_tensor(model, torch.rand(1, 1, 20, 20))
    assert model.training and all(m.training for m in model.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_prepared_copy_is_cached_and_follows_weight_changes() -> None:
    model = _dncnn5()
    options = InferenceOptions()
    first = prepare_model(model, options)
    assert prepare_model(model, options).model is first.model
    assert not any(isinstance(m, nn.BatchNorm2d) for m in first.model.modules())  # folded
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        model.body[0].weight.mul_(2)
    second = prepare_model(model, options)
    assert second.model is not first.model
    torch.testing.assert_close(restore_tensor(model, x, InferenceOptions(clamp=False)),
                               _eval_forward(model, x), atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------------------
# tiling


def test_receptive_radius_of_plain_cnns() -> None:
    assert receptive_radius(_dncnn5()) == 5
    assert receptive_radius(create_model("dncnn-s-folded")) == 17


def test_tiled_equals_untiled_when_the_field_fits_the_overlap() -> None:
    model = _dncnn5()
    x = torch.rand(2, 1, 77, 90)
    whole = restore_tensor(model, x, InferenceOptions(clamp=False))
    assert (whole - x).abs().max() > 0.1  # the model does change its input
    for tile_batch in (1, 5):
        tiled = restore_tensor(model, x, InferenceOptions(tile=32, tile_batch=tile_batch, clamp=False))
        assert (tiled - whole).abs().max() < 1e-5
    torch.testing.assert_close(whole, _eval_forward(model, x), atol=1e-5, rtol=0)
    # The same tiles without enough overlap do differ: the comparison can fail.
    short = restore_tensor(model, x, InferenceOptions(tile=32, overlap=6, clamp=False))
    assert (short - whole).abs().max() > 1e-3


def _border_mask(
    plan_ys: tuple[int, ...], plan_xs: tuple[int, ...], tile: tuple[int, int], h: int, w: int, band: int
) -> torch.Tensor:
    mask = torch.zeros(h, w, dtype=torch.bool)
    for y0 in plan_ys:
        for edge in (y0, y0 + tile[0]):
            mask[max(0, edge - band):edge + band, :] = True
    for x0 in plan_xs:
        for edge in (x0, x0 + tile[1]):
            mask[:, max(0, edge - band):edge + band] = True
    return mask


def test_no_seam_at_tile_borders() -> None:
    model = _dncnn5(seed=1)
    x = torch.rand(1, 1, 90, 100)
    whole = restore_tensor(model, x, InferenceOptions(clamp=False))
    tiled = restore_tensor(model, x, InferenceOptions(tile=40, clamp=False))
    diff = (tiled - whole).abs()[0, 0]
    plan = plan_tiles(90, 100, tile=40, overlap=15, multiple=1)
    border = _border_mask(plan.ys, plan.xs, (plan.tile_h, plan.tile_w), 90, 100, band=8)
    assert border.any() and (~border).any()
    assert diff[border].max() <= max(4 * diff[~border].max().item(), 1e-6)


def test_blending_smooths_context_dependent_models() -> None:
    # Output depends on the whole tile (a global mean): tiles disagree, and only blending hides it.
    model = Toy(lambda t: t + 0.5 * t.mean((-2, -1), keepdim=True))
    ramp = torch.linspace(0, 1, 100).expand(1, 3, 64, 100).contiguous()
    def max_step(out: torch.Tensor) -> float:
        return (out - ramp)[..., 1:].sub((out - ramp)[..., :-1]).abs().max().item()
    hard = restore_tensor(model, ramp, InferenceOptions(tile=32, overlap=0, clamp=False))
    soft = restore_tensor(model, ramp, InferenceOptions(tile=32, overlap=12, clamp=False))
    assert max_step(soft) < 0.5 * max_step(hard)


def test_windows_of_aligned_tiles_sum_to_one() -> None:
    margin, ramp, tile = 3, 5, 30
    a = tile_window(tile, True, False, margin, ramp)
    b = tile_window(tile, False, True, margin, ramp)
    overlap = 2 * margin + ramp
    torch.testing.assert_close(a[-overlap:] + b[:overlap], torch.ones(overlap))
    assert (a[-margin:] == 0).all() and (b[:margin] == 0).all()


class NearestUp(nn.Module):
    def __init__(self, scale: int, multiple: int) -> None:
        super().__init__()
        self.scale = scale
        self.info = _info(scale=scale, size_multiple=multiple)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[-2] % self.info.size_multiple == 0 and x.shape[-1] % self.info.size_multiple == 0
        return x.repeat_interleave(self.scale, -2).repeat_interleave(self.scale, -1)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    h=st.integers(1, 300), w=st.integers(1, 300), multiple=st.sampled_from([1, 2, 4, 8, 48]),
    tile=st.integers(1, 320), overlap_frac=st.floats(0, 0.5), scale=st.integers(1, 4),
)
def test_tile_plan_covers_every_pixel(h: int, w: int, multiple: int, tile: int, overlap_frac: float, scale: int) -> None:
    tile = max(tile, multiple)
    snapped = tile // multiple * multiple
    overlap = int(snapped * overlap_frac)
    plan = plan_tiles(h, w, tile=tile, overlap=overlap, multiple=multiple, scale=scale)
    assert plan.out_size == (h * scale, w * scale)
    assert plan.tile_h % multiple == 0 and plan.tile_w % multiple == 0
    for length, size in ((h, plan.tile_h), (w, plan.tile_w)):
        if length <= snapped:
            assert size == -(-length // multiple) * multiple  # one tile, padded to the multiple
        else:
            assert size <= snapped  # memory is bounded by the requested tile
    for length, size, starts, n_tiles in ((h, plan.tile_h, plan.ys, len(plan.ys)), (w, plan.tile_w, plan.xs, len(plan.xs))):
        assert starts[0] == 0 and list(starts) == sorted(set(starts))
        if n_tiles > 1:
            assert starts[-1] + size == length  # the last tile ends at the far border: nothing padded
            assert all(b - a <= size - overlap for a, b in itertools.pairwise(starts))
        weight = torch.zeros(length * scale)
        for j, s0 in enumerate(starts):
            win = tile_window(size * scale, j == 0, j == n_tiles - 1, plan.margin * scale, plan.ramp * scale)
            end = min(length * scale, (s0 + size) * scale)
            weight[s0 * scale:end] += win[:end - s0 * scale]
        assert (weight > 0).all()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    h=st.integers(1, 90), w=st.integers(1, 90), multiple=st.sampled_from([1, 4, 8]),
    tile=st.integers(16, 64), scale=st.integers(1, 3), ensemble=st.booleans(),
)
def test_tiled_scale_model_is_exact(h: int, w: int, multiple: int, tile: int, scale: int, ensemble: bool) -> None:
    model = NearestUp(scale, multiple)
    x = torch.rand(1, 3, h, w)
    out = restore_tensor(model, x, InferenceOptions(tile=tile, overlap=4, ensemble=ensemble))
    assert out.shape == (1, 3, h * scale, w * scale)
    torch.testing.assert_close(out, x.repeat_interleave(scale, -2).repeat_interleave(scale, -1))


# ---------------------------------------------------------------------------------------------------------
# IPT: exact-size tiles, tasks, scale


def test_ipt_single_patch_equals_direct_forward() -> None:
    model = _small("ipt-denoise")
    x = torch.rand(1, 3, 12, 12)
    expected = _eval_forward(model, x * 255) / 255
    got = restore_tensor(model, x, InferenceOptions(clamp=False))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_ipt_tiles_larger_images_at_its_patch_size() -> None:
    model = _small("ipt-sr-x2")
    sizes: list[tuple[int, int]] = []
    model.register_forward_pre_hook(lambda m, args: sizes.append(tuple(args[0].shape[-2:])))
    y = restore_tensor(model, torch.rand(1, 3, 33, 37), InferenceOptions(tile_batch=64))
    assert y.shape == (1, 3, 66, 74)
    assert set(sizes) == {(12, 12)}


def test_multi_task_models_need_a_valid_task() -> None:
    model = _small("ipt-pretrain")
    x = torch.rand(1, 3, 12, 12)
    with pytest.raises(RestoreKitError, match="sr-x2.*denoise-50"):
        restore_tensor(model, x)
    with pytest.raises(RestoreKitError, match="unknown IPT task 'sr-x5'"):
        restore_tensor(model, x, InferenceOptions(task="sr-x5"))
    assert restore_tensor(model, x, InferenceOptions(task="sr-x3")).shape == (1, 3, 36, 36)
    assert restore_tensor(model, x, InferenceOptions(task="derain")).shape == (1, 3, 12, 12)
    with pytest.raises(RestoreKitError, match="single-task"):
        restore_tensor(_dncnn5(), torch.rand(1, 1, 8, 8), InferenceOptions(task="sr-x2"))


# ---------------------------------------------------------------------------------------------------------
# range, colour order, outputs, ensemble, precision


def test_bgr_models_get_bgr_and_give_rgb_back() -> None:
    x = torch.rand(1, 3, 9, 11)
    first = lambda t: t[:, :1].expand(-1, 3, -1, -1)
    bgr = restore_tensor(Toy(first, color_order="bgr"), x)
    rgb = restore_tensor(Toy(first, color_order="rgb"), x)
    assert torch.equal(bgr, x[:, 2:3].expand(-1, 3, -1, -1))
    assert torch.equal(rgb, x[:, 0:1].expand(-1, 3, -1, -1))


def test_input_range_and_final_output() -> None:
    seen: list[float] = []
    def fn(t: torch.Tensor) -> list[torch.Tensor]:
        seen.append(t.max().item())
        return [t * 0, t - 10.0]  # the final image is declared second here
    x = torch.rand(1, 3, 8, 8) * 0.5 + 0.5
    y = restore_tensor(Toy(fn, input_range=255.0, output_index=1), x, InferenceOptions(clamp=False))
    assert seen[0] > 127
    torch.testing.assert_close(y, x - 10 / 255)


def test_ensemble_of_identity_is_identity_and_averages_transforms() -> None:
    x = torch.rand(2, 3, 13, 16)
    assert torch.allclose(restore_tensor(Toy(lambda t: t), x, InferenceOptions(ensemble=True)), x, atol=1e-6)
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 3, 3, padding=1)
    model = Toy(conv)
    with torch.no_grad():
        expected = sum(dihedral_inverse(conv(dihedral(x, k)), k) for k in range(8)) / 8
    got = restore_tensor(model, x, InferenceOptions(ensemble=True, clamp=False))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert model.calls == 8


def test_dihedral_inverse() -> None:
    x = torch.rand(1, 1, 3, 5)
    outs = {tuple(dihedral(x, k).flatten().tolist()) for k in range(8)}
    assert len(outs) == 8
    for k in range(8):
        assert torch.equal(dihedral_inverse(dihedral(x, k), k), x)


def test_bf16_and_channels_last_stay_close_to_fp32() -> None:
    model = _dncnn5()
    x = torch.rand(1, 1, 24, 24)
    ref = restore_tensor(model, x, InferenceOptions(clamp=False))
    cl = restore_tensor(model, x, InferenceOptions(channels_last=True, clamp=False))
    bf = restore_tensor(model, x, InferenceOptions(precision="bf16", clamp=False, device="cpu"))
    assert cl.dtype == bf.dtype == torch.float32
    assert (cl - ref).abs().max() < 1e-5
    assert 0 < (bf - ref).abs().max() < 0.05


def test_output_stays_on_the_input_device_and_clamps() -> None:
    x = torch.rand(1, 3, 10, 10)
    y = restore_tensor(Toy(lambda t: t * 3 - 1), x, InferenceOptions(device="cpu"))
    assert y.device == x.device and y.min() == 0 and y.max() == 1


# ---------------------------------------------------------------------------------------------------------
# errors, raised before any work


def _refuses(model: Toy, x: torch.Tensor, options: InferenceOptions, match: str) -> None:
    with pytest.raises(RestoreKitError, match=match):
        restore_tensor(model, x, options)
    assert model.calls == 0


def test_user_errors_are_reported_before_work() -> None:
    x = torch.rand(1, 3, 40, 40)
    toy = Toy(lambda t: t, size_multiple=8)
    _refuses(toy, x, InferenceOptions(tile=32, overlap=20), r"tile 32 is smaller than twice the overlap 20.*overlap <= 16")
    _refuses(toy, x, InferenceOptions(tile=4), r"tile 4 is smaller than .* size multiple 8")
    _refuses(toy, x, InferenceOptions(device="tpu"), r"unknown device 'tpu'; valid: auto, cpu, cuda, mps")
    _refuses(toy, x, InferenceOptions(precision="fp16", device="cpu"), r"fp16 needs a CUDA device")
    _refuses(toy, x, InferenceOptions(precision="int8"), r"valid: fp32, bf16, fp16")
    _refuses(toy, x, InferenceOptions(tile_batch=0), r"tile_batch")
    _refuses(toy, x[:, :2], InferenceOptions(), r"takes 3-channel images, got 2")
    _refuses(toy, x[0], InferenceOptions(), r"N×C×H×W")
    gray = Toy(lambda t: t, channels=1)
    _refuses(gray, x, InferenceOptions(), r"gray \(1-channel\) images and this image is RGB")
    _refuses(Toy(lambda t: t), x[:, :1], InferenceOptions(), r"RGB \(3-channel\) images and this image is gray")
    _refuses(toy, (x * 255).to(torch.uint8), InferenceOptions(), r"float pixels")


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(RestoreKitError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(RestoreKitError, match="unknown device"):
        resolve_device("cuda:x")


def test_default_tile_batch_fills_a_pixel_budget_per_device() -> None:
    from restorekit.inference import default_tile_batch

    def plan(size: int):
        return plan_tiles(2000, 2000, tile=size, overlap=8, multiple=1)

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert default_tile_batch(plan(512), cpu) == 1  # memory grows with each tile; a CPU gains no speed
    assert default_tile_batch(plan(256), cpu) == 4
    assert default_tile_batch(plan(48), cpu) == 64  # small fixed-size tiles (IPT) are batched, capped
    assert default_tile_batch(plan(512), cuda) == 4
    assert default_tile_batch(plan(1024), cuda) == 1

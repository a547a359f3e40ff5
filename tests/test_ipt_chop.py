"""IPT's inference protocol: restorekit's chop tiling against the reference's ``forward_chop``
(huawei-noah/Pretrained-IPT, model/__init__.py), re-written below from its algorithm."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
import torch.nn.functional as F

from restorekit.checkpoints import save_checkpoint
from restorekit.cli import _inference_options, build_parser, main
from restorekit.errors import RestoreKitError
from restorekit.inference import InferenceOptions, restore_tensor
from restorekit.inference.chop import chop_grid, chop_split, chop_starts
from restorekit.models import create_model, model_info

# Tiny IPTs: 8 features, one layer. Patch 48 is IPT's own window; 12 is the smallest the tests use elsewhere.
SMALL = {"patch_dim": 3, "n_feats": 8, "num_heads": 2, "num_layers": 1}


def _ipt(name: str, patch: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, patch_size=patch, **SMALL).eval()


def reference_forward_chop(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, patch: int, scale: int,
                           batch: int = 64) -> torch.Tensor:
    """The reference's forward_chop on one image: shave = patch/2, windows every shave/2, built with
    unfold/fold exactly as the reference does (its cut_h / cut_w are ``strip`` here)."""
    shave = patch // 2
    step = shave // 2
    s = scale
    ps, e = patch * s, step * s
    h, w = x.shape[-2:]
    h_cut, w_cut = (h - patch) % step, (w - patch) % step
    hc, wc = (h - h_cut) * s, (w - w_cut) * s

    def windows(t: torch.Tensor) -> torch.Tensor:
        cols = F.unfold(t, patch, stride=step)  # 1 × (C·P·P) × L
        return cols.transpose(0, 2).reshape(cols.shape[-1], -1, patch, patch)

    def forward(tiles: torch.Tensor) -> torch.Tensor:
        return torch.cat([model(tiles[i:i + batch]) for i in range(0, len(tiles), batch)])

    def fold(y: torch.Tensor, size: tuple[int, int], kernel: tuple[int, int]) -> torch.Tensor:
        return F.fold(y.reshape(y.shape[0], -1, 1).transpose(0, 2), size, kernel, stride=e)

    def average(y: torch.Tensor, size: tuple[int, int], kernel: tuple[int, int]) -> torch.Tensor:
        ones = torch.ones(1, y.shape[1], *size)
        return fold(y, size, kernel) / F.fold(F.unfold(ones, kernel, stride=e), size, kernel, stride=e)

    def strip(t: torch.Tensor, horizontal: bool) -> torch.Tensor:
        y = forward(windows(t))
        if horizontal:  # cut_h: a row of windows, centres averaged along the width
            out = fold(y, (ps, wc), (ps, ps))
            out[..., :, e:wc - e] = average(y[..., :, e:ps - e], (ps, wc - shave * s), (ps, ps - shave * s))
        else:  # cut_w
            out = fold(y, (hc, ps), (ps, ps))
            out[..., e:hc - e, :] = average(y[..., e:ps - e, :], (hc - shave * s, ps), (ps - shave * s, ps))
        return out

    y_hw_cut = model(x[..., h - patch:, w - patch:])
    y_h_cut, y_w_cut = strip(x[..., h - patch:, :], True), strip(x[..., :, w - patch:], False)
    y_h_top, y_w_top = strip(x[..., :patch, :], True), strip(x[..., :, :patch], False)
    y_unfold = forward(windows(x))
    y = fold(y_unfold, (hc, wc), (ps, ps))
    y[..., :ps, :] = y_h_top
    y[..., :, :ps] = y_w_top
    inner = (ps - shave * s, ps - shave * s)
    y[..., e:hc - e, e:wc - e] = average(y_unfold[..., e:ps - e, e:ps - e], (hc - shave * s, wc - shave * s), inner)
    a, b = (patch - h_cut) / 2 * s, (patch - w_cut) / 2 * s
    y = torch.cat([y[..., :y.shape[2] - int(a), :], y_h_cut[..., int(a + 0.5):, :]], dim=2)
    y_w_cat = torch.cat([y_w_cut[..., :y_w_cut.shape[2] - int(a), :], y_hw_cut[..., int(a + 0.5):, :]], dim=2)
    return torch.cat([y[..., :, :y.shape[3] - int(b)], y_w_cat[..., :, int(b + 0.5):]], dim=3)


def _reference(model: torch.nn.Module, x: torch.Tensor, patch: int, scale: int) -> torch.Tensor:
    with torch.no_grad():
        return reference_forward_chop(lambda t: model(t * 255) / 255, x, patch, scale)


@pytest.mark.parametrize(("name", "patch", "scale"), [
    ("ipt-denoise", 48, 1), ("ipt-denoise", 12, 1), ("ipt-sr-x2", 12, 2), ("ipt-sr-x3", 12, 3), ("ipt-sr-x4", 12, 4),
])
def test_chop_equals_reference_forward_chop_on_odd_sizes(name: str, patch: int, scale: int) -> None:
    model = _ipt(name, patch)
    x = torch.rand(1, 3, 61, 77, generator=torch.Generator().manual_seed(1))
    expected = _reference(model, x, patch, scale)
    assert expected.shape == (1, 3, 61 * scale, 77 * scale)
    got = restore_tensor(model, x, InferenceOptions(tiling="chop", clamp=False, device="cpu"))
    assert (got - expected).abs().max() <= 1e-5
    # and it is the default of IPT models
    default = restore_tensor(model, x, InferenceOptions(clamp=False, device="cpu"))
    assert torch.equal(default, got)
    # the comparison can fail: blended tiles of the same model differ from the reference's chop
    blend = restore_tensor(model, x, InferenceOptions(tiling="blend", clamp=False, device="cpu"))
    assert blend.shape == got.shape and (blend - expected).abs().max() > 1e-3


@pytest.mark.parametrize(("h", "w"), [(12, 12), (13, 24), (24, 13), (50, 39)])
def test_chop_matches_reference_at_edge_sizes(h: int, w: int) -> None:
    # A single window, no cut, a cut of 1 on one side only, and a batch of two (the reference runs one image).
    model = _ipt("ipt-sr-x3", 12)
    x = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(h * w))
    expected = torch.cat([_reference(model, x[i:i + 1], 12, 3) for i in range(2)])
    got = restore_tensor(model, x, InferenceOptions(clamp=False, tile_batch=5))
    assert (got - expected).abs().max() <= 1e-5


def test_chop_arithmetic_of_ipt_48() -> None:
    # 61 rows: windows at 0 and 12 (up to row 60), the last at 13; the grid's output switches at
    # 60 - (48 - 1) // 2 = 37 and the last window is used from its row 24 on (24 + 37 = 61).
    assert chop_grid(61, 48) == (0, 12) and chop_starts(61, 48) == (0, 12, 13)
    assert chop_split(61, 48, 1) == (37, 24)
    assert chop_starts(60, 48) == (0, 12)
    # ×3, 77 columns: grid 0..24 (to 72), cut 5, (48 - 5)·3 = 129 output pixels split 64 / 65
    assert chop_split(77, 48, 3) == (216 - 64, 65)


def test_images_smaller_than_the_window_are_padded() -> None:
    model = _ipt("ipt-denoise", 12)
    x = torch.rand(1, 3, 7, 30)
    got = restore_tensor(model, x, InferenceOptions(clamp=False))
    assert got.shape == (1, 3, 7, 30)
    padded = F.pad(x, (0, 0, 0, 5), mode="reflect")
    torch.testing.assert_close(got, _reference(model, padded, 12, 1)[..., :7, :], atol=1e-5, rtol=0)


def test_ensemble_wraps_the_whole_chop() -> None:
    from restorekit.inference import dihedral, dihedral_inverse

    model = _ipt("ipt-sr-x2", 12)
    x = torch.rand(1, 3, 25, 31)
    expected = sum(dihedral_inverse(_reference(model, dihedral(x, k), 12, 2), k) for k in range(8)) / 8
    got = restore_tensor(model, x, InferenceOptions(clamp=False, ensemble=True))
    assert (got - expected).abs().max() <= 1e-5


def test_tiling_option_is_checked() -> None:
    assert model_info("ipt-sr-x4").tiling == "chop" and model_info("dncnn-s").tiling == ""
    model = _ipt("ipt-denoise", 12)
    x = torch.rand(1, 3, 30, 30)
    with pytest.raises(RestoreKitError, match="unknown tiling 'fold'; valid: chop, blend"):
        restore_tensor(model, x, InferenceOptions(tiling="fold"))
    with pytest.raises(RestoreKitError, match=r"overlap 4 applies to tiling 'blend'.*--tiling blend"):
        restore_tensor(model, x, InferenceOptions(overlap=4))
    blend = restore_tensor(model, x, InferenceOptions(tiling="blend", overlap=4))
    assert blend.shape == (1, 3, 30, 30)
    dncnn = create_model("dncnn-s")
    with pytest.raises(RestoreKitError, match="tiling 'chop' .* is for fixed-size models; model dncnn-s"):
        restore_tensor(dncnn, torch.rand(1, 1, 20, 20), InferenceOptions(tiling="chop"))


def _tensor(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.array(PIL.Image.open(path).convert("RGB"))).permute(2, 0, 1)[None].float() / 255


def test_cli_tiling_flag(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    parser = build_parser()
    for command in (["restore", "in.png", "-o", "out.png"], ["eval", "--data", "BSD68"]):
        assert _inference_options(parser.parse_args(command)).tiling is None
        assert _inference_options(parser.parse_args([*command, "--tiling", "blend"])).tiling == "blend"
        assert _inference_options(parser.parse_args([*command, "--tiling", "chop"])).tiling == "chop"
    assert main(["restore", "in.png", "-o", "out.png", "--tiling", "fold"]) == 2
    assert "invalid choice: 'fold'" in capsys.readouterr().err

    # end to end: the written images are restore_tensor's with the chosen tiling, and the two differ
    model = _ipt("ipt-denoise", 12)
    weights = save_checkpoint(tmp_path / "ipt.safetensors", model)
    pixels = np.random.default_rng(0).integers(0, 256, (29, 35, 3), dtype=np.uint8)
    PIL.Image.fromarray(pixels).save(tmp_path / "in.png")
    x = _tensor(tmp_path / "in.png")
    written = {}
    for tiling in ("chop", "blend"):
        out = tmp_path / f"{tiling}.png"
        assert main(["restore", str(tmp_path / "in.png"), "-o", str(out), "--weights", str(weights),
                     "--device", "cpu", "--tiling", tiling, "--precision", "fp32"]) == 0
        written[tiling] = _tensor(out)
        expected = restore_tensor(model, x, InferenceOptions(tiling=tiling, device="cpu"))
        assert (written[tiling] - expected).abs().max() <= 0.5 / 255 + 1e-6  # 8-bit rounding only
    assert (written["chop"] - written["blend"]).abs().max() >= 2 / 255

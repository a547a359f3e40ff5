"""The xUnit authors' released xDnCNN (kligvasser/xUnit @ e12a65b, 2018, denoising/models.py and
denoising/checkpoints/): its layout, the converter, the real files, the published numbers."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from torch import nn

from conftest import randomise_batchnorm, shared_path
from restorekit.checkpoints import load_state_dict_strict
from restorekit.cli import main
from restorekit.convert import convert_checkpoint, convert_file
from restorekit.errors import RestoreKitError
from restorekit.eval.published import published_value
from restorekit.inference import InferenceOptions, restore_tensor
from restorekit.models import count_parameters, create_model, model_info


# --- the released code's layer order, re-written: cells of conv → x·exp(−(BN(dw9×9(ReLU(BN(x)))))²),
# cells 2..8 behind a BatchNorm, a 3×3 output conv; the network returns the noise.
class _Gaussian(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(-x * x)


class _Cell(nn.Module):
    def __init__(self, cin: int, features: int = 64) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(cin, features, 3, padding=1))
        self.module = nn.Sequential(
            nn.BatchNorm2d(features), nn.ReLU(), nn.Conv2d(features, features, 9, padding=4, groups=features),
            nn.BatchNorm2d(features), _Gaussian(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.features(x)
        return y * self.module(y)


class Released2018(nn.Module):
    def __init__(self, features: int = 64) -> None:
        super().__init__()
        self.md1 = nn.Sequential(_Cell(1, features))
        for i in range(2, 9):
            setattr(self, f"md{i}", nn.Sequential(nn.BatchNorm2d(features), _Cell(features, features)))
        self.joints = nn.Conv2d(features, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(1, 9):
            x = getattr(self, f"md{i}")(x)
        return self.joints(x)


def _reference(seed: int = 0) -> Released2018:
    torch.manual_seed(seed)
    ref = randomise_batchnorm(Released2018())
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, nn.Conv2d):
                m.bias.uniform_(-0.1, 0.1)
    return ref.eval()


def _released_state(ref: nn.Module) -> dict[str, torch.Tensor]:
    # As the authors saved it (PyTorch 0.3): no BatchNorm counters.
    return {k: v for k, v in ref.state_dict().items() if not k.endswith("num_batches_tracked")}


def test_released_layout_converts_and_matches_the_reference_code(tmp_path: Path) -> None:
    ref = _reference()
    path = tmp_path / "xdncnn_res_f64k3k9_s25.pkl"
    torch.save(_released_state(ref), path)
    conv = convert_file(path)
    assert (conv.arch, conv.args) == ("xdncnn-2018", {})
    model = create_model(conv.arch, **conv.args)
    load_state_dict_strict(model, conv.state_dict)
    model.eval()
    x = torch.rand(2, 1, 37, 45, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        noise = ref(x)
        assert (model.noise(x) - noise).abs().max() <= 1e-5
        assert noise.abs().mean() > 5e-3  # 500× the tolerance: the comparison means something
    # through the inference path (BN folding, clean = noisy − net(noisy)) and a restorekit checkpoint
    got = restore_tensor(model, x, InferenceOptions(clamp=False, device="cpu"))
    assert (got - (x - noise)).abs().max() <= 1e-5
    saved = tmp_path / "x.safetensors"
    convert_checkpoint(path, saved)
    from restorekit.checkpoints import load

    again = restore_tensor(load(saved), x, InferenceOptions(clamp=False, device="cpu"))
    assert (again - (x - noise)).abs().max() <= 1e-5


def test_converter_is_strict(tmp_path: Path) -> None:
    state = _released_state(_reference())
    with_counters = _reference().state_dict()
    torch.save(with_counters, tmp_path / "counters.pth")  # saved by a newer PyTorch: counters accepted
    assert convert_file(tmp_path / "counters.pth").arch == "xdncnn-2018"
    cases = {
        "missing": ({k: v for k, v in state.items() if k != "md4.1.module.2.weight"}, r"missing: body\.10\.features\.2\.weight"),
        "extra": ({**state, "md9.0.weight": torch.ones(64)}, r"unexpected keys: md9\.0\.weight"),
        "shape": ({**state, "md1.0.module.2.weight": torch.ones(64, 1, 7, 7)},
                  r"shapes: body\.1\.features\.2\.weight \(64, 1, 7, 7\) \(expected \(64, 1, 9, 9\)\)"),
    }
    for name, (edited, message) in cases.items():
        torch.save(edited, tmp_path / f"{name}.pkl")
        with pytest.raises(RestoreKitError, match=r"the xUnit 2018 layout .* " + message):
            convert_file(tmp_path / f"{name}.pkl")


def test_variants_say_which_layout_is_which(capsys: pytest.CaptureFixture[str]) -> None:
    released, paper = model_info("xdncnn-2018"), model_info("xdncnn-gray")
    assert "authors released" in released.description and "e12a65b" in released.description
    assert "paper's layout" in paper.description
    assert (released.params, released.channels, released.protocol) == (304_641, 1, "dncnn")
    assert count_parameters(create_model("xdncnn-2018")) == 304_641
    assert main(["models"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert "authors released" in lines["xdncnn-2018"] and "paper's layout" in lines["xdncnn-gray"]


def test_published_numbers_belong_to_the_released_weights() -> None:
    for sigma, paper, measured in ((25, 29.21, 29.225), (50, 26.26, 26.265)):
        name = f"xdncnn_res_f64k3k9_s{sigma}.pkl"
        assert published_value(f"../shared/weights/xunit-2018/{name}", "BSD68", sigma).psnr == paper
        assert published_value(name, "BSD68", sigma, kind="measured").psnr == measured
        assert published_value("xdncnn-2018", "BSD68", sigma).psnr == paper
    assert published_value("xdncnn_res_f64k3k9_s25.pkl", "BSD68", 50) is None
    assert published_value("xdncnn_res_f64k3k9_s25.pkl", "Set12", 25) is None


# --- the real files (../shared/weights/xunit-2018)

_SHA256 = {25: ("7b291502", "967a0b"), 50: ("aaccbb5a", "476ef1")}


@pytest.mark.parametrize("sigma", [25, 50])
def test_real_files_convert(sigma: int) -> None:
    path = shared_path("weights", "xunit-2018", f"xdncnn_res_f64k3k9_s{sigma}.pkl")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest.startswith(_SHA256[sigma][0]) and digest.endswith(_SHA256[sigma][1])
    conv = convert_file(path)
    assert (conv.arch, conv.args) == ("xdncnn-2018", {})
    model = create_model(conv.arch)
    load_state_dict_strict(model, conv.state_dict, source=str(path))
    # 304,641 parameters (BN running statistics not counted), as many as the file holds; the paper states "303K"
    assert count_parameters(model) == 304_641
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert sum(v.numel() for k, v in raw.items() if "running_" not in k) == 304_641
    # the file is the released code's state dict: it loads into the layer order re-written above
    Released2018().load_state_dict(raw, strict=True)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1 / float(((a - b) ** 2).mean()))


def test_real_weights_denoise_bsd68_crops_as_the_reference_code() -> None:
    path = shared_path("weights", "xunit-2018", "xdncnn_res_f64k3k9_s25.pkl")
    folder = shared_path("data", "denoise", "BSD68")
    conv = convert_file(path)
    model = create_model(conv.arch)
    load_state_dict_strict(model, conv.state_dict)
    ref = Released2018().eval()
    ref.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    gen = torch.Generator().manual_seed(0)
    gains = []
    for name in ("test001.png", "test002.png", "test003.png"):
        gray = np.asarray(PIL.Image.open(folder / name).convert("L"), dtype=np.float32) / 255
        clean = torch.from_numpy(gray.copy())[None, None, 100:196, 150:246]
        noisy = clean + 25 / 255 * torch.randn(clean.shape, generator=gen)
        with torch.no_grad():
            expected = (noisy - ref(noisy)).clamp(0, 1)
        got = restore_tensor(model, noisy, InferenceOptions(device="cpu"))
        assert (got - expected).abs().max() <= 1e-5
        gains.append(_psnr(got, clean) - _psnr(noisy.clamp(0, 1), clean))
    # these textured 96² crops gain 6.1–6.7 dB (whole BSD68: 20.6 → 29.2 dB); a wrongly wired net gains nothing
    assert min(gains) > 5.0, gains

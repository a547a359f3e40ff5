"""Export to ONNX and TorchScript: [0, 1] RGB in and out, dynamic sizes, the file agrees with PyTorch."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn

from restorekit.errors import RestoreKitError
from restorekit.export import export_model
from restorekit.inference import InferenceOptions, restore_tensor
from restorekit.models import ModelInfo, create_model

HAVE_ORT = importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None
needs_ort = pytest.mark.skipif(not HAVE_ORT, reason="onnx/onnxruntime not installed (pip install 'restorekit[export]')")


def _one_thread_ort():  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return options


def _model(name: str) -> nn.Module:
    torch.manual_seed(0)
    model = create_model(name)
    with torch.no_grad():
        for m in model.modules():  # BN away from identity, so that its statistics matter
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    return model


@needs_ort
@pytest.mark.parametrize("name", ["dncnn-s-folded", "durn-p", "mprnet-derain"])
def test_onnx_matches_pytorch(name: str, tmp_path: Path) -> None:
    model = _model(name)
    channels = model.info.channels
    example = torch.rand(1, channels, 36, 44)
    path = tmp_path / f"{name}.onnx"
    result = export_model(model, path, format="onnx", example=example)
    assert Path(result["path"]) == path and path.stat().st_size > 0
    assert result["dynamic"] and len(result["checked_sizes"]) == 2
    assert result["checked_sizes"][1][2:] != result["checked_sizes"][0][2:]
    assert result["max_abs_diff"] < 1e-4
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind

    # The file alone reproduces the inference path on a size multiple: [0, 1] RGB in and out.
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), _one_thread_ort(), providers=["CPUExecutionProvider"])
    x = torch.rand(1, channels, 40, 48)
    got = session.run(None, {"input": x.numpy()})[0]
    expected = restore_tensor(model, x, InferenceOptions(clamp=False, device="cpu"))
    assert abs(got - expected.numpy()).max() < 1e-4


class FirstChannel(nn.Module):
    """Returns channel 0 of what it sees (B, for a BGR model), times its input range."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[:, 0] = 1.0
        self.info = ModelInfo(name="first", family="toy", task="t", channels=3, input_range=255.0, color_order="bgr")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


@needs_ort
def test_onnx_handles_range_and_colour_order_inside(tmp_path: Path) -> None:
    model = FirstChannel()
    result = export_model(model, tmp_path / "first.onnx")
    import onnxruntime as ort

    x = torch.rand(1, 3, 5, 7)
    session = ort.InferenceSession(result["path"], _one_thread_ort(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x.numpy()})[0]
    assert abs(got - x[:, 2:3].expand(-1, 3, -1, -1).numpy()).max() < 1e-6


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit is deprecated in favour of torch.export
def test_torchscript_matches_pytorch(tmp_path: Path) -> None:
    model = _model("mprnet-derain")
    result = export_model(model, tmp_path / "m.pt", format="torchscript")
    assert result["max_abs_diff"] < 1e-5 and len(result["checked_sizes"]) == 2
    loaded = torch.jit.load(result["path"])
    x = torch.rand(1, 3, 24, 32)
    expected = restore_tensor(model, x, InferenceOptions(clamp=False, device="cpu"))
    torch.testing.assert_close(loaded(x), expected, atol=1e-5, rtol=0)


@needs_ort
def test_ipt_exports_fixed_size(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("ipt-sr-x2", patch_size=12, patch_dim=3, n_feats=8, num_heads=2, num_layers=1)
    result = export_model(model, tmp_path / "ipt.onnx", example=torch.rand(1, 3, 20, 20))
    assert not result["dynamic"] and result["opset"] >= 18
    assert result["checked_sizes"] == [[1, 3, 12, 12]]
    assert result["max_abs_diff"] < 1e-4


def test_export_errors(tmp_path: Path) -> None:
    model = _model("dncnn-s-folded")
    with pytest.raises(RestoreKitError, match="valid: onnx, torchscript"):
        export_model(model, tmp_path / "x.bin", format="tflite")
    with pytest.raises(RestoreKitError, match=r"N×1×H×W"):
        export_model(model, tmp_path / "x.pt", format="torchscript", example=torch.rand(1, 3, 8, 8))
    assert not any(tmp_path.iterdir())
    (tmp_path / "taken.pt").write_bytes(b"keep")
    with pytest.raises(RestoreKitError, match="already exists"):
        export_model(model, tmp_path / "taken.pt", format="torchscript", overwrite=False)
    assert (tmp_path / "taken.pt").read_bytes() == b"keep"

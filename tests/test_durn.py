"""DuRN family: parameter counts, shapes, gradients, reference quirks and the checkpoint converter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from PIL import Image

from restorekit.checkpoints import load_state_dict_strict
from restorekit.convert import convert_file
from restorekit.convert.durn import SOURCE_FORMAT, from_durn
from restorekit.errors import RestoreKitError
from restorekit.models import count_parameters, create_model, model_info
from restorekit.models.durn import InsNorm

# name: (params of the reference's default construction, channels, size_multiple, colour order, task)
TABLE = {
    "durn-p": (816_225, 1, 1, "rgb", "denoise"),
    "durn-p-nonorm": (815_651, 3, 1, "rgb", "denoise-real"),
    "durn-u": (12_856_579, 3, 4, "rgb", "deblur"),
    "durn-us": (9_070_915, 3, 4, "rgb", "dehaze"),
    "durn-s": (3_729_923, 3, 1, "rgb", "derain"),
    "durn-s-p": (10_176_964, 3, 4, "bgr", "deraindrop"),
}
# Keys of the reference's ``cleaner.state_dict()`` under PyTorch 0.3 (no num_batches_tracked), and
# BatchNorm layers (one num_batches_tracked each in our state dict).
REF_KEYS = {"durn-p": (164, 27), "durn-p-nonorm": (56, 0), "durn-u": (150, 0), "durn-us": (208, 0),
            "durn-s": (248, 39), "durn-s-p": (289, 46)}
# A few reference key names and shapes, read off pietorch/DuRN_*.py.
REF_SAMPLES = {
    "durn-p": {"conv1.conv2d.weight": (32, 1, 3, 3), "block6.up_conv.conv2d.weight": (32, 32, 11, 11),
               "block4.down_norm.norm.running_var": (32,)},
    "durn-p-nonorm": {"conv4.conv2d.weight": (3, 32, 3, 3), "block5.down_conv.conv2d.weight": (32, 32, 5, 5)},
    "durn-u": {"conv1.weight": (64, 3, 7, 7), "rud1.norm_pre.norm.shift": (512,), "rud2.up_conv.conv2d.weight":
               (128, 128, 7, 7), "upconv1.conv2d.weight": (512, 256, 1, 1), "end_conv.weight": (3, 64, 7, 7)},
    "durn-us": {"rud12.conv_pre.conv2d.weight": (256, 64, 3, 3), "rud1.se.se.fc.0.weight": (32, 64),
                "rud5.up_conv.conv2d.weight": (64, 64, 11, 11), "rud3.se.conv2.weight": (64, 64, 3, 3)},
    "durn-s": {"block1.se.se.fc.0.weight": (32, 64), "block1.se.bn2.running_mean": (64,),
               "block6.up_conv.conv2d.weight": (64, 64, 11, 11)},
    "durn-s-p": {"conv1.weight": (64, 3, 5, 5), "rud1.se.se.fc.0.weight": (64, 128), "rud3.down_conv.conv2d.weight":
                 (128, 128, 3, 3), "rud4.down_conv.conv2d.weight": (128, 128, 5, 5), "deconv1.0.weight":
                 (128, 128, 4, 4), "deconv2.0.weight": (128, 64, 4, 4), "prelu.weight": (1,)},
}
UNUSED = ("prelu.weight", ".shift")  # defined but never used by the reference's forward
SMALL = ["durn-p", "durn-p-nonorm", "durn-us", "durn-s", "durn-s-p"]  # DuRN-U is run once, separately


def _build(name: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = create_model(name)
    for mod in model.modules():  # non-trivial BN statistics, so that loading them is checked too
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.normal_(0, 0.1)
            mod.running_var.uniform_(0.5, 1.5)
    return model


def _input(name: str, h: int = 16, w: int = 20) -> torch.Tensor:
    return torch.rand(1, TABLE[name][1], h, w, generator=torch.Generator().manual_seed(1))


def _padded(model: torch.nn.Module, x: torch.Tensor, multiple: int) -> torch.Tensor:
    """What the inference path does: reflect-pad bottom/right to a multiple, run, crop back."""
    h, w = x.shape[-2:]
    y = model(F.pad(x, (0, -w % multiple, 0, -h % multiple), mode="reflect"))
    return y[..., :h, :w]


def _reference_state(model: torch.nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    """The model's weights under the reference's key names, as PyTorch 0.3 saved them."""
    return {prefix + k: v.clone() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def _assert_grads(model: torch.nn.Module, x: torch.Tensor) -> None:
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name, p in model.named_parameters():
        if name.endswith(UNUSED):
            assert p.grad is None, name
        else:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("name", list(TABLE))
def test_parameter_count_and_metadata(name: str) -> None:
    params, channels, multiple, order, task = TABLE[name]
    with torch.device("meta"):
        model = create_model(name)
    assert count_parameters(model) == params
    info = model_info(name)
    assert (info.params, info.channels, info.size_multiple, info.color_order, info.task) == (
        params, channels, multiple, order, task)
    assert info.input_range == 1.0 and info.family == "durn"
    state = model.state_dict()
    n_keys, n_bn = REF_KEYS[name]
    assert len(_reference_state(model)) == n_keys
    assert sum(k.endswith("num_batches_tracked") for k in state) == n_bn
    for key, shape in REF_SAMPLES[name].items():
        assert tuple(state[key].shape) == shape, key


@pytest.mark.parametrize("name", SMALL)
def test_forward_gradients_and_reference_round_trip(name: str, tmp_path: Path) -> None:
    multiple = TABLE[name][2]
    # Near the smallest sizes the reflection pads allow (DuRB-P's 11×11 dilation-3 conv pads by 15,
    # DuRN-S-P's 7×7 convs at 1/4 scale by 3).
    h, w = (16, 20) if multiple > 1 else (17, 21)
    source = _build(name, seed=0).train()
    x = _input(name, h, w).requires_grad_(True)
    y = source(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().mean().backward()
    _assert_grads(source, x)
    if multiple > 1:
        with pytest.raises(ValueError, match="divisible by 4"):
            source(_input(name, 17, 21))

    path = tmp_path / f"{name}_model.pt"
    # One DataParallel-style save, one in the pre-1.6 (non-zip) format the official files use.
    torch.save(_reference_state(source, "module." if name == "durn-s" else ""), path,
               _use_new_zipfile_serialization=name != "durn-p")
    conv = convert_file(path)
    assert (conv.arch, conv.args, conv.source_format) == (name, {"channels": TABLE[name][1]}, SOURCE_FORMAT)
    target = _build(name, seed=1).eval()
    assert not torch.equal(next(target.parameters()), next(source.parameters()))  # so that loading is what matters
    load_state_dict_strict(target, conv.state_dict)
    odd = _input(name, 17, 21)  # padded to a multiple of 4 where needed, as the inference path does
    with torch.no_grad():
        out = _padded(target, odd, multiple)
        assert out.shape == odd.shape
        assert torch.equal(out, _padded(source.eval(), odd, multiple))


def test_durn_u_round_trip_odd_size_and_gradients(tmp_path: Path) -> None:
    # The 12.8M-parameter model: one forward/backward, on the converted weights.
    source = _build("durn-u", seed=0)
    path = tmp_path / "DuRN_U_model.pt"
    torch.save(_reference_state(source), path)
    conv = convert_file(path)
    assert (conv.arch, conv.args, conv.source_format) == ("durn-u", {"channels": 3}, SOURCE_FORMAT)
    model = _build("durn-u", seed=1)
    load_state_dict_strict(model, conv.state_dict)
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    x = _input("durn-u", 17, 21).requires_grad_(True)
    y = _padded(model, x, 4)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().mean().backward()
    _assert_grads(model, x)
    with pytest.raises(ValueError, match="divisible by 4"):
        model(torch.zeros(1, 3, 17, 21))


def test_num_batches_tracked_added(tmp_path: Path) -> None:
    model = _build("durn-p")
    conv = from_durn(_reference_state(model), tmp_path / "x.pt")
    assert conv is not None and conv.notes["num_batches_tracked_added"] == 27
    assert conv.state_dict["block1.norm1.norm.num_batches_tracked"].dtype == torch.long
    assert set(conv.state_dict) == set(model.state_dict())


@pytest.mark.parametrize("name", ["durn-p", "durn-s-p"])
def test_residual_sign(name: str) -> None:
    # Zero final conv + bias b: DuRN-S-P returns x − tanh(b), the others x + tanh(b).
    model = _build(name).eval()
    last = model.end_conv.conv2d if name == "durn-s-p" else model.conv4.conv2d
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(0.5)
        x = _input(name)
        sign = -1.0 if name == "durn-s-p" else 1.0
        torch.testing.assert_close(model(x), x + sign * torch.tanh(torch.tensor(0.5)))


def test_insnorm_adds_scale_not_shift() -> None:
    norm = InsNorm(4)
    x = torch.randn(2, 4, 5, 6)
    with torch.no_grad():
        norm.shift.fill_(3.0)
        x_hat = (x - x.mean((2, 3), keepdim=True)) / torch.sqrt(x.var((2, 3), unbiased=False, keepdim=True) + 1e-9)
        scale = norm.scale.view(1, -1, 1, 1)
        torch.testing.assert_close(norm(x), x_hat * scale + scale)


def test_other_layouts_are_not_durn(tmp_path: Path) -> None:
    dncnn = create_model("dncnn-s").state_dict()
    saoyan = {"dncnn." + k[len("body."):]: v for k, v in dncnn.items()}
    assert from_durn(dncnn, tmp_path / "a.pth") is None
    assert from_durn(saoyan, tmp_path / "b.pth") is None
    path = tmp_path / "net.pth"
    torch.save({"module." + k: v for k, v in saoyan.items()}, path)
    try:
        arch = convert_file(path).arch
    except RestoreKitError:
        arch = None
    assert arch is None or not arch.startswith("durn")


def test_durn_layout_with_wrong_shape_is_reported(tmp_path: Path) -> None:
    with torch.device("meta"):
        bad = _reference_state(create_model("durn-p"))
    bad["block1.up_conv.conv2d.weight"] = torch.zeros(32, 32, 3, 3)
    with pytest.raises(RestoreKitError, match="unexpected shapes"):
        from_durn(bad, tmp_path / "c.pth")


@pytest.mark.parametrize("name", ["durn-p", "durn-p-nonorm", "durn-u", "durn-us", "durn-s", "durn-s-p", "dncnn"])
def test_zeroing_the_output_layer_makes_the_identity(name: str) -> None:
    from restorekit.models import zero_output_layer
    from restorekit.models.dncnn import DnCNN

    torch.manual_seed(0)
    # DnCNN-S's tiny BN scales already start it within 1e-20 of the identity: a DnCNN without BN here
    model = (DnCNN(1, depth=5, batch_norm=False) if name == "dncnn" else create_model(name)).eval()
    x = torch.rand(1, model.channels, 36, 36)
    with torch.no_grad():
        assert (model(x) - x).abs().max() > 1e-3  # a random residual
        zero_output_layer(model)
        assert torch.equal(model(x), x)


def test_identity_init_in_training_and_its_errors(tmp_path: Path) -> None:
    from restorekit.models import zero_output_layer
    from restorekit.train import build_config, distributed
    from restorekit.train.loop import Trainer

    data = tmp_path / "imgs"
    data.mkdir()
    for i in range(2):
        Image.fromarray((np.random.default_rng(i).random((40, 40)) * 255).astype(np.uint8)).save(data / f"{i}.png")
    cfg = build_config({"model": {"name": "durn-p", "identity_init": True},
                        "data": {"train": {"root": str(data), "patch": {"size": 32},
                                           "degradation": {"name": "gaussian-noise", "params": {"sigma": 30}}}},
                        "train": {"steps": 1, "batch_size": 2, "progress": False, "tensorboard": False, "plot": False}})
    trainer = Trainer(cfg, tmp_path / "run", distributed.setup("cpu"))
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(trainer.model.eval()(x), x)
    with pytest.raises(RestoreKitError, match="identity_init and init_from"):
        build_config(cfg.to_dict(), ["model.init_from=x.safetensors"])
    with pytest.raises(RestoreKitError, match="mprnet-derain has no output layer"):
        zero_output_layer(create_model("mprnet-derain"))

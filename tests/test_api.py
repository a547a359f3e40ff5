"""The Python API takes what the CLI takes: rk.load and rk.create_model(pretrained=True)."""

from __future__ import annotations

import pytest
import torch

import restorekit as rk
from restorekit.checkpoints import read_checkpoint
from restorekit.errors import RestoreKitError
from restorekit.pretrained import builtin_path


def test_load_takes_a_builtin_name_and_equals_the_shipped_file() -> None:
    model = rk.load("default-gray")
    state, meta = read_checkpoint(builtin_path("default-gray"))
    assert model.info.name == meta["arch"] == "resunet-gray" and not model.training
    # stored as float16 (half the package), loaded into the model's float32
    assert meta["stored_dtype"] == "float16" and all(v.dtype == torch.float16 for v in state.values())
    assert all(torch.equal(model.state_dict()[k], v.float()) for k, v in state.items())


def test_load_converts_an_official_file(tmp_path) -> None:
    from restorekit.models import create_model

    ref = create_model("dncnn-9")  # a SaoYan-style state dict, as its training script saves it
    torch.save({f"module.{k.replace('body', 'dncnn')}": v for k, v in ref.state_dict().items()}, tmp_path / "net.pth")
    model = rk.load(tmp_path / "net.pth")
    assert model.info.name == "dncnn-9"
    with pytest.raises(RestoreKitError, match="no such weights file"):
        rk.load(tmp_path / "missing.pth")


def test_create_model_pretrained_loads_builtin_weights_or_says_where_they_are() -> None:
    plain = rk.create_model("resunet-color-opp")
    trained = rk.create_model("resunet-color-opp", pretrained=True)
    shipped, _ = read_checkpoint(builtin_path("default-color"))
    assert all(torch.equal(trained.state_dict()[k], v) for k, v in shipped.items())
    assert not all(torch.equal(plain.state_dict()[k], v) for k, v in shipped.items())
    with pytest.raises(RestoreKitError) as err:
        rk.create_model("mprnet-derain", pretrained=True)
    message = str(err.value)
    assert "no built-in weights" in message and "weights=" in message and "--weights" not in message
    assert "github.com/swz30/MPRNet" in message
    with pytest.raises(RestoreKitError, match="drop channels"):
        rk.create_model("resunet-gray", pretrained=True, channels=3)

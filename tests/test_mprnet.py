"""MPRNet: reference parameter counts, shapes, the shared PReLU, the official-checkpoint converter."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from restorekit.checkpoints import checkpoint_metadata, load, save_checkpoint
from restorekit.convert import convert_file
from restorekit.convert.mprnet import convert_mprnet
from restorekit.errors import RestoreKitError
from restorekit.models import count_parameters, create_model, model_info
from restorekit.models.mprnet import CAB, MPRNet, SharedActivation, prelu_alias_keys

# Counts of the reference code's default constructions (swz30/MPRNet, per task folder).
REFERENCE_PARAMS = {"mprnet-deblur": 20_127_073, "mprnet-denoise": 15_741_025, "mprnet-derain": 3_637_249}


@pytest.fixture(scope="module")
def derain() -> MPRNet:
    torch.manual_seed(0)
    model = create_model("mprnet-derain").eval()
    with torch.no_grad():
        model.act.weight.fill_(0.1)  # away from PReLU's 0.25 default, so a lost value shows
    return model


def _reference_layout(model: MPRNet) -> dict[str, torch.Tensor]:
    """The official file's key layout: ``module.``-prefixed, the PReLU under every CAB, one storage."""
    shared = model.act.weight.detach().clone()
    cab_prefixes = {k[: -len(".body.1.weight")] for k in prelu_alias_keys(model)}
    out: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        if key == "act.weight":
            continue
        out["module." + key] = value.clone()
        if key.endswith(".body.0.weight") and key[: -len(".body.0.weight")] in cab_prefixes:
            out["module." + key[: -len("0.weight")] + "1.weight"] = shared
    return out


def _save_official(sd: dict[str, torch.Tensor], path: Path) -> Path:
    torch.save({"epoch": 250, "state_dict": sd, "optimizer": {}}, path)
    return path


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_parameter_counts_and_metadata(name: str) -> None:
    model = create_model(name)
    assert sum(p.numel() for p in model.parameters()) == REFERENCE_PARAMS[name]
    assert count_parameters(model) == model.info.params == REFERENCE_PARAMS[name]
    info = model_info(name)
    assert (info.family, info.channels, info.input_range, info.size_multiple, info.output_index) == (
        "mprnet", 3, 1.0, 8, 0)
    assert info.task == {"mprnet-deblur": "deblur", "mprnet-denoise": "denoise-real", "mprnet-derain": "derain"}[name]


def test_one_prelu_shared_by_all_cabs(derain: MPRNet) -> None:
    sd = derain.state_dict()
    assert "act.weight" in sd and sd["act.weight"].shape == (1,)
    assert not [k for k in sd if k.endswith(".body.1.weight")]
    acts = [m for m in derain.modules() if isinstance(m, SharedActivation)]
    assert len(acts) == len(prelu_alias_keys(derain)) == 55
    assert all(a.shared is derain.act for a in acts)
    twin = copy.deepcopy(derain)  # e.g. an EMA copy: must share its own PReLU, not the original's
    assert all(m.body[1].shared is twin.act for m in twin.modules() if isinstance(m, CAB))


def test_forward_backward_multiple_of_8(derain: MPRNet) -> None:
    x = torch.rand(1, 3, 32, 40)
    derain.zero_grad(set_to_none=True)
    outs = derain(x)
    assert isinstance(outs, list) and len(outs) == 3
    assert all(o.shape == x.shape for o in outs)
    sum(o.square().mean() for o in outs).backward()
    assert derain.act.weight.grad is not None and derain.act.weight.grad.abs().item() > 0
    assert all(p.grad is not None for p in derain.parameters())
    derain.zero_grad(set_to_none=True)


def test_other_sizes_need_padding_to_8(derain: MPRNet) -> None:
    x = torch.rand(1, 3, 27, 35)
    h, w = x.shape[-2:]
    padded = F.pad(x, (0, -w % 8, 0, -h % 8), mode="reflect")  # right/bottom, as the reference's demo.py
    assert padded.shape[-2:] == (32, 40)
    with torch.no_grad():
        outs = [o[..., :h, :w] for o in derain(padded)]
        assert all(o.shape == x.shape for o in outs)
        with pytest.raises(RuntimeError):
            derain(torch.rand(1, 3, 20, 20))  # 10-pixel quadrants do not survive two ×0.5 levels


def test_convert_official_layout(derain: MPRNet, tmp_path: Path) -> None:
    ref = _reference_layout(derain)
    assert len(ref) == len(derain.state_dict()) - 1 + 55
    path = _save_official(ref, tmp_path / "model_deraining.pth")
    conv = convert_file(path)
    assert (conv.arch, conv.args, conv.source_format) == ("mprnet-derain", {}, "MPRNet official checkpoint")
    assert set(conv.state_dict) == set(derain.state_dict())
    assert conv.state_dict["act.weight"].item() == pytest.approx(0.1)
    model = create_model(conv.arch, **conv.args).eval()
    model.load_state_dict(conv.state_dict, strict=True)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        for a, b in zip(model(x), derain(x)):
            assert torch.equal(a, b)


def test_convert_refuses_disagreeing_prelu_copies(derain: MPRNet, tmp_path: Path) -> None:
    ref = _reference_layout(derain)
    key = "module.stage3_orsnet.orb2.body.5.body.1.weight"
    assert key in ref
    ref[key] = ref[key] + 0.5
    with pytest.raises(RestoreKitError, match="disagree"):
        convert_file(_save_official(ref, tmp_path / "edited.pth"))


def test_convert_ignores_other_layouts() -> None:
    assert convert_mprnet({"body.0.weight": torch.zeros(4, 3, 3, 3)}, Path("x.pth")) is None


def test_checkpoint_round_trip(derain: MPRNet, tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "mprnet.safetensors", derain)
    meta = checkpoint_metadata(path)
    assert meta["arch"] == "mprnet-derain" and meta["aliases"] == {}
    loaded = load(path)
    assert loaded.act.weight.item() == pytest.approx(0.1)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        for a, b in zip(loaded(x), derain(x)):
            assert torch.equal(a, b)

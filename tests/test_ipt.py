"""IPT: reference parameter counts and key layout, tasks, shapes, and the Pretrained-IPT converter."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from restorekit.checkpoints import check_state_dict, load
from restorekit.convert import convert_checkpoint, convert_file
from restorekit.convert.ipt import convert_ipt
from restorekit.errors import RestoreKitError
from restorekit.models import count_parameters, create_model
from restorekit.models.ipt import DIV2K_RGB_MEAN, PRETRAIN_TASKS, MeanShift

# 12×12 inputs of 3×3 patches: 16 tokens of 16·9 = 144 features.
SMALL = dict(patch_size=12, patch_dim=3, n_feats=16, num_heads=2, num_layers=1)
# The converter cannot read the head count from the weights and assumes 12 (144 / 12 = 12 per head).
SMALL12 = {**SMALL, "num_heads": 12}

EXPECTED_PARAMS = {"ipt-sr-x4": 115_608_155, "ipt-denoise": 115_312_731, "ipt-pretrain": 118_892_394}


@pytest.fixture(scope="module")
def full_models() -> dict[str, torch.nn.Module]:
    # Meta tensors: exact shapes and counts without allocating 3 × 115M floats.
    with torch.device("meta"):
        return {name: create_model(name) for name in EXPECTED_PARAMS}


@pytest.mark.parametrize("name", list(EXPECTED_PARAMS))
def test_parameter_counts_match_reference(full_models: dict[str, torch.nn.Module], name: str) -> None:
    model = full_models[name]
    assert count_parameters(model) == EXPECTED_PARAMS[name] == model.info.params
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen == ["sub_mean.weight", "sub_mean.bias", "add_mean.weight", "add_mean.bias"]
    assert sum(p.numel() for p in model.parameters() if not p.requires_grad) == 24


def test_full_size_body(full_models: dict[str, torch.nn.Module]) -> None:
    state = full_models["ipt-pretrain"].state_dict()
    assert state["body.encoder.layers.11.self_attn.in_proj_weight"].shape == (3 * 576, 576)
    assert "body.encoder.layers.0.self_attn.in_proj_bias" not in state
    assert "body.encoder.layers.0.self_attn.out_proj.bias" not in state
    assert state["body.encoder.layers.0.linear1.weight"].shape == (2304, 576)
    assert state["body.query_embed.weight"].shape == (6, 256 * 576)
    assert state["body.position_encoding.pe.weight"].shape == (256, 576)
    assert state["head.0.1.body.0.weight"].shape == (64, 64, 5, 5)
    assert "body.encoder.layers.12.linear1.weight" not in state


def test_metadata() -> None:
    info = create_model("ipt-pretrain", **SMALL).info
    assert (info.input_range, info.channels, info.size_multiple, info.family) == (255.0, 3, 48, "ipt")
    assert info.tasks == PRETRAIN_TASKS == ("sr-x2", "sr-x3", "sr-x4", "derain", "denoise-30", "denoise-50")
    assert info.scales == (2, 3, 4, 1, 1, 1)
    sr3 = create_model("ipt-sr-x3", **SMALL).info
    assert (sr3.scale, sr3.tasks, sr3.scales, sr3.args) == (3, ("sr-x3",), (3,), SMALL)
    with pytest.raises(RestoreKitError, match="n_feat"):
        create_model("ipt-sr-x4", n_feat=16)
    with pytest.raises(RestoreKitError, match="num_heads"):
        create_model("ipt-sr-x4", **{**SMALL, "num_heads": 5})


def _reference_keys(scales: list[int], num_layers: int) -> list[str]:
    """state_dict keys of huawei-noah/Pretrained-IPT's ``ipt`` for these scales, in its order."""
    def wb(prefix: str) -> list[str]:
        return [f"{prefix}.weight", f"{prefix}.bias"]

    keys = wb("sub_mean") + wb("add_mean")
    for i in range(len(scales)):
        keys += wb(f"head.{i}.0")
        for r in (1, 2):
            keys += wb(f"head.{i}.{r}.body.0") + wb(f"head.{i}.{r}.body.2")
    keys += wb("body.linear_encoding") + wb("body.mlp_head.0") + wb("body.mlp_head.3") + ["body.query_embed.weight"]
    for j in range(num_layers):
        p = f"body.encoder.layers.{j}"
        keys += [f"{p}.self_attn.in_proj_weight", f"{p}.self_attn.out_proj.weight"]
        keys += wb(f"{p}.linear1") + wb(f"{p}.linear2") + wb(f"{p}.norm1") + wb(f"{p}.norm2")
    for j in range(num_layers):
        p = f"body.decoder.layers.{j}"
        for attn in ("self_attn", "multihead_attn"):
            keys += [f"{p}.{attn}.in_proj_weight", f"{p}.{attn}.out_proj.weight"]
        keys += wb(f"{p}.linear1") + wb(f"{p}.linear2") + wb(f"{p}.norm1") + wb(f"{p}.norm2") + wb(f"{p}.norm3")
    keys += ["body.position_encoding.position_ids", "body.position_encoding.pe.weight"]
    for i, s in enumerate(scales):
        ups = {1: 0, 2: 1, 3: 1, 4: 2}[s]
        for u in range(ups):
            keys += wb(f"tail.{i}.0.{2 * u}")
        keys += wb(f"tail.{i}.1")
    return keys


def test_state_dict_layout_is_the_reference() -> None:
    model = create_model("ipt-pretrain", **{**SMALL, "num_layers": 2})
    state = model.state_dict()
    assert list(state) == _reference_keys([2, 3, 4, 1, 1, 1], 2)
    assert state["body.position_encoding.position_ids"].tolist() == [list(range(16))]
    assert state["body.query_embed.weight"].shape == (6, 16 * 144)
    assert state["tail.1.0.0.weight"].shape == (9 * 16, 16, 3, 3)
    assert state["head.0.1.body.0.weight"].shape == (16, 16, 5, 5)


def test_mean_shift() -> None:
    mean = torch.tensor(DIV2K_RGB_MEAN).view(1, 3, 1, 1) * 255
    x = mean.expand(1, 3, 4, 4) + torch.rand(1, 3, 4, 4)
    sub, add = MeanShift(255.0), MeanShift(255.0, sign=1)
    with torch.no_grad():
        assert torch.allclose(sub(x), x - mean, atol=1e-4)
        assert torch.allclose(add(sub(x)), x, atol=1e-4)


@pytest.fixture(scope="module")
def pretrain_small() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("ipt-pretrain", **SMALL).eval()


def test_forward_shapes_every_task(pretrain_small: torch.nn.Module) -> None:
    x = torch.rand(2, 3, 12, 12) * 255
    with torch.no_grad():
        for task, scale in zip(PRETRAIN_TASKS, (2, 3, 4, 1, 1, 1)):
            out, feats = pretrain_small(x, task, return_features=True)
            assert out.shape == (2, 3, 12 * scale, 12 * scale)
            assert feats.shape == (2, 16, 144)
            assert torch.isfinite(out).all()


def test_task_by_name_and_index(pretrain_small: torch.nn.Module) -> None:
    x = torch.rand(1, 3, 12, 12) * 255
    with torch.no_grad():
        by_name = pretrain_small(x, task="denoise-50")
        by_index = pretrain_small(x, task=5)
        other = pretrain_small(x, task="denoise-30")
    assert torch.equal(by_name, by_index)
    assert not torch.allclose(by_name, other)  # own head, tail and decoder query per task
    for bad in ("sr-x8", 6, -1, None):
        with pytest.raises(RestoreKitError):
            pretrain_small(x, task=bad)


def test_single_task_variants() -> None:
    x = torch.rand(1, 3, 12, 12) * 255
    for name, scale in (("ipt-sr-x2", 2), ("ipt-sr-x3", 3), ("ipt-sr-x4", 4), ("ipt-derain", 1), ("ipt-denoise", 1)):
        model = create_model(name, **SMALL).eval()
        with torch.no_grad():
            out = model(x)
        assert out.shape == (1, 3, 12 * scale, 12 * scale), name
        assert torch.equal(out, model(x, task=0))
        assert torch.equal(out, model(x, task=model.info.tasks[0]))
    denoise = create_model("ipt-denoise", **SMALL).eval()
    with torch.no_grad():
        assert torch.equal(denoise(x), denoise(x, task="denoise-50"))
    with pytest.raises(RestoreKitError):
        denoise(x, task="sr-x2")


def test_input_must_be_patch_size(pretrain_small: torch.nn.Module) -> None:
    with pytest.raises(RestoreKitError, match="12×12"):
        pretrain_small(torch.rand(1, 3, 24, 24), task="sr-x2")


def _save(model: torch.nn.Module, path: Path, state: dict[str, torch.Tensor] | None = None) -> Path:
    torch.save(model.state_dict() if state is None else state, path)
    return path


def test_convert_reference_checkpoint_roundtrip(tmp_path: Path) -> None:
    torch.manual_seed(1)
    ref = create_model("ipt-sr-x4", **SMALL12).eval()
    src = _save(ref, tmp_path / "IPT_sr4.pt")
    conv = convert_checkpoint(src, tmp_path / "ipt_sr4.safetensors")
    assert (conv.arch, conv.source_format) == ("ipt-sr-x4", "Pretrained-IPT state_dict")
    assert conv.args == {"patch_size": 12, "n_feats": 16, "num_layers": 1}
    model = load(tmp_path / "ipt_sr4.safetensors")
    x = torch.rand(2, 3, 12, 12) * 255
    with torch.no_grad():
        assert torch.equal(model(x), ref(x))


def test_convert_pretrain_and_scale1_tasks(tmp_path: Path) -> None:
    pre = convert_file(_save(create_model("ipt-pretrain", **SMALL12), tmp_path / "ipt_pretrain.pt"))
    assert pre.arch == "ipt-pretrain" and "num_queries" not in pre.args
    scale1 = create_model("ipt-denoise", **SMALL12)
    derain = convert_file(_save(scale1, tmp_path / "IPT_derain.pt"))
    denoise = convert_file(_save(scale1, tmp_path / "IPT_denoise50.pt"))
    assert derain.arch == "ipt-derain"
    assert denoise.arch == "ipt-denoise" and denoise.notes["sigma"] == 50
    nonorm = convert_file(_save(create_model("ipt-sr-x2", **SMALL12, no_norm=True, num_queries=6), tmp_path / "x2.pt"))
    assert nonorm.arch == "ipt-sr-x2" and nonorm.args["no_norm"] is True and nonorm.args["num_queries"] == 6


def test_converter_ignores_other_layouts(tmp_path: Path) -> None:
    dncnn = create_model("dncnn-s").state_dict()
    assert convert_ipt(dncnn, tmp_path / "dncnn.pth") is None


def test_zero_attention_output_bias_dropped(tmp_path: Path) -> None:
    # PyTorch 1.6/1.7 saved an (untrained, zero) out_proj.bias for bias=False attention.
    ref = create_model("ipt-sr-x2", **SMALL12).eval()
    state = dict(ref.state_dict())
    state["body.encoder.layers.0.self_attn.out_proj.bias"] = torch.zeros(144)
    conv = convert_file(_save(ref, tmp_path / "a.pt", state))
    assert "body.encoder.layers.0.self_attn.out_proj.bias" not in conv.state_dict
    check_state_dict(create_model(conv.arch, **conv.args), conv.state_dict)
    state["body.encoder.layers.0.self_attn.out_proj.bias"] = torch.ones(144)
    conv = convert_file(_save(ref, tmp_path / "b.pt", state))
    assert conv.args["attn_out_bias"] is True  # then every attention has one: the loader names the rest
    with pytest.raises(RestoreKitError, match="missing"):
        check_state_dict(create_model(conv.arch, **conv.args), conv.state_dict)


@pytest.mark.parametrize("edit", ["extra", "missing"])
def test_mismatched_keys_are_named(tmp_path: Path, edit: str) -> None:
    state = dict(create_model("ipt-sr-x4", **SMALL12).state_dict())
    key = "body.decoder.layers.0.norm3.bias"
    if edit == "extra":
        key = "body.decoder.layers.0.norm4.weight"
        state[key] = torch.ones(144)
    else:
        del state[key]
    src = tmp_path / "IPT_sr4.pt"
    torch.save(state, src)
    with pytest.raises(RestoreKitError, match=key.replace(".", r"\.")):
        convert_checkpoint(src, tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()
    with pytest.raises(RestoreKitError, match="unexpected" if edit == "extra" else "missing"):
        check_state_dict(create_model("ipt-sr-x4", **SMALL12), state)

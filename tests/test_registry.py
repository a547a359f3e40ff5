import pytest
import torch

import restorekit as rk
from restorekit.errors import RestoreKitError
from restorekit.models import count_parameters, model_info

from conftest import randomise_batchnorm

HEAVY = {"ipt-sr-x2", "ipt-sr-x3", "ipt-sr-x4", "ipt-denoise", "ipt-derain", "ipt-pretrain"}


@pytest.mark.parametrize("name", [n for n in rk.list_models() if n not in HEAVY])
def test_reference_parameter_counts(name):
    info = model_info(name)
    model = rk.create_model(name)
    if info.params is not None:
        assert count_parameters(model) == info.params
    assert model.info.name == name


@pytest.mark.parametrize("name,count", [
    ("dncnn-s", 556_032), ("dncnn-s-folded", 555_137), ("dncnn-b-folded", 665_921),
    ("cdncnn-b-folded", 668_227), ("dncnn-color", 559_363),
])
def test_dncnn_counts_from_the_issue(name, count):
    assert count_parameters(rk.create_model(name)) == count


def test_channels_argument_updates_metadata():
    model = rk.create_model("dncnn-s", channels=3)
    assert model.info.channels == 3 and model.info.args == {"channels": 3}
    assert model(torch.rand(1, 3, 20, 24)).shape == (1, 3, 20, 24)


def test_unknown_model_suggests_names():
    with pytest.raises(RestoreKitError, match="did you mean.*dncnn-s"):
        rk.create_model("dncnn-z")


def test_unknown_argument_lists_valid_ones():
    with pytest.raises(RestoreKitError, match="valid: channels"):
        rk.create_model("dncnn-s", depth=3)


def test_list_models_filters():
    assert "dncnn-b" in rk.list_models("dncnn*")
    derain = rk.list_models(task="derain")
    assert {"durn-s", "mprnet-derain", "ipt-derain"} <= set(derain)
    # a multi-task model is listed for each of its tasks: IPT's pre-trained model derains too
    assert all(model_info(n).task == "derain" or "derain" in model_info(n).tasks for n in derain)
    assert "ipt-pretrain" in derain and "dncnn-b" not in derain


def test_dncnn_predicts_noise():
    model = rk.create_model("dncnn-s-folded").eval()
    x = torch.rand(1, 1, 16, 16)
    assert torch.allclose(model(x), x - model.noise(x))


def test_fold_batchnorm_keeps_outputs():
    from restorekit.models.dncnn import fold_dncnn

    torch.manual_seed(0)
    model = rk.create_model("dncnn-s")
    randomise_batchnorm(model).eval()
    folded = fold_dncnn(model)
    assert folded.info.name == "dncnn-s-folded"
    assert count_parameters(folded) == 555_137
    x = torch.rand(2, 1, 24, 20)
    assert (model(x) - folded(x)).abs().max() < 1e-5


def test_dncnn_starts_near_identity_like_the_reference_init():
    # Tiny BN scales (SaoYan/MatConvNet init): an untrained DnCNN predicts almost no noise, which is
    # what makes its early training fast.
    torch.manual_seed(0)
    model = rk.create_model("dncnn-s").eval()
    bn = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(m.weight.abs().max() <= 0.025 for m in bn)
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        assert (model(x) - x).abs().mean() < 0.05


def test_only_ipt_declares_a_fixed_input_size():
    fixed = {n for n in rk.list_models() if model_info(n).fixed_size}
    assert fixed == HEAVY
    small = rk.create_model("ipt-denoise", patch_size=12, n_feats=8, num_heads=2, num_layers=1)
    assert small.info.fixed_size and small.patch_size == 12


def test_each_model_names_a_known_protocol_and_eval_defaults_to_it() -> None:
    from restorekit.eval.evaluate import default_protocol
    from restorekit.metrics import PROTOCOLS

    for name in rk.list_models():
        info = model_info(name)
        assert default_protocol(info) in PROTOCOLS, name
        assert not info.protocol or info.protocol in PROTOCOLS, name
    expected = {"durn-p": "durn-gray", "durn-p-nonorm": "durn-rgb", "durn-u": "durn-rgb", "durn-us": "durn-rgb",
                "durn-s": "durn-y", "durn-s-p": "durn-y", "mprnet-deblur": "mprnet", "mprnet-denoise": "mprnet-sidd",
                "mprnet-derain": "mprnet-derain", "dncnn-s": "dncnn", "ipt-sr-x2": "ipt"}
    assert {n: default_protocol(model_info(n)) for n in expected} == expected
    assert default_protocol("derain") == "mprnet-derain"  # a bare task: its usual convention


# --------------------------------------------------------------------------- the generic Registry


def test_one_registry_mechanism_for_every_named_thing() -> None:
    from restorekit.convert import CONVERTERS
    from restorekit.degradations.registry import DEGRADATIONS
    from restorekit.losses import LOSSES
    from restorekit.metrics import PROTOCOLS
    from restorekit.models.registry import MODELS
    from restorekit.pretrained import BUILTIN
    from restorekit.registry import Registry

    for reg in (CONVERTERS, DEGRADATIONS, LOSSES, PROTOCOLS, MODELS, BUILTIN):
        assert isinstance(reg, Registry) and len(reg) > 0
    assert "kair-dncnn-bn" in CONVERTERS and "dncnn-b" in MODELS and "default-gray" in BUILTIN


def test_registry_names_the_nearest_entries_and_refuses_duplicates() -> None:
    from restorekit.registry import Registry, did_you_mean

    loads = []
    reg: Registry[int] = Registry("widget", {"alpha": 1}, load=lambda: loads.append(1), casefold=True)

    @reg.register("beta-two")
    def _f() -> int:
        return 2

    assert reg.get("ALPHA") == 1 and reg["beta-two"] is _f and reg.get("gamma", 7) == 7
    assert reg.names() == ["alpha", "beta-two"] and list(reg) == ["alpha", "beta-two"] and loads == [1]
    with pytest.raises(RestoreKitError, match=r"unknown widget 'beta-tow'; did you mean 'beta-two'\? \(known: alpha, beta-two\)$"):
        reg.get("beta-tow")
    with pytest.raises(RestoreKitError, match=r"^unknown widget 'zzz' \(known: alpha, beta-two\)$"):
        reg["zzz"]
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("Alpha", 3)
    assert did_you_mean("restor", ["restore", "report", "models"]) == "; did you mean 'restore' or 'report'?"
    assert did_you_mean("restor", ["restore", "report"], n=1) == "; did you mean 'restore'?"
    assert did_you_mean("xyz", ["restore"]) == ""
    assert loads == [1], "the loader runs once"

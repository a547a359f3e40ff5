"""DnCNN's official layouts: real files from ../shared where present, synthetic files of the same
layout always (so the converters are tested on a fresh machine too)."""

import h5py
import numpy as np
import pytest
import torch

import restorekit as rk
from restorekit.convert import convert_checkpoint, convert_file
from restorekit.errors import RestoreKitError

from conftest import randomise_batchnorm, shared_path


def _write_matconvnet(path, convs):
    """A MATLAB v7.3 file shaped like the MatConvNet release: net.layers = {conv, relu, …, conv}."""
    with h5py.File(path, "w") as f:
        refs_group = f.create_group("#refs#")
        layer_refs = []
        n = 0

        def text(group, name, s):
            group.create_dataset(name, data=np.array([[ord(c)] for c in s], dtype=np.uint16))

        for i, (w, b) in enumerate(convs):
            for kind in ("conv", "relu") if i < len(convs) - 1 else ("conv",):
                g = refs_group.create_group(f"l{n}")
                n += 1
                text(g, "type", kind)
                if kind == "conv":
                    # h5py shows MATLAB's H×W×Cin×Cout as Cout×Cin×W×H, and drops a trailing Cout of 1
                    wm = w.permute(0, 1, 3, 2).numpy()
                    if wm.shape[0] == 1:
                        wm = wm[0]
                    wd = refs_group.create_dataset(f"w{n}", data=wm)
                    bd = refs_group.create_dataset(f"b{n}", data=b.numpy()[None, :])
                    wr = g.create_dataset("weights", (2, 1), dtype=h5py.ref_dtype)
                    wr[0, 0], wr[1, 0] = wd.ref, bd.ref
                layer_refs.append(g.ref)
        net = f.create_group("net")
        ds = net.create_dataset("layers", (len(layer_refs), 1), dtype=h5py.ref_dtype)
        for i, r in enumerate(layer_refs):
            ds[i, 0] = r


def _random_folded(name, **kw):
    torch.manual_seed(1)
    model = rk.create_model(name, **kw).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.05)
    return model


@pytest.mark.parametrize("name,fname", [("dncnn-s-folded", "sigma=25.mat"), ("dncnn-b-folded", "GD_Gray_Blind.mat"),
                                        ("cdncnn-b-folded", "GD_Color_Blind.mat"), ("dncnn3-folded", "DnCNN3.mat")])
def test_synthetic_matconvnet(tmp_path, name, fname):
    model = _random_folded(name)
    convs = [(m.weight.detach(), m.bias.detach()) for m in model.body if isinstance(m, torch.nn.Conv2d)]
    path = tmp_path / fname
    _write_matconvnet(path, convs)
    conv = convert_file(path)
    assert conv.arch == name
    out = rk.create_model(conv.arch, **conv.args).eval()
    out.load_state_dict(conv.state_dict, strict=True)
    x = torch.rand(1, model.info.channels, 19, 23)
    assert torch.equal(out(x), model(x))


def test_synthetic_saoyan_and_kair(tmp_path):
    bn = rk.create_model("dncnn-s").eval()
    sd = {"module.dncnn." + k[len("body."):]: v for k, v in bn.state_dict().items() if "num_batches" not in k}
    torch.save(sd, tmp_path / "net.pth")
    conv = convert_file(tmp_path / "net.pth")
    assert conv.arch == "dncnn-s"
    folded = _random_folded("dncnn-s-folded")
    torch.save({"model." + k[len("body."):]: v for k, v in folded.state_dict().items()}, tmp_path / "k.pth")
    conv = convert_file(tmp_path / "k.pth")
    assert conv.arch == "dncnn-s-folded"
    loaded = rk.create_model(conv.arch).eval()
    loaded.load_state_dict(conv.state_dict)
    x = torch.rand(1, 1, 16, 16)
    assert torch.equal(loaded(x), folded(x))


def test_unrecognised_layout(tmp_path):
    torch.save({"foo.weight": torch.zeros(3)}, tmp_path / "x.pth")
    with pytest.raises(RestoreKitError, match="not recognised"):
        convert_file(tmp_path / "x.pth")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(RestoreKitError, match="unknown checkpoint type"):
        convert_file(tmp_path / "x.txt")
    (tmp_path / "old.mat").write_bytes(b"MATLAB 5.0 MAT-file" + b"\0" * 200)
    with pytest.raises(RestoreKitError, match="v7.3"):
        convert_file(tmp_path / "old.mat")


def test_convert_refuses_existing_destination(tmp_path):
    folded = _random_folded("dncnn-s-folded")
    torch.save({"model." + k[len("body."):]: v for k, v in folded.state_dict().items()}, tmp_path / "k.pth")
    dst = tmp_path / "out.safetensors"
    convert_checkpoint(tmp_path / "k.pth", dst)
    assert rk.load(dst).info.name == "dncnn-s-folded"
    with pytest.raises(RestoreKitError, match="exists; overwrite=True replaces it"):
        convert_checkpoint(tmp_path / "k.pth", dst)


# --- the real official files -------------------------------------------------------------------

REAL = [
    ("dncnn-matconvnet/sigma=15.mat", "dncnn-s-folded", 555_137),
    ("dncnn-matconvnet/sigma=25.mat", "dncnn-s-folded", 555_137),
    ("dncnn-matconvnet/sigma=50.mat", "dncnn-s-folded", 555_137),
    ("dncnn-matconvnet/GD_Gray_Blind.mat", "dncnn-b-folded", 665_921),
    ("dncnn-matconvnet/GD_Color_Blind.mat", "cdncnn-b-folded", 668_227),
    ("dncnn-matconvnet/DnCNN3.mat", "dncnn3-folded", 665_921),
    ("dncnn-saoyan/DnCNN-S-25/net.pth", "dncnn-s", 556_032),
    ("dncnn-saoyan/DnCNN-B/net.pth", "dncnn-b", 667_008),
    ("dncnn-kair/dncnn_25.pth", "dncnn-s-folded", 555_137),
]


@pytest.mark.parametrize("rel,arch,params", REAL)
def test_real_official_files(tmp_path, rel, arch, params):
    src = shared_path("weights", *rel.split("/"))
    dst = tmp_path / "w.safetensors"
    conv = convert_checkpoint(src, dst)
    assert conv.arch == arch
    model = rk.load(dst)
    assert sum(p.numel() for p in model.parameters()) == params
    assert rk.load(dst).checkpoint_meta["source"]["file"] == src.name


def test_three_formats_agree():
    mat = shared_path("weights", "dncnn-matconvnet", "sigma=25.mat")
    kair = shared_path("weights", "dncnn-kair", "dncnn_25.pth")
    saoyan = shared_path("weights", "dncnn-saoyan", "DnCNN-S-25", "net.pth")
    from restorekit.pretrained import load_weights

    img = torch.rand(1, 1, 64, 48, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = load_weights(mat)(img), load_weights(kair)(img)
        assert (a - b).abs().max() < 1e-5
        c = load_weights(saoyan)(img)  # a different training run: same layout, different weights
        assert c.shape == a.shape


# --- layouts as the reference code builds them (layer order written here, no reference code imported) ---

def _saoyan_net(channels: int, layers: int) -> torch.nn.Sequential:
    """SaoYan/DnCNN-PyTorch's ``DnCNN(channels, num_of_layers)``: ``self.dncnn``, bias-free convs, BN in
    the middle layers; its forward returns the noise."""
    seq = [torch.nn.Conv2d(channels, 64, 3, padding=1, bias=False), torch.nn.ReLU(inplace=True)]
    for _ in range(layers - 2):
        seq += [torch.nn.Conv2d(64, 64, 3, padding=1, bias=False), torch.nn.BatchNorm2d(64), torch.nn.ReLU(inplace=True)]
    seq.append(torch.nn.Conv2d(64, channels, 3, padding=1, bias=False))
    return torch.nn.Sequential(*seq)


def _kair_br_net(channels: int, nb: int, bias: bool) -> torch.nn.Sequential:
    """KAIR's ``DnCNN(in_nc, out_nc, nc=64, nb, act_mode='BR')`` after ``B.sequential`` flattens it: head
    conv+ReLU, (nb−2)×[conv, BN, ReLU], tail conv; its forward is x − model(x)."""
    seq = [torch.nn.Conv2d(channels, 64, 3, padding=1, bias=bias), torch.nn.ReLU(inplace=True)]
    for _ in range(nb - 2):
        seq += [torch.nn.Conv2d(64, 64, 3, padding=1, bias=bias), torch.nn.BatchNorm2d(64, momentum=0.9, eps=1e-4),
                torch.nn.ReLU(inplace=True)]
    seq.append(torch.nn.Conv2d(64, channels, 3, padding=1, bias=bias))
    return torch.nn.Sequential(*seq)


def _randomise(net: torch.nn.Module) -> torch.nn.Module:
    torch.manual_seed(3)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.normal_(0, 0.05)
                if m.bias is not None:
                    m.bias.uniform_(-0.05, 0.05)
    return randomise_batchnorm(net).eval()


def _restore(tmp_path, state, name="net.pth"):
    path = tmp_path / name
    torch.save(state, path)
    conv = convert_file(path)
    model = rk.create_model(conv.arch, **conv.args).eval()
    model.load_state_dict(conv.state_dict, strict=True)
    return conv, model


@pytest.mark.parametrize("channels, layers, arch", [(1, 9, "dncnn-9"), (1, 20, "dncnn-b"), (3, 20, "cdncnn-b"),
                                                    (1, 12, "dncnn")])
def test_saoyan_files_of_any_depth(tmp_path, channels, layers, arch):
    net = _randomise(_saoyan_net(channels, layers))
    state = {"module.dncnn." + k: v for k, v in net.state_dict().items()}  # saved from DataParallel
    conv, model = _restore(tmp_path, state)
    assert conv.arch == arch
    x = torch.rand(1, channels, 21, 18)
    with torch.no_grad():
        assert (model(x) - (x - net(x))).abs().max() <= 1e-5


@pytest.mark.parametrize("channels, nb, bias", [(1, 17, True), (1, 17, False), (3, 20, True)])
def test_kair_trained_form(tmp_path, channels, nb, bias):
    net = _randomise(_kair_br_net(channels, nb, bias))
    conv, model = _restore(tmp_path, {"model." + k: v for k, v in net.state_dict().items()})
    assert conv.arch == "dncnn" and conv.args == {"channels": channels, "depth": nb, "features": 64,
                                                   "batch_norm": True, "bias": bias, "bn_eps": 1e-4}
    x = torch.rand(2, channels, 17, 22)
    with torch.no_grad():
        expected = x - net(x)
        assert (model(x) - expected).abs().max() <= 1e-5
        # through the inference path, which folds BN into the convs
        assert (rk.restore(x[:1], model) - expected[:1].clamp(0, 1)).abs().max() <= 1e-5


def test_folded_file_of_another_depth_converts_generically(tmp_path):
    net = _randomise(_kair_br_net(1, 7, True))
    folded = torch.nn.Sequential(*[m for m in net if not isinstance(m, torch.nn.BatchNorm2d)])
    conv, model = _restore(tmp_path, {"model." + k: v for k, v in folded.state_dict().items()})
    assert conv.arch == "dncnn" and conv.args["depth"] == 7 and conv.args["batch_norm"] is False
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        assert (model(x) - (x - folded(x))).abs().max() <= 1e-6

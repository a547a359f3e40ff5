"""Where official weights come from: one entry per file the authors released, with the model variant(s)
it loads into, the paper, the authors' page, its checksum and, where the file sits at an address that
cannot change (a GitHub path pinned to a commit), a direct URL for :func:`restorekit.download.download`.

Files behind Google Drive, Dropbox or zip archives have no such URL: ``url`` is ``None`` and the user
downloads them from ``page`` and converts them (:meth:`Release.convert_command`). Nothing here touches the
network or the disk.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from .registry import Registry


@dataclass(frozen=True)
class Release:
    """One officially released weights file.

    ``file`` is the name the authors gave it (a path inside their archive where they ship one);
    ``sha256`` is the checksum of that file as released, ``None`` where restorekit has not seen it;
    ``source`` says exactly where the checksummed copy was taken from (repository @ commit, path);
    ``converts`` is False for a layout that no restorekit converter reads yet (``note`` says why).
    """

    name: str
    variants: tuple[str, ...]
    description: str
    paper: str
    page: str
    file: str
    sha256: str | None = None
    url: str | None = None
    size: int | None = None
    source: str = ""
    license: str = ""
    note: str = ""
    converts: bool = True

    @property
    def downloadable(self) -> bool:
        """Fetched, checked and converted by :func:`restorekit.download.download`."""
        return self.url is not None and self.sha256 is not None and self.converts

    @property
    def file_name(self) -> str:
        return self.file.rsplit("/", 1)[-1]

    def convert_command(self) -> str:
        return f"restorekit convert {shlex.quote(self.file)} {self.name}.safetensors"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["variants"] = list(self.variants)
        d["convert"] = self.convert_command()
        d["download"] = f"restorekit download {self.name}" if self.downloadable else None
        return d


def short_page(url: str) -> str:
    """``github.com/swz30/MPRNet`` for a page URL: enough to find it, short enough for a table."""
    parts = urlsplit(url)
    path = "/".join(parts.path.strip("/").split("/")[:2])
    return f"{parts.netloc}/{path}" if path else parts.netloc


_DNCNN_PAPER = "Zhang et al., Beyond a Gaussian Denoiser: Residual Learning of Deep CNN for Image Denoising, TIP 2017"
_XUNIT_PAPER = "Kligvasser, Rott Shaham, Michaeli, xUnit: Learning a Spatial Activation Function for Efficient Image Restoration, CVPR 2018"
_MPRNET_PAPER = "Zamir et al., Multi-Stage Progressive Image Restoration, CVPR 2021"
_DURN_PAPER = ("Liu, Suganuma, Sun, Okatani, Dual Residual Networks Leveraging the Potential of Paired Operations "
               "for Image Restoration, CVPR 2019")
_IPT_PAPER = "Chen et al., Pre-Trained Image Processing Transformer, CVPR 2021"

_RAW = "https://raw.githubusercontent.com"
_DNCNN_COMMIT = "e93b27812d3ff523a3a79d19e5e50d233d7a8d0a"
_SAOYAN_COMMIT = "6b0804951484eadb7f1ea24e8e5c9ede9bea485b"
_KAIR_COMMIT = "fc1732f4a4514e42ce15e5b3a1e18c828af47a1e"
_XUNIT_COMMIT = "e12a65b42709f3daf02bee761f5e5f9cf87fe0b7"


def _matconvnet(name: str, variant: str, description: str, path: str, sha256: str, size: int) -> Release:
    return Release(name, (variant,), description + " (the authors' MatConvNet release, BN folded)", _DNCNN_PAPER,
                   "https://github.com/cszn/DnCNN/tree/master/model", path.rsplit("/", 1)[-1], sha256,
                   f"{_RAW}/cszn/DnCNN/{_DNCNN_COMMIT}/{path}", size, f"cszn/DnCNN @ {_DNCNN_COMMIT[:7]}, {path}",
                   "no licence file in the repository (research use)")


def _saoyan(name: str, variant: str, description: str, folder: str, sha256: str, size: int) -> Release:
    path = f"logs/{folder}/net.pth"
    return Release(name, (variant,), description + " (SaoYan/DnCNN-PyTorch's re-training, BN)", _DNCNN_PAPER,
                   "https://github.com/SaoYan/DnCNN-PyTorch/tree/master/logs", "net.pth", sha256,
                   f"{_RAW}/SaoYan/DnCNN-PyTorch/{_SAOYAN_COMMIT}/{path}", size,
                   f"SaoYan/DnCNN-PyTorch @ {_SAOYAN_COMMIT[:7]}, {path}", "GPL-3.0")


def _xunit(sigma: int, sha256: str, size: int) -> Release:
    path = f"denoising/checkpoints/xdncnn_res_f64k3k9_s{sigma}.pkl"
    return Release(f"xdncnn-s{sigma}-2018", ("xdncnn-2018",), f"xDnCNN, gray, σ {sigma}: the authors' released weights",
                   _XUNIT_PAPER, f"https://github.com/kligvasser/xUnit/tree/{_XUNIT_COMMIT}/denoising/checkpoints",
                   path.rsplit("/", 1)[-1], sha256, f"{_RAW}/kligvasser/xUnit/{_XUNIT_COMMIT}/{path}", size,
                   f"kligvasser/xUnit @ {_XUNIT_COMMIT[:7]}, {path}", "no licence file in the repository (research use)")


def _mprnet(name: str, variant: str, description: str, folder: str, file: str) -> Release:
    return Release(name, (variant,), description, _MPRNET_PAPER, f"https://github.com/swz30/MPRNet/tree/main/{folder}",
                   file, license="Academic Public License (non-commercial use)",
                   note="on Google Drive, linked from the page")


def _durn(name: str, variant: str, description: str, file: str) -> Release:
    return Release(name, (variant,), description, _DURN_PAPER, "https://github.com/liu-vis/DualResidualNetworks#models",
                   file, license="MIT", note="inside the authors' trainedmodels archive (Google Drive, linked from the page)")


def _ipt(name: str, variant: str, description: str, file: str) -> Release:
    return Release(name, (variant,), description, _IPT_PAPER,
                   "https://github.com/huawei-noah/Pretrained-IPT#pretrained-models", file, license="Apache-2.0",
                   note="in the authors' Google Drive folder, linked from the page; the converter reads the task from "
                        "the file name, so keep it")


_RELEASES = [
    _matconvnet("dncnn-s15-mat", "dncnn-s-folded", "DnCNN-S, σ 15", "model/specifics/sigma=15.mat",
                "657d5115fa05d371dbf0df1f0a931eff274dae29d08a9cc0824a28caf2460e21", 2_292_856),
    _matconvnet("dncnn-s25-mat", "dncnn-s-folded", "DnCNN-S, σ 25", "model/specifics/sigma=25.mat",
                "5a5404c9e3ef14e353760e14b885439408a654618e14f13b2e97b99b9835020b", 2_295_807),
    _matconvnet("dncnn-s50-mat", "dncnn-s-folded", "DnCNN-S, σ 50", "model/specifics/sigma=50.mat",
                "517dc0b55a8da2c129704ed7921b8557aac40cf3aae9f700dc41a9e25cad0983", 2_299_259),
    _matconvnet("dncnn-b-mat", "dncnn-b-folded", "DnCNN-B, gray, blind σ in [0, 55]", "model/GD_Gray_Blind.mat",
                "37f76da0b71dd2b2789ce91848fe2f184ab486203c9af9ac1b98199b60ea02b0", 2_766_582),
    _matconvnet("cdncnn-b-mat", "cdncnn-b-folded", "CDnCNN-B, colour, blind σ in [0, 55]", "model/GD_Color_Blind.mat",
                "57db5437a44037e7675a99042fe7b14d3dcdf1c333d3ec665855566e8a59795c", 2_763_713),
    _matconvnet("dncnn3-mat", "dncnn3-folded", "DnCNN-3: gray denoising, x2/3/4 SR and JPEG deblocking",
                "model/DnCNN3.mat", "3962377d522b6728417e364bf7a589cf34ddfb592af0bd9769e53f8123d17677", 2_771_543),
    _saoyan("dncnn-s15-saoyan", "dncnn-s", "DnCNN-S, σ 15", "DnCNN-S-15",
            "6eaf743d87f977693ad2ab1e35b0d09c3c8bd87fb74b8ed2d659918bdba2cbd9", 2_242_237),
    _saoyan("dncnn-s25-saoyan", "dncnn-s", "DnCNN-S, σ 25", "DnCNN-S-25",
            "65f0f0ea16d667274a75a7eec19950b22e752007c8a3147831b2d5441bd62920", 2_242_237),
    _saoyan("dncnn-s50-saoyan", "dncnn-s", "DnCNN-S, σ 50", "DnCNN-S-50",
            "dfdd4d9b10e50d466a48f15f4aaa0ba0ccfa4b71fc80b5ccbcecddce8e69a50e", 2_242_241),
    _saoyan("dncnn-b-saoyan", "dncnn-b", "DnCNN-B, blind σ in [0, 55]", "DnCNN-B",
            "dc25406eff05b9f4d1b30084a7a774e458e963f67d4a0ad1d2d9efbef4325b39", 2_689_807),
    Release("dncnn-s25-kair", ("dncnn-s-folded",), "DnCNN-S, σ 25: KAIR's conversion of sigma=25.mat", _DNCNN_PAPER,
            "https://github.com/cszn/KAIR/tree/master/model_zoo", "dncnn_25.pth",
            "0451a70de9b672ae037270498fbb1c17a1c1c4403785df586ff65df5b858e5b0",
            f"{_RAW}/cszn/KAIR/{_KAIR_COMMIT}/model_zoo/dncnn_25.pth", 2_224_903,
            f"cszn/KAIR @ {_KAIR_COMMIT[:7]}, model_zoo/dncnn_25.pth", "MIT"),
    _xunit(25, "7b291502b1adb104f703d13feffe9fb25782de2004ff023975567c662b967a0b", 1_247_023),
    _xunit(50, "aaccbb5a3e44e8fe940bcf989e882d41d8bc0d13a4103a4fb02c81d928476ef1", 1_247_093),
    _mprnet("mprnet-deblur-gopro", "mprnet-deblur", "MPRNet, motion deblurring (GoPro)", "Deblurring",
            "model_deblurring.pth"),
    _mprnet("mprnet-denoise-sidd", "mprnet-denoise", "MPRNet, real-noise denoising (SIDD)", "Denoising",
            "model_denoising.pth"),
    _mprnet("mprnet-derain-rain13k", "mprnet-derain", "MPRNet, rain-streak removal (Rain13K)", "Deraining",
            "model_deraining.pth"),
    _durn("durn-p-bsd", "durn-p", "DuRN-P, Gaussian noise, gray BSD (σ 30/50/70)", "trainedmodels/BSD_gray/DuRN_P_model.pt"),
    _durn("durn-p-nonorm-polyu", "durn-p-nonorm", "DuRN-P without normalisation, real noise (RealNoiseHKPoly)",
          "trainedmodels/RealNoiseHKPoly/DuRN_P_no_norm_model.pt"),
    _durn("durn-u-gopro", "durn-u", "DuRN-U, motion blur (GoPro)", "trainedmodels/GoPro/DuRN_U_model.pt"),
    _durn("durn-us-reside", "durn-us", "DuRN-US, haze (RESIDE)", "trainedmodels/RESIDE/DuRN-US_model.pt"),
    _durn("durn-us-dcpdn", "durn-us", "DuRN-US, haze (DCPDN data)", "trainedmodels/DCPDNData/DuRN-US_model.pt"),
    _durn("durn-s-ddn", "durn-s", "DuRN-S, rain streaks (DDN data)", "trainedmodels/DDN_Data/DuRN_S_model.pt"),
    _durn("durn-s-didmdn", "durn-s", "DuRN-S, rain streaks (DID-MDN data)", "trainedmodels/DIDMDN_Data/DuRN_S_model.pt"),
    _durn("durn-s-p-raindrop", "durn-s-p", "DuRN-S-P, raindrops (RainDrop)", "trainedmodels/RainDrop/DuRN_S_P_model.pt"),
    _ipt("ipt-sr2", "ipt-sr-x2", "IPT, x2 super-resolution", "IPT_sr2.pt"),
    _ipt("ipt-sr3", "ipt-sr-x3", "IPT, x3 super-resolution", "IPT_sr3.pt"),
    _ipt("ipt-sr4", "ipt-sr-x4", "IPT, x4 super-resolution", "IPT_sr4.pt"),
    _ipt("ipt-denoise30", "ipt-denoise", "IPT, colour Gaussian denoising σ 30", "IPT_denoise30.pt"),
    _ipt("ipt-denoise50", "ipt-denoise", "IPT, colour Gaussian denoising σ 50", "IPT_denoise50.pt"),
    _ipt("ipt-derain-official", "ipt-derain", "IPT, rain-streak removal", "IPT_derain.pt"),
    _ipt("ipt-pretrain-official", "ipt-pretrain", "IPT pre-trained on ImageNet, six tasks", "IPT_pretrain.pt"),
]

RELEASES: Registry[Release] = Registry("official weights", {r.name: r for r in _RELEASES},
                                       listing="`restorekit models` shows them per model")


def releases_for(variant: str) -> list[Release]:
    """The official files that load into ``variant``, in catalogue order."""
    return [r for r in RELEASES.values() if variant in r.variants]


def weights_summary(variant: str, builtins: Sequence[str] = ()) -> str:
    """One table cell: ``built-in: NAME``, ``download: NAME``, ``official: FILE (page)``, or ``-``."""
    def more(group: list[Release]) -> str:
        return f" +{len(group) - 1}" if len(group) > 1 else ""

    parts = [f"built-in: {b}" for b in builtins]
    releases = releases_for(variant)
    direct = [r for r in releases if r.downloadable]
    other = [r for r in releases if not r.downloadable]
    if direct:
        parts.append(f"download: {direct[0].name}{more(direct)}")
    if other:
        parts.append(f"official: {other[0].file_name}{more(other)} ({short_page(other[0].page)})")
    return "; ".join(parts) or "-"


def where_from(variant: str, *, cli: bool = False) -> str:
    """Where ``variant``'s official weights come from, in a clause for an error message ("" if none)."""
    releases = releases_for(variant)
    if not releases:
        return ""
    got = [r for r in releases if r.downloadable]
    if got:
        names = ", ".join(r.name for r in got)
        how = (f"`restorekit download NAME` fetches the official ones ({names}), then pass --weights NAME" if cli else
               f"restorekit.download.download(name) fetches the official ones ({names}), then give weights=name")
    else:
        r = releases[0]
        how = f"official weights: {r.file} from {r.page}" + (f" ({r.note})" if not r.converts and r.note else "")
    return how + (f"; `restorekit models {variant}` shows every release and its convert command" if cli else "")

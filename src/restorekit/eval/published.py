"""Published numbers as data: what each paper (or an independent re-measurement) reports per weights,
test set and noise level, so that a benchmark can put them beside its own results.

Transcribed from ``../shared/README.md`` and DuRN's ``test/results_confirmed.txt``. ``kind`` is
``"paper"`` for a number the authors published and ``"measured"`` for the values re-measured with an
independent script (DnCNN protocol, one seeded noise draw per image), which a correct pipeline should
match to about 0.01 dB.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["PublishedResult", "PUBLISHED", "published_value", "published_for", "is_known", "normalize_set"]


@dataclass(frozen=True)
class PublishedResult:
    paper: str
    model: str  # as the paper names it
    weights: tuple[str, ...]  # file names, folder names or labels these numbers belong to
    set: str
    sigma: float | None  # None: real or non-noise degradations
    psnr: float
    ssim: float | None
    source: str
    kind: str = "paper"  # "paper" or "measured"
    protocol: str | None = None  # restorekit metric protocol that reproduces the measurement
    note: str = ""


_DNCNN = "Zhang et al., Beyond a Gaussian Denoiser (DnCNN), TIP 2017"
_SAOYAN = "SaoYan/DnCNN-PyTorch README"
_XUNIT = "Kligvasser et al., xUnit: Learning a Spatial Activation Function, CVPR 2018"
_DURN = "Liu et al., Dual Residual Networks, CVPR 2019"
_README = "shared/README.md"
_DURN_TXT = "liu-vis/DualResidualNetworks test/results_confirmed.txt"
_MEASURED = "shared/README.md, measured with an independent script (one seeded noise draw per image)"

_S = {15: "sigma=15.mat", 25: "sigma=25.mat", 50: "sigma=50.mat"}
# KAIR's dncnn_25.pth is a conversion of sigma=25.mat (bit-identical outputs): same numbers.
_S_ALIASES = {15: (_S[15],), 25: (_S[25], "dncnn_25.pth"), 50: (_S[50],)}
_B = ("GD_Gray_Blind.mat",)
_CB = ("GD_Color_Blind.mat",)


def _rows() -> list[PublishedResult]:
    rows: list[PublishedResult] = []
    paper_s = {15: (32.86, 31.73), 25: (30.44, 29.23), 50: (27.18, 26.23)}
    measured_s = {15: (32.864, 31.731), 25: (30.445, 29.224), 50: (27.193, 26.223)}
    for sigma in (15, 25, 50):
        for i, set_name in enumerate(("Set12", "BSD68")):
            rows.append(PublishedResult(_DNCNN, "DnCNN-S", _S_ALIASES[sigma], set_name, sigma, paper_s[sigma][i], None,
                                        f"{_README} (DnCNN paper)", protocol="dncnn"))
            rows.append(PublishedResult(_DNCNN, "DnCNN-S", _S_ALIASES[sigma], set_name, sigma, measured_s[sigma][i], None,
                                        _MEASURED, kind="measured", protocol="dncnn"))
    for sigma, p, m12, m68 in ((15, 31.61, 32.688, 31.613), (25, 29.16, 30.368, 29.159), (50, 26.23, 27.207, 26.215)):
        rows.append(PublishedResult(_DNCNN, "DnCNN-B", _B, "BSD68", sigma, p, None, f"{_README} (DnCNN paper)",
                                    protocol="dncnn"))
        rows.append(PublishedResult(_DNCNN, "DnCNN-B", _B, "Set12", sigma, m12, None, _MEASURED, kind="measured",
                                    protocol="dncnn"))
        rows.append(PublishedResult(_DNCNN, "DnCNN-B", _B, "BSD68", sigma, m68, None, _MEASURED, kind="measured",
                                    protocol="dncnn"))
    for sigma, p in ((15, 33.90), (25, 31.24), (50, 27.95)):
        rows.append(PublishedResult(_DNCNN, "CDnCNN-B", _CB, "CBSD68", sigma, p, None, f"{_README} (DnCNN paper)",
                                    protocol="dncnn"))
    # restorekit's built-in blind denoisers are trained to DnCNN-B's recipe: its numbers are their target
    # (not those of the σ-specific DnCNN-S that their architecture would otherwise match).
    for sigma, gray, color in ((15, 31.61, 33.90), (25, 29.16, 31.24), (50, 26.23, 27.95)):
        rows.append(PublishedResult(_DNCNN, "DnCNN-B (target of default-gray)", ("default-gray",), "BSD68", sigma,
                                    gray, None, f"{_README} (DnCNN paper)", protocol="dncnn"))
        rows.append(PublishedResult(_DNCNN, "CDnCNN-B (target of default-color)", ("default-color",), "CBSD68", sigma,
                                    color, None, f"{_README} (DnCNN paper)", protocol="dncnn"))
    for sigma, p, m12 in ((15, 31.71, 32.830), (25, 29.21, 30.402), (50, 26.22, 27.157)):
        weights = (f"DnCNN-S-{sigma}",)
        rows.append(PublishedResult(_SAOYAN, "DnCNN-S (PyTorch re-implementation)", weights, "BSD68", sigma, p, None,
                                    f"{_README} (SaoYan README)", protocol="dncnn"))
        rows.append(PublishedResult(_SAOYAN, "DnCNN-S (PyTorch re-implementation)", weights, "Set12", sigma, m12, None,
                                    _MEASURED, kind="measured", protocol="dncnn"))
    for sigma, x, d, m in ((25, 29.21, 29.22, 29.225), (50, 26.26, 26.23, 26.265)):
        # The authors' released weights (xdncnn-2018's layout) are the ones these numbers belong to.
        released = (f"xdncnn_res_f64k3k9_s{sigma}.pkl", "xdncnn-2018")
        rows.append(PublishedResult(_XUNIT, "xDnCNN (303K params), the authors' released weights", released, "BSD68",
                                    sigma, x, None, f"{_README} (xUnit paper)", protocol="dncnn"))
        rows.append(PublishedResult(_XUNIT, "xDnCNN (303K params), the authors' released weights", released[:1],
                                    "BSD68", sigma, m, None, _MEASURED, kind="measured", protocol="dncnn"))
        rows.append(PublishedResult(_XUNIT, "xDnCNN (target of the paper's layout)", ("xdncnn", "xdncnn-gray"), "BSD68",
                                    sigma, x, None, f"{_README} (xUnit paper)", protocol="dncnn",
                                    note="no weights were released in this layout; xdncnn-2018 reproduces the number"))
        rows.append(PublishedResult(_XUNIT, "DnCNN-S (555K params, as reported by xUnit)", ("dncnn-s", "dncnn-s-folded"),
                                    "BSD68", sigma, d, None, f"{_README} (xUnit paper)", protocol="dncnn"))
    rows += _durn_rows()
    return rows


def _durn_rows() -> list[PublishedResult]:
    gray, rgb, ycc = "durn-gray", "durn-rgb", "durn-y"
    bgr = "input/output is BGR/BGR"
    table = [
        # model, weights labels, set, sigma, psnr, ssim, protocol, note
        ("DuRN-P", ("durn-p",), "BSD_gray", 30, 28.49, 0.8158, gray, "DuRN's BSD gray test list (200 images)"),
        ("DuRN-P", ("durn-p",), "BSD_gray", 50, 26.36, 0.7355, gray, "DuRN's BSD gray test list (200 images)"),
        ("DuRN-P", ("durn-p",), "BSD_gray", 70, 25.06, 0.6761, gray, "DuRN's BSD gray test list (200 images)"),
        ("DuRN-P", ("durn-p-nonorm",), "RealNoiseHKPoly", None, 36.83, 0.9636, rgb,
         "DuRN's PolyU test split, not the 100-crop PolyU benchmark"),
        ("DuRN-U", ("durn-u",), "GoPro", None, 29.90, 0.9101, rgb, ""),
        ("DuRN-U", ("durn-u",), "CarDataset", None, 29.23, 0.8805, rgb, ""),
        ("DuRN-US", ("durn-us",), "RESIDE", None, 32.12, 0.9803, rgb, "SOTS indoor"),
        ("DuRN-US", ("durn-us",), "DCPDNData", None, 32.60, 0.9828, rgb, "measured on floats (quantize=None)"),
        ("DuRN-S-P", ("durn-s-p",), "RainDropData-test_a", None, 31.24, 0.9259, ycc, bgr),
        ("DuRN-S-P", ("durn-s-p",), "RainDropData-test_b", None, 25.32, 0.8174, ycc, bgr),
        ("DuRN-S", ("durn-s",), "DIDMDN_Data", None, 33.21, 0.9251, ycc, ""),
        ("DuRN-S", ("durn-s",), "DDN_Data", None, 31.30, 0.9194, ycc, "train/test split by random shuffling"),
        ("DuRN-S", ("durn-s",), "DDN_Data_b", None, 30.61, 0.9136, ycc, "split 1-650 / 651-1000, as in NLEDN"),
    ]
    return [PublishedResult(_DURN, m, w, s, sig, p, q, _DURN_TXT, protocol=proto, note=note)
            for m, w, s, sig, p, q, proto, note in table]


PUBLISHED: tuple[PublishedResult, ...] = tuple(_rows())

# Other names the same test sets go by.
_SET_ALIASES = {"set68": "bsd68", "cbsd": "cbsd68", "kodak": "kodak24", "polyu100": "polyu", "cc": "cc15"}


def normalize_set(name: str) -> str:
    key = Path(str(name)).name.lower()
    return _SET_ALIASES.get(key, key)


def _candidates(weights: str) -> list[str]:
    """Names a weights spec may be known by: itself, its file name, its parent folder (``DnCNN-S-25/net.pth``)."""
    text = str(weights).strip()
    path = Path(text)
    names = [text, path.name, path.stem]
    if path.parent.name:
        names += [f"{path.parent.name}/{path.name}", path.parent.name]
    return [n.lower() for n in names if n]


def published_for(weights: str, set_name: str, sigma: float | None, *, kind: str | None = None) -> list[PublishedResult]:
    """All rows for these weights (label, file name or path), set and noise level (None: any)."""
    names = _candidates(weights)
    set_key = normalize_set(set_name)
    out = []
    for row in PUBLISHED:
        if kind is not None and row.kind != kind:
            continue
        if normalize_set(row.set) != set_key:
            continue
        if sigma is not None and row.sigma is not None and abs(row.sigma - float(sigma)) > 1e-6:
            continue
        if (sigma is None) != (row.sigma is None):
            continue
        if any(w.lower() in names for w in row.weights):
            out.append(row)
    return out


def published_value(weights: str, set_name: str, sigma: float | None = None, *, kind: str = "paper") -> PublishedResult | None:
    """The published (``kind="paper"``) or independently measured (``"measured"``) result for these
    weights on this set and σ, or None. ``weights`` is a label, file name or path (``sigma=25.mat``,
    ``…/DnCNN-S-25/net.pth``, ``GD_Gray_Blind.mat``)."""
    rows = published_for(weights, set_name, sigma, kind=kind)
    return rows[0] if rows else None


def is_known(weights: str) -> bool:
    """Whether any row belongs to these weights (at any set or σ)."""
    names = _candidates(weights)
    return any(w.lower() in names for row in PUBLISHED for w in row.weights)

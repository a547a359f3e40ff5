"""Training losses of the reproduced papers, as modules called as ``loss(prediction, target)``.

Images are N×C×H×W. :class:`CompositeLoss` sums weighted losses and, when a model returns a
list of stage outputs (MPRNet), applies them to every stage. :func:`build_loss` makes one from a
config spec. SSIM here is :func:`restorekit.metrics.ssim_map`, the package's only SSIM code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .errors import RestoreKitError
from .registry import Registry
from .metrics import ssim_map

__all__ = [
    "L1Loss",
    "MSELoss",
    "CharbonnierLoss",
    "SSIMLoss",
    "EdgeLoss",
    "ContrastiveLoss",
    "DuRNMixLoss",
    "CompositeLoss",
    "LOSSES",
    "build_loss",
]


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise RestoreKitError(
            f"prediction and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}"
        )


class L1Loss(nn.Module):
    """Mean (or sum) absolute error."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in ("mean", "sum"):
            raise RestoreKitError(f"L1Loss reduction must be 'mean' or 'sum', got {reduction!r}")
        self.reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_pair(pred, target)
        return F.l1_loss(pred, target, reduction=self.reduction)


class MSELoss(nn.Module):
    """Squared error: "mean", "sum", or "sum_half_n" = Σd² / (2·N), N the batch size (DnCNN)."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in ("mean", "sum", "sum_half_n"):
            raise RestoreKitError(
                f"MSELoss reduction must be 'mean', 'sum' or 'sum_half_n', got {reduction!r}"
            )
        self.reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_pair(pred, target)
        if self.reduction == "sum_half_n":
            return (pred - target).pow(2).sum() / (2 * pred.shape[0])
        return F.mse_loss(pred, target, reduction=self.reduction)


class CharbonnierLoss(nn.Module):
    """mean(sqrt(d² + eps²)), MPRNet's smooth L1; equals eps where d = 0."""

    def __init__(self, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = float(eps)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_pair(pred, target)
        d = pred - target
        return torch.sqrt(d * d + self.eps * self.eps).mean()


class SSIMLoss(nn.Module):
    """SSIM as a loss: form "neg" gives −SSIM (DuRN), "one_minus" gives 1 − SSIM.

    Defaults are pytorch-ssim's, used by DuRN: Gaussian 11 / σ 1.5, zero padding ("same"),
    C1 = 0.01², C2 = 0.03² (data range 1), mean over the whole map of the batch.
    """

    def __init__(
        self,
        form: str = "neg",
        *,
        data_range: float = 1.0,
        window: str = "gaussian",
        win_size: int | None = 11,
        sigma: float = 1.5,
        border: str = "same",
    ) -> None:
        super().__init__()
        if form not in ("neg", "one_minus"):
            raise RestoreKitError(f"SSIMLoss form must be 'neg' or 'one_minus', got {form!r}")
        self.form = form
        self.options = dict(
            data_range=data_range, window=window, win_size=win_size, sigma=sigma, border=border
        )

    def ssim(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean SSIM of the batch, computed in at least float32."""
        _check_pair(pred, target)
        dtype = torch.promote_types(pred.dtype, torch.float32)
        return ssim_map(pred.to(dtype), target.to(dtype), **self.options).mean()

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        s = self.ssim(pred, target)
        return -s if self.form == "neg" else 1.0 - s


class EdgeLoss(nn.Module):
    """MPRNet's edge loss: Charbonnier distance between Laplacian-pyramid detail layers.

    Laplacian = img − g(up(down(g(img)))), g the 5×5 kernel outer([.05,.25,.4,.25,.05]) with
    replicate padding, down = every second pixel, up = zeros with 4× the values at even
    positions. Works for any channel count (each channel filtered alone).
    """

    def __init__(self, eps: float = 1e-3) -> None:
        super().__init__()
        k = torch.tensor([0.05, 0.25, 0.4, 0.25, 0.05])
        self.register_buffer("kernel", torch.outer(k, k)[None, None], persistent=False)
        self.charbonnier = CharbonnierLoss(eps)

    def conv_gauss(self, img: torch.Tensor) -> torch.Tensor:
        n, c, h, w = img.shape
        flat = F.pad(img.reshape(n * c, 1, h, w), (2, 2, 2, 2), mode="replicate")
        out = F.conv2d(flat, self.kernel.to(dtype=img.dtype, device=img.device))
        return out.reshape(n, c, h, w)

    def laplacian(self, img: torch.Tensor) -> torch.Tensor:
        filtered = self.conv_gauss(img)
        up = torch.zeros_like(filtered)
        up[:, :, ::2, ::2] = filtered[:, :, ::2, ::2] * 4
        return img - self.conv_gauss(up)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_pair(pred, target)
        if pred.ndim != 4:
            raise RestoreKitError(f"EdgeLoss expects NxCxHxW tensors, got {tuple(pred.shape)}")
        return self.charbonnier(self.laplacian(pred), self.laplacian(target))


class ContrastiveLoss(nn.Module):
    """IPT's patch contrastive loss (Chen et al. CVPR 2021, Eq. 4-5) on features N×P×D.

    Patches of one image are positives, patches of the other images negatives; with cosine
    similarity d and temperature τ, for image j and patches i1, i2:
    l = −log( exp(d(f_i1^j, f_i2^j)/τ) / Σ_{k≠j} exp(d(f_i1^j, f_i2^k)/τ) ),
    averaged over all j, i1, i2 (i1 = i2 included), exactly as the paper writes it: the
    denominator holds negatives only, so the loss can go below zero. The paper gives no τ and
    the released code has no training script; 0.1 is our default. ``target`` is ignored (it
    keeps the ``loss(prediction, target)`` signature).
    """

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        if not temperature > 0:
            raise RestoreKitError(f"temperature must be positive, got {temperature!r}")
        self.temperature = float(temperature)

    def forward(self, features: torch.Tensor, target: Any = None) -> torch.Tensor:
        if features.ndim != 3:
            raise RestoreKitError(
                f"ContrastiveLoss expects features N x P x D, got {tuple(features.shape)}"
            )
        n, p, _ = features.shape
        if n < 2:
            raise RestoreKitError("ContrastiveLoss needs at least 2 images for negatives")
        f = F.normalize(features, dim=-1)
        sim = torch.einsum("jad,kbd->jakb", f, f) / self.temperature  # [j, i1, k, i2]
        idx = torch.arange(n, device=f.device)
        positive = sim[idx, :, idx, :]  # [j, i1, i2]
        other = ~torch.eye(n, dtype=torch.bool, device=f.device)
        neg = sim.masked_fill(~other[:, None, :, None], float("-inf"))
        log_denominator = torch.logsumexp(neg, dim=2)  # over k != j -> [j, i1, i2]
        return (log_denominator - positive).mean()


class DuRNMixLoss(nn.Module):
    """DuRN's training loss ssim_weight·SSIM + l1_weight·L1 (default −1.1·SSIM + 0.75·L1)."""

    def __init__(self, ssim_weight: float = -1.1, l1_weight: float = 0.75) -> None:
        super().__init__()
        self.ssim_weight = float(ssim_weight)
        self.l1_weight = float(l1_weight)
        self.ssim = SSIMLoss()
        self.l1 = L1Loss()

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.ssim_weight * self.ssim.ssim(pred, target) + self.l1_weight * self.l1(
            pred, target
        )


class CompositeLoss(nn.Module):
    """Σ weight·loss(prediction, target), summed over stages when prediction is a list/tuple.

    A list target must have one entry per stage; a single target is shared by all stages
    (MPRNet: Σ_stages [Charbonnier + 0.05·Edge]).
    """

    def __init__(self, terms: Sequence[tuple[float, nn.Module]]) -> None:
        super().__init__()
        if not terms:
            raise RestoreKitError("CompositeLoss needs at least one (weight, loss) term")
        weights = []
        for term in terms:
            if not (isinstance(term, (tuple, list)) and len(term) == 2):
                raise RestoreKitError(f"CompositeLoss terms are (weight, loss) pairs, got {term!r}")
            weight, loss = term
            if not isinstance(loss, nn.Module):
                raise RestoreKitError(f"not a loss module: {loss!r}")
            weights.append(float(weight))
        self.weights = weights
        self.losses = nn.ModuleList(loss for _, loss in terms)

    def _single(self, pred: torch.Tensor, target: Any) -> torch.Tensor:
        total = None
        for w, loss in zip(self.weights, self.losses):
            v = w * loss(pred, target)
            total = v if total is None else total + v
        return total

    def forward(self, pred: Any, target: Any) -> torch.Tensor:
        if isinstance(pred, (list, tuple)):
            if not pred:
                raise RestoreKitError("empty list of predictions")
            if isinstance(target, (list, tuple)):
                if len(target) != len(pred):
                    raise RestoreKitError(
                        f"{len(pred)} predictions but {len(target)} targets"
                    )
                pairs = list(zip(pred, target))
            else:
                pairs = [(p, target) for p in pred]
            total = self._single(*pairs[0])
            for p, t in pairs[1:]:
                total = total + self._single(p, t)
            return total
        return self._single(pred, target)


LOSSES: Registry[type[nn.Module]] = Registry("loss", {
    "l1": L1Loss,
    "mse": MSELoss,
    "charbonnier": CharbonnierLoss,
    "ssim": SSIMLoss,
    "edge": EdgeLoss,
    "contrastive": ContrastiveLoss,
    "durn-mix": DuRNMixLoss,
}, cutoff=0.0)


def _make_term(item: Any) -> tuple[float, nn.Module]:
    if isinstance(item, str):
        item = {"name": item}
    if not isinstance(item, Mapping):
        raise RestoreKitError(f"a loss spec entry must be a name or a dict, got {item!r}")
    kwargs = dict(item)
    name = kwargs.pop("name", None)
    if not isinstance(name, str):
        raise RestoreKitError(f"loss spec entry without a 'name': {item!r}")
    factory = LOSSES.get(name)
    weight = kwargs.pop("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise RestoreKitError(f"loss {name!r}: weight must be a number, got {weight!r}")
    try:
        module = factory(**kwargs)
    except TypeError as exc:
        raise RestoreKitError(f"loss {name!r}: bad options {kwargs}: {exc}") from None
    return float(weight), module


def build_loss(spec: str | Mapping[str, Any] | Sequence[Any]) -> CompositeLoss:
    """A :class:`CompositeLoss` from a name, a ``{"name", "weight", **options}`` dict or a list of
    them; names: "l1", "mse", "charbonnier", "ssim", "edge", "contrastive", "durn-mix"."""
    if isinstance(spec, (str, Mapping)):
        spec = [spec]
    if not isinstance(spec, Sequence) or not spec:
        raise RestoreKitError(f"loss spec must be a name, a dict or a non-empty list, got {spec!r}")
    return CompositeLoss([_make_term(item) for item in spec])

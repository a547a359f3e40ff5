"""Evaluation over folders of images with a paper's protocol: clean sets degraded on the fly (Gaussian
noise, JPEG, bicubic downscaling for super-resolution) or paired (degraded, ground-truth) sets,
per-image and mean PSNR/SSIM, written as JSON or CSV."""

from __future__ import annotations

import csv
import io as _io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from torch import nn

from ..errors import RestoreKitError
from .datasets import Sample, dataset_samples


@dataclass
class EvalSettings:
    data: str
    sigma: float | None = None
    seed: int = 0
    repeats: int = 1
    clip_noise: bool = False
    jpeg: int | None = None  # JPEG-compress clean images at this quality (1-100)
    scale: int = 1  # super-resolution: clean images are bicubic-downscaled by this (the model's task's)
    protocol: str = "dncnn"
    crop_border: int = 0
    model: str = ""
    weights: str = ""
    inference: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalResult:
    settings: EvalSettings
    images: list[dict[str, Any]]
    mean: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "images": self.images, "settings": asdict(self.settings)}

    def write(self, path: str | Path, *, overwrite: bool = False) -> Path:
        from ..io.files import atomic_write_text

        path = Path(path)
        if path.suffix.lower() == ".csv":
            buf = _io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=["name", "psnr", "ssim", "input_psnr", "input_ssim"], extrasaction="ignore")
            writer.writeheader()
            writer.writerows(self.images)
            writer.writerow({"name": "mean", **self.mean})
            text = buf.getvalue()
        elif path.suffix.lower() == ".json":
            text = json.dumps(self.to_dict(), indent=2) + "\n"
        else:
            raise RestoreKitError(f"{path}: results are written as .json or .csv")
        return atomic_write_text(path, text, overwrite=overwrite)


_TASK_PROTOCOLS = {"denoise": "dncnn", "denoise-real": "durn-rgb", "deblur": "durn-rgb", "dehaze": "durn-rgb",
                   "derain": "mprnet-derain", "deraindrop": "durn-y", "sr": "ipt"}


def default_protocol(info: Any) -> str:
    """The metric protocol a model is measured with unless one is chosen: its paper's (``info.protocol``,
    e.g. ``durn-y`` for DuRN-S), else its task's usual one. ``info``: a ModelInfo, or anything with
    ``task`` and ``protocol``, or a task name."""
    if isinstance(info, str):
        return _TASK_PROTOCOLS.get(info, "dncnn")
    return info.protocol or _TASK_PROTOCOLS.get(info.task, "dncnn")


def check_synthesis(sigma: float | None, jpeg: int | None, scale: int) -> None:
    """One degradation of clean images at a time: Gaussian noise, JPEG, or SR's bicubic downscaling."""
    if jpeg is not None and (isinstance(jpeg, bool) or not isinstance(jpeg, int) or not 1 <= jpeg <= 100):
        raise RestoreKitError(f"JPEG quality must be an integer in 1..100, got {jpeg!r}")
    chosen = [what for what, on in (("noise (sigma)", sigma is not None), ("JPEG", jpeg is not None),
                                    (f"x{scale} downscaling (the model's task)", scale > 1)) if on]
    if len(chosen) > 1:
        raise RestoreKitError(f"one degradation of the clean images at a time, not {' and '.join(chosen)}")


def load_pair(sample: Sample, channels: int, *, sigma: float | None, seed: int = 0, clip_noise: bool = False,
              jpeg: int | None = None, scale: int = 1) -> tuple[Any, Any]:
    """(degraded, clean) tensors of one sample: its degraded file, or the clean image degraded here.

    Noise is seeded by the image's name. ``jpeg``: the 8-bit image encoded and decoded at that quality.
    ``scale`` > 1: the clean image is cropped to a multiple of ``scale`` (modcrop) and the input is its
    MATLAB-bicubic downscale rounded to 8 bits, as a saved low-resolution file. With JPEG or SR, a gray
    model on a colour image sees MATLAB's rgb2ycbcr luminance, as Demo_test_DnCNN3.m does (in RGB first
    for SR, so the low-resolution pixels are rounded as RGB)."""
    from ..degradations.jpeg import jpeg_compress
    from ..degradations.noise import add_named_gaussian_noise, round_to_8bit
    from ..degradations.sr import bicubic_downsample
    from ..io import image_to_tensor, read_image
    from ..metrics import luminance

    check_synthesis(sigma, jpeg, scale)
    luma = channels == 1 and (jpeg is not None or scale > 1)
    clean = image_to_tensor(read_image(sample.target, channels=None if luma else channels).pixels)
    if luma and clean.shape[1] not in (1, 3):
        raise RestoreKitError(f"{sample.target}: {clean.shape[1]} channels; a gray model takes gray or RGB images")
    # MATLAB's rgb2ycbcr Y (16/255 .. 235/255): what DnCNN-3's demo feeds its gray model
    to_model = (lambda t: luminance(t, "y")) if luma and clean.shape[1] == 3 else (lambda t: t)
    if scale > 1:
        h, w = clean.shape[-2:]
        clean = clean[..., : h - h % scale, : w - w % scale]
        if clean.shape[-1] == 0 or clean.shape[-2] == 0:
            raise RestoreKitError(f"{sample.target}: {h}×{w} is smaller than the scale x{scale}")
    if sample.degraded is not None:
        degraded = image_to_tensor(read_image(sample.degraded, channels=None if luma else channels).pixels)
        want = tuple(n // scale for n in clean.shape[-2:])
        if tuple(degraded.shape[-2:]) != want:
            raise RestoreKitError(f"{sample.degraded}: size {tuple(degraded.shape[-2:])} differs from its target's "
                                  f"{tuple(clean.shape[-2:])}" + (f" / {scale} = {want}" if scale > 1 else ""))
        return to_model(degraded), to_model(clean)
    if scale > 1:
        return to_model(round_to_8bit(bicubic_downsample(clean, scale))), to_model(clean)
    if jpeg is not None:
        clean = round_to_8bit(to_model(clean))  # the 8-bit image that is saved as JPEG is the reference
        return jpeg_compress(clean, jpeg), clean
    if sigma is None:
        raise RestoreKitError(f"{sample.target}: a clean image needs a degradation (a noise level, --sigma)")
    return add_named_gaussian_noise(clean, sigma, sample.name, seed=seed, clip=clip_noise), clean


def baseline(degraded: Any, scale: int) -> Any:
    """What a restored image is compared against: the input itself, or its bicubic upscale for SR."""
    if scale == 1:
        return degraded.clamp(0, 1)
    from ..degradations.sr import bicubic_upsample

    return bicubic_upsample(degraded, scale).clamp(0, 1)


def measure(image: Any, clean: Any, **metric_options: Any) -> tuple[float, float]:
    """(PSNR, SSIM) of one image (a 1×C×H×W batch) against ``clean``; ``metric_options`` as in
    :func:`restorekit.metrics.psnr` (``protocol``, ``crop_border`` …)."""
    from ..metrics import psnr, ssim

    return (float(psnr(image, clean, reduction="none", **metric_options)[0]),
            float(ssim(image, clean, reduction="none", **metric_options)[0]))


def restore_and_measure(model: nn.Module, degraded: Any, clean: Any, options: Any = None,
                        **metric_options: Any) -> tuple[float, float]:
    """Restore one image through the inference path and measure it against ``clean`` (on its device):
    the step every evaluation shares (``restorekit eval``, the benchmark, training's validation)."""
    from ..inference import restore_tensor

    return measure(restore_tensor(model, degraded, options).to(clean.device), clean, **metric_options)


def iter_evaluation(model: nn.Module, settings: EvalSettings, options: Any = None, *,
                    progress: bool = True) -> Iterator[dict[str, Any]]:
    """Restore each image of the set and yield its metrics as soon as it is measured."""
    from tqdm import tqdm

    from ..inference import InferenceOptions

    options = options or InferenceOptions()
    check_synthesis(settings.sigma, settings.jpeg, settings.scale)
    synthetic = settings.sigma is not None or settings.jpeg is not None
    folder, samples = dataset_samples(settings.data, paired=False if synthetic else None)
    if not synthetic and settings.scale == 1 and any(s.degraded is None for s in samples):
        raise RestoreKitError(f"{folder}: clean images only", hint="give sigma= (Gaussian noise) or jpeg= (quality), "
                              "or a paired set", cli_hint="pass --sigma (Gaussian noise) or --jpeg QUALITY, or give a "
                              "paired set")
    if settings.repeats < 1:
        raise RestoreKitError("--repeats must be >= 1")
    channels = model.info.channels
    kw: dict[str, Any] = {"protocol": settings.protocol}
    if settings.crop_border:
        kw["crop_border"] = settings.crop_border
    bar = tqdm(samples, desc=f"eval {folder.name}", unit="img", disable=not progress, leave=False)
    for sample in bar:
        totals = {"psnr": 0.0, "ssim": 0.0, "input_psnr": 0.0, "input_ssim": 0.0}
        repeats = settings.repeats if sample.degraded is None and settings.sigma is not None else 1
        for r in range(repeats):
            degraded, clean = load_pair(sample, channels, sigma=settings.sigma, seed=settings.seed + r,
                                        clip_noise=settings.clip_noise, jpeg=settings.jpeg, scale=settings.scale)
            restored = restore_and_measure(model, degraded, clean, options, **kw)
            unrestored = measure(baseline(degraded, settings.scale), clean, **kw)
            for key, value in zip(("psnr", "ssim", "input_psnr", "input_ssim"), (*restored, *unrestored)):
                totals[key] += value
        row = {"name": sample.name, **{k: v / repeats for k, v in totals.items()}}
        bar.set_postfix(psnr=f"{row['psnr']:.2f}")
        yield row


def evaluate(model: nn.Module, settings: EvalSettings, options: Any = None, *, progress: bool = True) -> EvalResult:
    rows = list(iter_evaluation(model, settings, options, progress=progress))
    keys = ("psnr", "ssim", "input_psnr", "input_ssim")
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in keys}
    return EvalResult(settings, rows, mean)


def format_table(result: EvalResult) -> str:
    lines = [f"{'image':<24} {'PSNR':>8} {'SSIM':>7}   {'input PSNR' if result.settings.scale == 1 else 'bicubic':>10}"]
    for r in result.images:
        lines.append(f"{r['name'][:24]:<24} {r['psnr']:8.3f} {r['ssim']:7.4f}   {r['input_psnr']:10.3f}")
    m = result.mean
    lines.append(f"{'mean':<24} {m['psnr']:8.3f} {m['ssim']:7.4f}   {m['input_psnr']:10.3f}")
    return "\n".join(lines)


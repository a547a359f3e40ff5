"""Evaluation over folders of images with a paper's protocol: synthetic noise on clean sets, or
paired (degraded, ground-truth) sets, per-image and mean PSNR/SSIM, written as JSON or CSV."""

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


def load_pair(sample: Sample, channels: int, *, sigma: float | None, seed: int = 0,
              clip_noise: bool = False) -> tuple[Any, Any]:
    """(degraded, clean) tensors of one sample: its degraded file, or noise seeded by its name."""
    from ..degradations.noise import add_named_gaussian_noise
    from ..io import image_to_tensor, read_image

    clean = image_to_tensor(read_image(sample.target, channels=channels).pixels)
    if sample.degraded is not None:
        degraded = image_to_tensor(read_image(sample.degraded, channels=channels).pixels)
        if degraded.shape != clean.shape:
            raise RestoreKitError(f"{sample.degraded}: size {tuple(degraded.shape[-2:])} differs from its target "
                                  f"{tuple(clean.shape[-2:])}")
        return degraded, clean
    if sigma is None:
        raise RestoreKitError(f"{sample.target}: a clean image needs a noise level (--sigma)")
    return add_named_gaussian_noise(clean, sigma, sample.name, seed=seed, clip=clip_noise), clean


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
    folder, samples = dataset_samples(settings.data, paired=False if settings.sigma is not None else None)
    if settings.sigma is None and any(s.degraded is None for s in samples):
        raise RestoreKitError(f"{folder}: clean images only", hint="give sigma= to add Gaussian noise, or a paired set",
                              cli_hint="pass --sigma to add Gaussian noise, or give a paired set")
    if settings.repeats < 1:
        raise RestoreKitError("--repeats must be >= 1")
    channels = model.info.channels
    kw: dict[str, Any] = {"protocol": settings.protocol}
    if settings.crop_border:
        kw["crop_border"] = settings.crop_border
    bar = tqdm(samples, desc=f"eval {folder.name}", unit="img", disable=not progress, leave=False)
    for sample in bar:
        totals = {"psnr": 0.0, "ssim": 0.0, "input_psnr": 0.0, "input_ssim": 0.0}
        repeats = settings.repeats if sample.degraded is None else 1
        for r in range(repeats):
            degraded, clean = load_pair(sample, channels, sigma=settings.sigma, seed=settings.seed + r,
                                        clip_noise=settings.clip_noise)
            restored = restore_and_measure(model, degraded, clean, options, **kw)
            unrestored = measure(degraded.clamp(0, 1), clean, **kw)
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
    lines = [f"{'image':<24} {'PSNR':>8} {'SSIM':>7}   {'input PSNR':>10}"]
    for r in result.images:
        lines.append(f"{r['name'][:24]:<24} {r['psnr']:8.3f} {r['ssim']:7.4f}   {r['input_psnr']:10.3f}")
    m = result.mean
    lines.append(f"{'mean':<24} {m['psnr']:8.3f} {m['ssim']:7.4f}   {m['input_psnr']:10.3f}")
    return "\n".join(lines)


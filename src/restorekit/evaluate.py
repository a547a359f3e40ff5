"""Evaluation over folders of images with a paper's protocol: synthetic noise on clean sets, or
paired (degraded, ground-truth) sets, per-image and mean PSNR/SSIM, written as JSON or CSV."""

from __future__ import annotations

import csv
import io as _io
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from torch import nn

from .errors import RestoreKitError

# Paired sets name their files in a few ways; (degraded, clean) suffixes before the extension.
_PAIR_SUFFIXES = (("_real", "_mean"), ("_noisy", "_clean"), ("_blur1", "_sharp1"), ("_blur", "_sharp"),
                  ("_rain", "_clean"), ("_input", "_target"), ("_lq", "_gt"))


def data_roots() -> list[Path]:
    """Where named test sets are looked for: $RESTOREKIT_DATA, then ../shared/data beside the
    working directory and beside this checkout."""
    roots = []
    if os.environ.get("RESTOREKIT_DATA"):
        roots.append(Path(os.environ["RESTOREKIT_DATA"]))
    roots.append(Path.cwd().parent / "shared" / "data")
    roots.append(Path(__file__).resolve().parents[3] / "shared" / "data")
    return [r for r in roots if r.is_dir()]


def find_dataset(name_or_path: str | Path) -> Path:
    """A folder given by path, or a named set (``Set12``, ``BSD68``, ``PolyU`` …) under a data root."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    if path.exists():
        raise RestoreKitError(f"{path}: not a folder of images")
    for root in data_roots():
        for candidate in [root / str(name_or_path), *root.glob(f"*/{name_or_path}")]:
            if candidate.is_dir():
                return candidate
    where = ", ".join(str(r) for r in data_roots()) or "no data root found (set RESTOREKIT_DATA)"
    raise RestoreKitError(f"{name_or_path}: no such folder, nor a named test set under {where}")


_SUBSET = re.compile(r"^(?P<set>.+)\[(?P<start>-?\d*):(?P<stop>-?\d*)\]$")


def split_subset(spec: str | Path) -> tuple[str, slice | None]:
    """``"PolyU[80:]"`` → (``"PolyU"``, ``slice(80, None)``): a set with a Python slice of its samples
    (sorted by name), e.g. the held-out part of a set whose first images were trained on."""
    m = _SUBSET.match(str(spec))
    if not m:
        return str(spec), None
    bound = lambda v: int(v) if v else None  # noqa: E731
    return m["set"], slice(bound(m["start"]), bound(m["stop"]))


def dataset_samples(spec: str | Path, *, paired: bool | None = None) -> tuple[Path, list[Sample]]:
    """The folder and samples of a set given by path or name, optionally sliced (``PolyU[80:]``)."""
    name, part = split_subset(spec)
    folder = find_dataset(name)
    samples = discover_samples(folder, paired=paired)
    if part is not None:
        samples = samples[part]
        if not samples:
            raise RestoreKitError(f"{spec}: the slice selects none of the set's images")
    return folder, samples


@dataclass
class Sample:
    name: str
    target: Path
    degraded: Path | None = None  # None: degrade the target synthetically


def discover_samples(folder: Path, *, paired: bool | None = None) -> list[Sample]:
    """Clean images, or (degraded, target) pairs by the ``input/``+``target/`` layout or file suffixes."""
    from .io import list_images

    for deg_dir, tgt_dir in (("input", "target"), ("noisy", "clean"), ("lq", "gt")):
        if (folder / deg_dir).is_dir() and (folder / tgt_dir).is_dir():
            targets = {p.stem: p for p in list_images([folder / tgt_dir])}
            inputs = {p.stem: p for p in list_images([folder / deg_dir])}
            missing = sorted(set(inputs) ^ set(targets))
            if missing:
                raise RestoreKitError(f"{folder}: unmatched files between {deg_dir}/ and {tgt_dir}/: {', '.join(missing[:5])}")
            return [Sample(k, targets[k], inputs[k]) for k in sorted(targets)]
    files = list_images([folder])
    if paired is not False:
        for deg, tgt in _PAIR_SUFFIXES:
            pairs = _suffix_pairs(files, deg, tgt)
            if pairs:
                return pairs
    if paired:
        raise RestoreKitError(f"{folder}: no (degraded, clean) pairs found (input/ + target/ folders, or *_real/*_mean-style names)")
    return [Sample(p.stem, p) for p in files]


def _suffix_pairs(files: list[Path], deg: str, tgt: str) -> list[Sample]:
    by_key: dict[str, dict[str, Path]] = {}
    rx = re.compile(rf"^(.*)({re.escape(deg)}|{re.escape(tgt)})$", re.IGNORECASE)
    for p in files:
        m = rx.match(p.stem)
        if m:
            by_key.setdefault(m.group(1), {})[m.group(2).lower()] = p
    pairs = [Sample(k, v[tgt], v[deg]) for k, v in sorted(by_key.items()) if deg in v and tgt in v]
    return pairs if pairs and len(pairs) * 2 >= len(files) * 0.9 else []


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
        from .checkpoints import atomic_write_text

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
    from .degradations.noise import add_named_gaussian_noise
    from .io import image_to_tensor, read_image

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


def iter_evaluation(model: nn.Module, settings: EvalSettings, options: Any = None, *,
                    progress: bool = True) -> Iterator[dict[str, Any]]:
    """Restore each image of the set and yield its metrics as soon as it is measured."""
    from tqdm import tqdm

    from .inference import InferenceOptions, restore_tensor
    from .metrics import psnr, ssim

    options = options or InferenceOptions()
    folder, samples = dataset_samples(settings.data, paired=False if settings.sigma is not None else None)
    if settings.sigma is None and any(s.degraded is None for s in samples):
        raise RestoreKitError(f"{folder}: clean images only", hint="give sigma= to add Gaussian noise, or a paired set",
                              cli_hint="pass --sigma to add Gaussian noise, or give a paired set")
    if settings.repeats < 1:
        raise RestoreKitError("--repeats must be >= 1")
    channels = model.info.channels
    kw = {"protocol": settings.protocol, "reduction": "none"}
    if settings.crop_border:
        kw["crop_border"] = settings.crop_border
    bar = tqdm(samples, desc=f"eval {folder.name}", unit="img", disable=not progress, leave=False)
    for sample in bar:
        totals = {"psnr": 0.0, "ssim": 0.0, "input_psnr": 0.0, "input_ssim": 0.0}
        repeats = settings.repeats if sample.degraded is None else 1
        for r in range(repeats):
            degraded, clean = load_pair(sample, channels, sigma=settings.sigma, seed=settings.seed + r,
                                        clip_noise=settings.clip_noise)
            restored = restore_tensor(model, degraded, options)
            totals["psnr"] += float(psnr(restored, clean, **kw)[0])
            totals["ssim"] += float(ssim(restored, clean, **kw)[0])
            totals["input_psnr"] += float(psnr(degraded.clamp(0, 1), clean, **kw)[0])
            totals["input_ssim"] += float(ssim(degraded.clamp(0, 1), clean, **kw)[0])
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


"""The crops a benchmark's report shows where the models differ most.

For each (set, σ), among the models at the σ they were made for (:func:`.results.at_own_sigma`; all when none
is): the image whose PSNR varies most between the models and the window where the best and the worst
differ most, visibly (:func:`pick_window`; one model: its worst image and window). The evaluation keeps
no restored images, so the models are run again on that one image; the window of the input, of each
output and of the ground truth, and the whole clean image scaled down (the context), are stored as PNGs
under ``OUT/crops/<key>/`` with their metadata in ``OUT/crops/<key>.json`` and in ``results.crops``. The
key hashes the cells shown, so a rerun restores again only what changed. Drawing them is
:mod:`restorekit.report.crops`' job.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from .results import BenchmarkResults, Cell, at_own_sigma

__all__ = ["pick_image", "pick_window", "make_crops", "recorded_options", "crop_files", "CROP"]

CROP = 64  # window side in pixels: drawn ×3, large enough to see structure, small enough to show detail
CONTEXT_HEIGHT = 192  # the context (whole image) is stored at most this tall: the height of a drawn tile
CROPS_VERSION = 3  # bump when what is stored or how it is chosen changes: cached crops are restored again


def pick_image(per_model: dict[str, dict[str, float]]) -> str | None:
    """The image name whose PSNR varies most between models (one model: its worst image)."""
    names = set.intersection(*(set(v) for v in per_model.values())) if per_model else set()
    if not names:
        return None
    if len(per_model) == 1:
        (scores,) = per_model.values()
        return min(sorted(names), key=lambda n: scores[n])
    return max(sorted(names), key=lambda n: max(v[n] for v in per_model.values()) - min(v[n] for v in per_model.values()))


def _local_mse(out: np.ndarray, target: np.ndarray, size: int, stride: int) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    err = torch.from_numpy(((out.astype(np.float64) - target) ** 2).mean(axis=2))[None, None]
    return F.avg_pool2d(err, size, stride=stride)[0, 0].numpy()


def pick_window(outputs: list[np.ndarray], target: np.ndarray, size: int = CROP) -> tuple[int, int, int]:
    """(y, x, side) of the square window where the models' outputs differ most (one model: its worst
    window). Images are H×W×C floats.

    The difference is the local PSNR spread, best model minus worst, weighted by the error the worse
    one adds there (its RMSE less the better one's): a large spread of two tiny errors, on a flat sky,
    looks the same in both and is not what a reader should be shown."""
    h, w = target.shape[:2]
    size = max(1, min(size, h, w))
    stride = max(1, size // 8)
    mse = np.stack([_local_mse(o, target, size, stride) for o in outputs])
    if len(outputs) == 1:
        score = mse[0]
    else:
        spread = 10.0 * np.log10((mse.max(0) + 1e-10) / (mse.min(0) + 1e-10))
        rmse = np.sqrt(mse)
        score = spread * (rmse.max(0) - rmse.min(0))
    i, j = np.unravel_index(int(np.argmax(score)), score.shape)
    return int(i * stride), int(j * stride), size


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b) ** 2).mean())
    return math.inf if mse == 0 else -10.0 * math.log10(mse)


def _key(cells: list[Cell], image: str) -> str:
    ident = json.dumps([CROPS_VERSION, sorted((c.model, c.key) for c in cells), image, CROP, CONTEXT_HEIGHT],
                       sort_keys=True)
    return hashlib.sha256(ident.encode()).hexdigest()[:20]


def crop_files(crop: dict[str, Any]) -> list[str]:
    """The files (relative to the benchmark folder) a crop's metadata names."""
    return ([crop["context"]] if "context" in crop else []) + [t["file"] for t in crop.get("tiles", []) if "file" in t]


def _complete(out_dir: Path, crop: dict[str, Any]) -> bool:
    files = crop_files(crop)
    return bool(files) and all((out_dir / f).is_file() for f in files)


def recorded_options(results: BenchmarkResults) -> Any:
    """The inference options a benchmark ran with, rebuilt from its settings (unknown keys dropped)."""
    from ..inference import InferenceOptions

    names = {f.name for f in dataclasses.fields(InferenceOptions)}
    return InferenceOptions(**{k: v for k, v in results.settings.get("inference", {}).items() if k in names})


def make_crops(results: BenchmarkResults, *, options: Any = None, progress: bool = False) -> list[dict[str, Any]]:
    """The crops of each (set, σ) of ``results``, restored now or read from the cache in
    ``out_dir/crops``; models are re-run (on one image per group) only when a cell shown changed.
    ``options`` default to those the benchmark recorded."""
    from ..io.files import atomic_write_text

    out_dir = results.out_dir
    plans = []
    for set_name, sigma in results.groups():
        cells = results.cells_of(set_name, sigma)
        # a σ-specific model far from its σ would be the "worst" everywhere: compare the models meant for it
        cells = [c for c in cells if at_own_sigma(results.model(c.model), c.sigma)] or cells
        name = pick_image({c.model: {r["name"]: r["psnr"] for r in c.images} for c in cells})
        if name is None:
            continue
        key = _key(cells, name)
        meta_path = out_dir / "crops" / f"{key}.json"
        if meta_path.is_file():
            try:
                cached = json.loads(meta_path.read_text(encoding="utf-8"))
            except ValueError:
                cached = None
            if isinstance(cached, dict) and _complete(out_dir, cached):
                plans.append(cached)
                continue
        plans.append({"key": key, "set": set_name, "sigma": sigma, "image": name,
                      "models": [c.model for c in cells], "protocol": cells[0].protocol, "todo": True})
    todo = [p for p in plans if p.get("todo")]
    if todo:
        _restore(results, todo, options if options is not None else recorded_options(results), progress)
        for p in todo:
            p.pop("todo")
            if _complete(out_dir, p):
                atomic_write_text(out_dir / "crops" / f"{p['key']}.json", json.dumps(p, indent=1) + "\n")
    return [p for p in plans if _complete(out_dir, p)]


def _context(clean: np.ndarray) -> np.ndarray:
    """The whole image, scaled down to at most CONTEXT_HEIGHT rows."""
    from PIL import Image

    h, w = clean.shape[:2]
    if h <= CONTEXT_HEIGHT:
        return clean
    a = (np.clip(clean, 0, 1) * 255 + 0.5).astype(np.uint8)
    im = Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a)
    im = im.resize((max(1, round(w * CONTEXT_HEIGHT / h)), CONTEXT_HEIGHT), Image.Resampling.BILINEAR)
    small = np.asarray(im)
    return small[:, :, None] if small.ndim == 2 else small


def _restore(results: BenchmarkResults, plans: list[dict[str, Any]], options: Any, progress: bool) -> None:
    """Restore each plan's image with each of its models (each model loaded once), then store the
    windows of the input, the outputs and the ground truth."""
    from tqdm import tqdm

    from ..inference import restore_tensor
    from ..io import tensor_to_image, write_image
    from ..pretrained import load_weights
    from .datasets import dataset_samples
    from .evaluate import load_pair

    seed = int(results.settings.get("seed", 0))
    clip = bool(results.settings.get("clip_noise", False))
    sets = {s.name: s for s in results.sets}
    inputs: dict[str, tuple[Any, Any]] = {}
    for p in plans:
        # Same draw as the evaluation's first repeat: noise seeded by the image's name.
        _, samples = dataset_samples(sets[p["set"]].path, paired=False if p["sigma"] is not None else None)
        sample = next(s for s in samples if s.name == p["image"])
        channels = results.model(p["models"][0]).channels
        inputs[p["key"]] = load_pair(sample, channels, sigma=p["sigma"], seed=seed, clip_noise=clip)
    outputs: dict[tuple[str, str], np.ndarray] = {}
    labels = [m.label for m in results.models if any(m.label in p["models"] for p in plans)]
    for label in tqdm(labels, desc="crops", unit="model", disable=not progress, leave=False):
        model = load_weights(results.model(label).path)
        for p in plans:
            if label in p["models"]:
                outputs[(p["key"], label)] = tensor_to_image(restore_tensor(model, inputs[p["key"]][0], options))
        del model
    for p in plans:
        degraded_t, clean_t = inputs[p["key"]]
        degraded, clean = tensor_to_image(degraded_t), tensor_to_image(clean_t)
        outs = [outputs[(p["key"], m)] for m in p["models"]]
        if any(o.shape != clean.shape for o in outs) or degraded.shape != clean.shape:
            continue  # e.g. super-resolution: input and output sizes differ; no side-by-side crops
        y, x, s = pick_window(outs, clean)
        folder = Path("crops") / p["key"]

        def store(name: str, img: np.ndarray) -> str:
            rel = (folder / f"{name}.png").as_posix()
            write_image(results.out_dir / rel, img, overwrite=True)
            return rel

        def window(img: np.ndarray) -> np.ndarray:
            return img[y:y + s, x:x + s]

        tiles = [{"role": "input", "label": "input", "crop_psnr": _psnr(window(degraded), window(clean)),
                  "file": store("input", window(degraded))}]
        for i, (m, out) in enumerate(zip(p["models"], outs)):
            tiles.append({"role": "model", "label": m, "crop_psnr": _psnr(window(out), window(clean)),
                          "file": store(f"model-{i}", window(out))})
        tiles.append({"role": "target", "label": "ground truth", "crop_psnr": None,
                      "file": store("target", window(clean))})
        p["size"] = list(clean.shape[:2])
        p["window"] = {"y": y, "x": x, "size": s}
        p["context"] = store("context", _context(clean))
        p["tiles"] = tiles

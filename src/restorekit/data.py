"""Training and validation data: folders of images, patches, augmentation, and degradation.

Every random choice is a pure function of ``(seed, epoch, position in the epoch)``: the order of an
epoch is a seeded permutation, each sample's crop and flip come from a seed derived from its place,
and the degradation of a clean batch (applied in the training step by a :class:`Degrader`, so that
DuRN's ``locally_training_num`` can re-degrade one batch several times) is seeded per sample too.
Nothing depends on worker processes, the DataLoader or how many steps ran before, which is what makes
a resumed run — and an N-process DDP run — see exactly the data of an uninterrupted single run.

Images are decoded once and kept in memory (float32): the training sets used here are small.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from .errors import RestoreKitError

_MASK63 = (1 << 63) - 1


# --------------------------------------------------------------------------- options


@dataclass
class DegradationConfig:
    """A degradation of :mod:`restorekit.degradations` by name, with its parameters."""

    name: str = "gaussian-noise"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class PatchConfig:
    """``random``: ``per_image`` random crops of each image per epoch; ``grid``: every
    ``size``×``size`` patch at ``stride`` of each image rescaled by each of ``scales`` (DnCNN).
    ``size: null`` uses whole images (they must share one size to be batched)."""

    size: int | None = None
    mode: Literal["random", "grid"] = "random"
    stride: int | None = None
    scales: list[float] = field(default_factory=lambda: [1.0])
    per_image: int = 1


@dataclass
class DatasetConfig:
    """A training or validation set.

    ``kind: clean`` reads the images under ``root`` (one folder or a list, filtered by the glob
    ``pattern``) and degrades them with ``degradation``; ``kind: paired`` matches ``input`` and
    ``target`` globs under each root by the part the ``*`` stands for (``input/*`` + ``target/*``,
    or ``*_real.JPG`` + ``*_mean.JPG``). ``resize`` is ``[width, height]`` applied on loading;
    ``center_crop`` crops validation images; ``seed`` seeds validation noise per image name.
    """

    root: list[str] = field(default_factory=list)
    kind: Literal["clean", "paired"] = "clean"
    pattern: str | None = None
    input: str = "input/*"
    target: str = "target/*"
    recursive: bool = False
    channels: int | None = None
    resize: list[int] | None = None
    patch: PatchConfig = field(default_factory=PatchConfig)
    augment: Literal["none", "hflip", "x8"] = "none"
    degradation: DegradationConfig | None = None
    max_images: int | None = None
    center_crop: int | None = None
    seed: int = 0


def mix_seed(*keys: int) -> int:
    """A 63-bit seed from integers (splitmix64 chained): distinct keys give unrelated streams."""
    h = 0x9E3779B97F4A7C15
    for k in keys:
        h = (h ^ (int(k) & 0xFFFFFFFFFFFFFFFF)) & 0xFFFFFFFFFFFFFFFF
        h = (h + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & _MASK63


def seeded_generator(*keys: int) -> torch.Generator:
    return torch.Generator().manual_seed(mix_seed(*keys))


# --------------------------------------------------------------------------- files


def _check_root(root: str, split: str) -> Path:
    path = Path(root)
    if not path.exists():
        raise RestoreKitError(
            f"data.{split}.root: {root} does not exist; point it at your data with --set data.{split}.root=PATH"
        )
    return path


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """The glob as a regex whose group 1 is what the first ``*`` matched."""
    parts = re.split(r"(\*)", pattern)
    out, captured = [], False
    for part in parts:
        if part == "*":
            out.append("([^/]+)" if not captured else "[^/]*")
            captured = True
        else:
            out.append(re.escape(part))
    return re.compile("".join(out) + "$")


def _pair_key(rel: str, rx: re.Pattern[str], ends_with_star: bool) -> str | None:
    m = rx.match(rel)
    if not m or not m.groups():
        return None
    key = m.group(1)
    # "input/*" and "target/*" pair 1.png with 1.jpg: the extension is not part of the name
    return key.rsplit(".", 1)[0] if ends_with_star and "." in key else key


def find_images(cfg: DatasetConfig, split: str) -> list[Path]:
    """The clean images of ``cfg`` (sorted, filtered by ``pattern``, at most ``max_images``)."""
    import fnmatch

    from .io import list_images

    paths: list[Path] = []
    for root in cfg.root:
        base = _check_root(root, split)
        found = list_images([base], recursive=cfg.recursive)
        if cfg.pattern:
            found = [p for p in found if fnmatch.fnmatch(p.name, cfg.pattern)]
        paths.extend(found)
    if not paths:
        raise RestoreKitError(f"data.{split}: no images under {', '.join(cfg.root)}"
                              + (f" matching {cfg.pattern!r}" if cfg.pattern else ""))
    return paths[: cfg.max_images] if cfg.max_images else paths


def find_pairs(cfg: DatasetConfig, split: str) -> list[tuple[Path, Path]]:
    """(input, target) files matched by the part of their names the ``*`` of the globs stands for."""
    from .io import IMAGE_EXTENSIONS

    pairs: list[tuple[Path, Path]] = []
    for root in cfg.root:
        base = _check_root(root, split)
        side: dict[str, dict[str, Path]] = {}
        for label, pattern in (("input", cfg.input), ("target", cfg.target)):
            if "*" not in pattern:
                raise RestoreKitError(f"data.{split}.{label}: {pattern!r} needs a '*' standing for the shared name")
            rx, star_end = _glob_regex(pattern), pattern.endswith("*")
            found = {}
            for p in sorted(base.glob(pattern)):
                if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS:
                    key = _pair_key(p.relative_to(base).as_posix(), rx, star_end)
                    if key is not None:
                        found[key] = p
            side[label] = found
        common = sorted(set(side["input"]) & set(side["target"]))
        lonely = sorted(set(side["input"]) ^ set(side["target"]))
        if lonely:
            raise RestoreKitError(
                f"data.{split}: {len(lonely)} image(s) under {root} without a partner "
                f"(input {cfg.input!r}, target {cfg.target!r}): {', '.join(lonely[:4])}"
            )
        pairs.extend((side["input"][k], side["target"][k]) for k in common)
    if not pairs:
        raise RestoreKitError(f"data.{split}: no {cfg.input!r} / {cfg.target!r} pairs under {', '.join(cfg.root)}")
    return pairs[: cfg.max_images] if cfg.max_images else pairs


def resize_image(img: torch.Tensor, height: int, width: int, *, antialias: bool = True) -> torch.Tensor:
    """C×H×W bicubic resize, clamped to [0, 1]."""
    if img.shape[-2:] == (height, width):
        return img
    out = F.interpolate(img[None], size=(height, width), mode="bicubic", align_corners=False, antialias=antialias)
    return out[0].clamp_(0.0, 1.0)


def load_image(path: Path, channels: int, resize: list[int] | None = None) -> torch.Tensor:
    """C×H×W float32 in [0, 1], converted to ``channels``, resized to ``resize`` = [width, height]."""
    from .io import image_to_tensor, read_image

    img = image_to_tensor(read_image(path, channels=channels).pixels)[0]
    if resize:
        img = resize_image(img, int(resize[1]), int(resize[0]))
    return img


def center_crop(img: torch.Tensor, size: int) -> torch.Tensor:
    h, w = img.shape[-2:]
    if h < size or w < size:
        return img
    top, left = (h - size) // 2, (w - size) // 2
    return img[..., top : top + size, left : left + size]


# --------------------------------------------------------------------------- augmentation


def dihedral(img: torch.Tensor, mode: int) -> torch.Tensor:
    """One of the 8 flips/rotations of the square (mode 0 is the identity)."""
    out = torch.rot90(img, mode % 4, dims=(-2, -1))
    return out.flip(-1) if mode >= 4 else out


def dihedral_inverse(img: torch.Tensor, mode: int) -> torch.Tensor:
    """Undo :func:`dihedral` ``mode`` (the x8 ensemble maps each output back with it)."""
    out = img.flip(-1) if mode >= 4 else img
    return torch.rot90(out, -(mode % 4), dims=(-2, -1))


# --------------------------------------------------------------------------- training set


class PatchDataset(Dataset):
    """Training samples from in-memory images, keyed by ``(epoch, position, index)``.

    ``index`` selects the sample (an image, or one grid patch); ``(epoch, position)`` seeds its random
    crop, augmentation and degradation. Items are dicts: ``target`` (C×H×W), ``input`` for paired
    data, and ``seed`` (the per-sample seed the :class:`Degrader` uses).
    """

    def __init__(
        self,
        targets: list[torch.Tensor],
        inputs: list[torch.Tensor] | None,
        patch: PatchConfig,
        *,
        augment: str = "none",
        seed: int = 0,
        crop: int | None = None,
        names: list[str] | None = None,
    ) -> None:
        self.patch, self.augment, self.seed = patch, augment, seed
        self.names = names or [str(i) for i in range(len(targets))]
        if crop:
            targets = [center_crop(t, crop) for t in targets]
            inputs = [center_crop(t, crop) for t in inputs] if inputs is not None else None
        self.targets, self.inputs = targets, inputs
        self.grid: torch.Tensor | None = None
        if patch.size is not None:
            for name, t in zip(self.names, targets):
                if min(t.shape[-2:]) < patch.size:
                    raise RestoreKitError(
                        f"training image {name} ({t.shape[-2]}×{t.shape[-1]}) is smaller than the patch size {patch.size}"
                    )
        elif len({tuple(t.shape) for t in targets}) > 1:
            raise RestoreKitError("data.train.patch.size is null but the training images differ in size; set a patch size")
        if patch.mode == "grid":
            self._build_grid()

    def _build_grid(self) -> None:
        # SaoYan's prepare step: each image at each scale, every patch at `stride`; the scaled images
        # are kept, the patches are only their (image, y, x) coordinates (~1.5 GB saved on BSD400).
        size = int(self.patch.size)  # type: ignore[arg-type]
        stride = self.patch.stride or size
        scaled_t, scaled_i, rows = [], [], []
        for n, t in enumerate(self.targets):
            for s in self.patch.scales:
                h, w = int(t.shape[-2] * s), int(t.shape[-1] * s)
                if h < size or w < size:
                    continue
                k = len(scaled_t)
                scaled_t.append(resize_image(t, h, w, antialias=False))
                if self.inputs is not None:
                    scaled_i.append(resize_image(self.inputs[n], h, w, antialias=False))
                for y in range(0, h - size + 1, stride):
                    for x in range(0, w - size + 1, stride):
                        rows.append((k, y, x))
        self.targets = scaled_t
        self.inputs = scaled_i if self.inputs is not None else None
        self.grid = torch.tensor(rows, dtype=torch.int32)

    def __len__(self) -> int:
        if self.grid is not None:
            return len(self.grid)
        return len(self.targets) * (self.patch.per_image if self.patch.size is not None else 1)

    def __getitem__(self, key: tuple[int, int, int]) -> dict[str, Any]:
        epoch, position, index = key
        seed = mix_seed(self.seed, epoch, position)
        rng = random.Random(seed)
        size = self.patch.size
        if self.grid is not None:
            k, y, x = (int(v) for v in self.grid[index])
        else:
            k = index // (self.patch.per_image if size is not None else 1)
            h, w = self.targets[k].shape[-2:]
            y = rng.randrange(h - size + 1) if size is not None else 0
            x = rng.randrange(w - size + 1) if size is not None else 0
        target = self._crop(self.targets[k], y, x, size)
        item: dict[str, Any] = {"seed": mix_seed(seed, 1)}
        pair = [target]
        if self.inputs is not None:
            # Super-resolution pairs: the input is `scale` times smaller; its crop is aligned.
            scale = max(1, self.targets[k].shape[-1] // self.inputs[k].shape[-1])
            pair.append(self._crop(self.inputs[k], y // scale, x // scale, size // scale if size else None))
        if self.augment == "x8":
            mode = rng.randrange(8)
            pair = [dihedral(t, mode) for t in pair]
        elif self.augment == "hflip" and rng.random() < 0.5:
            pair = [t.flip(-1) for t in pair]
        item["target"] = pair[0].contiguous()
        if self.inputs is not None:
            item["input"] = pair[1].contiguous()
        return item

    @staticmethod
    def _crop(img: torch.Tensor, y: int, x: int, size: int | None) -> torch.Tensor:
        return img if size is None else img[:, y : y + size, x : x + size]


class StepSampler(Sampler[list[tuple[int, int, int]]]):
    """Batches of keys for steps ``start, start+1, …, total−1`` — this rank's share of each.

    Step ``s`` is batch ``s % steps_per_epoch`` of epoch ``s // steps_per_epoch``; an epoch's order
    is a permutation seeded by ``(seed, epoch)`` (several, concatenated, when the set is smaller
    than one global batch). Rank ``r`` of ``W`` takes the ``r``-th slice of every global batch, so
    the union over ranks is exactly the single-process batch.
    """

    def __init__(self, n: int, global_batch: int, *, seed: int = 0, rank: int = 0, world_size: int = 1,
                 start: int = 0, total: int | None = None) -> None:
        if global_batch % world_size:
            raise RestoreKitError(f"train.batch_size {global_batch} is not divisible by the {world_size} processes")
        self.n, self.global_batch, self.seed = n, global_batch, seed
        self.rank, self.local_batch = rank, global_batch // world_size
        self.steps_per_epoch = max(1, n // global_batch)
        self.start, self.total = start, total
        self._cache: tuple[int, list[int]] | None = None

    def epoch_order(self, epoch: int) -> list[int]:
        if self._cache is None or self._cache[0] != epoch:
            gen = seeded_generator(self.seed, 0x5A3D, epoch)
            order: list[int] = []
            while len(order) < self.steps_per_epoch * self.global_batch:
                order.extend(torch.randperm(self.n, generator=gen).tolist())
            self._cache = (epoch, order)
        return self._cache[1]

    def batch_keys(self, step: int) -> list[tuple[int, int, int]]:
        epoch, b = divmod(step, self.steps_per_epoch)
        order = self.epoch_order(epoch)
        first = b * self.global_batch + self.rank * self.local_batch
        return [(epoch, p, order[p]) for p in range(first, first + self.local_batch)]

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        step = self.start
        while self.total is None or step < self.total:
            yield self.batch_keys(step)
            step += 1

    def __len__(self) -> int:
        if self.total is None:
            raise TypeError("an endless StepSampler has no length")
        return max(0, self.total - self.start)


def _worker_init(worker_id: int) -> None:
    # Our samples never use the global RNGs; seeding them still makes third-party transforms repeatable.
    import numpy as np

    seed = torch.initial_seed() & 0xFFFFFFFF
    random.seed(seed)
    np.random.seed(seed)


def make_loader(dataset: PatchDataset, sampler: StepSampler, *, num_workers: int = 0, pin_memory: bool = False,
                seed: int = 0) -> DataLoader:
    """A DataLoader over ``sampler``'s batches; its worker seeds come from ``seed`` and the start step,
    not from the global RNG (which would change what a resumed run draws)."""
    gen = seeded_generator(seed, 0xD1, sampler.start)
    return DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers, pin_memory=pin_memory,
                      worker_init_fn=_worker_init if num_workers else None, generator=gen)


# --------------------------------------------------------------------------- degradation


def _as_params(params: dict[str, Any]) -> dict[str, Any]:
    # null unsets a parameter a base recipe gave (dncnn-b: sigma null, sigma_range [0, 55])
    return {k: tuple(v) if isinstance(v, list) else v for k, v in params.items() if v is not None}


class Degrader:
    """Applies a named degradation to a clean batch, one seeded generator per sample.

    ``seeds`` come with the batch (see :class:`PatchDataset`); ``salt`` distinguishes repeated
    degradations of the same batch (DuRN's local steps). The result depends only on the seeds,
    not on the batch's composition or the process that computes it.
    """

    def __init__(self, cfg: DegradationConfig) -> None:
        from .degradations.registry import get_degradation

        get_degradation(cfg.name)  # unknown names fail at set-up, not at the first step
        self.name, self.params = cfg.name, _as_params(cfg.params)

    def one(self, img: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Degrade one C×H×W image."""
        from .degradations.registry import degrade

        return degrade(self.name, img, generator=generator, **self.params)

    def __call__(self, clean: torch.Tensor, seeds: torch.Tensor, salt: int = 0) -> torch.Tensor:
        out = [self.one(img, seeded_generator(int(s), salt)) for img, s in zip(clean, seeds.tolist())]
        return torch.stack(out)


# --------------------------------------------------------------------------- building


def _names(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def build_train_dataset(cfg: DatasetConfig, channels: int, *, seed: int = 0) -> PatchDataset:
    """The training set of ``cfg``, decoded into memory."""
    if cfg.kind == "paired":
        pairs = find_pairs(cfg, "train")
        inputs = [load_image(i, channels, cfg.resize) for i, _ in pairs]
        targets = [load_image(t, channels, cfg.resize) for _, t in pairs]
        names = _names([t for _, t in pairs])
    else:
        paths = find_images(cfg, "train")
        inputs, targets, names = None, [load_image(p, channels, cfg.resize) for p in paths], _names(paths)
    return PatchDataset(targets, inputs, cfg.patch, augment=cfg.augment, seed=seed, crop=cfg.center_crop, names=names)


@dataclass
class ValItem:
    name: str
    input: torch.Tensor  # 1×C×H×W
    target: torch.Tensor  # 1×C×H×W


def build_val_set(cfg: DatasetConfig, channels: int) -> list[ValItem]:
    """Validation images, degraded once with noise seeded by each image's name (deterministic,
    whatever the file order), optionally center-cropped."""
    from .degradations.noise import generator_for

    items: list[ValItem] = []
    if cfg.kind == "paired":
        for i, t in find_pairs(cfg, "val"):
            inp, tgt = load_image(i, channels, cfg.resize), load_image(t, channels, cfg.resize)
            if cfg.center_crop:
                scale = max(1, tgt.shape[-1] // inp.shape[-1])
                inp, tgt = center_crop(inp, cfg.center_crop // scale), center_crop(tgt, cfg.center_crop)
            items.append(ValItem(t.name, inp[None], tgt[None]))
        return items
    if cfg.degradation is None:
        raise RestoreKitError("data.val: a clean validation set needs a degradation (or use kind: paired)")
    degrader = Degrader(cfg.degradation)
    for p in find_images(cfg, "val"):
        tgt = load_image(p, channels, cfg.resize)
        if cfg.center_crop:
            tgt = center_crop(tgt, cfg.center_crop)
        inp = degrader.one(tgt, generator_for(p.name, cfg.seed))
        items.append(ValItem(p.name, inp[None], tgt[None]))
    return items


__all__ = [
    "DatasetConfig",
    "DegradationConfig",
    "Degrader",
    "PatchConfig",
    "PatchDataset",
    "StepSampler",
    "ValItem",
    "build_train_dataset",
    "build_val_set",
    "center_crop",
    "dihedral",
    "dihedral_inverse",
    "find_images",
    "find_pairs",
    "load_image",
    "make_loader",
    "mix_seed",
    "seeded_generator",
]

"""Test sets by name or folder: where they are looked for, their samples (clean images or
(degraded, clean) pairs), and slices of them (``PolyU[80:]``)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import RestoreKitError

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
    roots.append(Path(__file__).resolve().parents[4] / "shared" / "data")
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
    from ..io import list_images

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

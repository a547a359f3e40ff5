"""Batch restoration of files: outputs planned (and refused) before any work, reading, inference and
writing overlapped, one bad file reported without stopping the batch. An interrupted batch (Ctrl-C)
keeps the outputs already written (each written atomically) and says how to continue."""

from __future__ import annotations

import dataclasses
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import RestoreKitError
from .prepare import InferenceOptions, check_options, describe_precision, model_spec, resolve_device
from .restore import restore_pixels


@dataclass(frozen=True)
class Job:
    src: Path
    dst: Path


# Folder outputs of these are written as PNG: a second JPEG generation would add its own artefacts
# to the restored image, silently. (WebP is read but not written, so it becomes PNG anyway.)
LOSSY_INPUTS = frozenset({".jpg", ".jpeg", ".webp"})
# An output the user names .jpg: high quality, and write_image keeps 4:4:4 chroma from 90 up.
JPEG_QUALITY = 95


@dataclass
class BatchReport:
    done: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # how outputs are encoded (see output_notes)
    megapixels: float = 0.0  # input pixels restored, in millions
    precision: str = ""  # what ran (describe_precision)

    def summary(self) -> str:
        lines = list(self.notes)
        lines += [f"{path}: {_reason(path, why)}" for path, why in self.failed]
        rate = len(self.done) / self.seconds if self.seconds else 0.0
        mp_rate = self.megapixels / self.seconds if self.seconds else 0.0
        ran = f", {self.precision}" if self.precision else ""
        lines.append(f"restored {len(self.done)}, skipped {len(self.skipped)}, failed {len(self.failed)} "
                     f"in {self.seconds:.1f} s ({rate:.2f} images/s, {mp_rate:.2f} MP/s){ran}")
        return "\n".join(lines)


def _reason(path: Path, why: str) -> str:
    """The message without its leading ``path:`` (read_image's errors name the file themselves)."""
    prefix = f"{path}: "
    return why.removeprefix(prefix)


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM through the CLI) during a batch, after the writes in flight finished;
    ``report`` holds what was done. Outputs are complete files or absent, never partial."""

    def __init__(self, report: BatchReport, total: int) -> None:
        super().__init__(f"interrupted after {len(report.done)} of {total} images")
        self.report, self.total = report, total


def plan_outputs(inputs: list[str], output: str | Path, *, recursive: bool = False, overwrite: bool = False,
                 skip_existing: bool = False) -> list[Job]:
    """Map inputs to output paths, refusing collisions and existing outputs (unless told otherwise)
    before any work.

    In an output folder, names are kept, but lossy inputs (JPEG, WebP) and formats that cannot be
    written (GIF) become ``<stem>.png``, losslessly, at the input's bit depth. A single output file
    named by the caller is written as named; a ``.jpg`` one at quality :data:`JPEG_QUALITY`."""
    from ..io import IMAGE_EXTENSIONS, WRITE_EXTENSIONS, list_images

    output = Path(output)
    files = list_images(inputs, recursive=recursive)
    single_file = len(inputs) == 1 and Path(inputs[0]).is_file()
    suffix = output.suffix.lower()
    if single_file and suffix in IMAGE_EXTENSIONS and suffix not in WRITE_EXTENSIONS and not output.is_dir():
        raise RestoreKitError(f"{output}: cannot write '{output.suffix}' files; use one of "
                              f"{', '.join(sorted(WRITE_EXTENSIONS))}")
    if single_file and suffix in WRITE_EXTENSIONS and not output.is_dir():
        jobs = [Job(files[0], output)]
    else:
        if output.exists() and not output.is_dir():
            raise RestoreKitError(f"{output}: exists and is not a folder; several inputs need an output folder")
        roots = [Path(i) for i in inputs if Path(i).is_dir()]
        jobs = [Job(f, output / _writable(_relative(f, roots))) for f in files]
    if output.suffix.lower() in WRITE_EXTENSIONS and not single_file:
        raise RestoreKitError(f"{output}: several inputs need an output folder, not a file name")
    seen: dict[str, Job] = {}
    for job in jobs:
        key = str(job.dst).casefold()  # a.JPG → a.png and a.PNG collide where file names ignore case
        if key in seen:
            other = seen[key]
            why = (" (JPEG, WebP and GIF inputs are written as PNG)"
                   if _renamed(job) or _renamed(other) else "")
            raise RestoreKitError(f"{other.src} and {job.src} would both be written to {job.dst}{why}; rename one "
                                  "or restore them into separate folders")
        if job.dst.resolve() == job.src.resolve():
            raise RestoreKitError(f"{job.src}: output would replace the input; choose another output folder")
        seen[key] = job
    existing = [j.dst for j in jobs if j.dst.exists()]
    if existing and skip_existing:
        return jobs
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise RestoreKitError(f"{existing[0]}{more}: exists", hint="overwrite=True replaces, skip_existing=True continues a batch",
                              cli_hint="pass --overwrite to replace or --skip-existing to continue a batch")
    return jobs


def _writable(name: Path) -> Path:
    from ..io import WRITE_EXTENSIONS

    suffix = name.suffix.lower()
    return name if suffix in WRITE_EXTENSIONS and suffix not in LOSSY_INPUTS else name.with_suffix(".png")


def _renamed(job: Job) -> bool:
    return job.src.suffix.lower() != job.dst.suffix.lower()


def output_notes(jobs: list[Job]) -> list[str]:
    """What a batch's summary says about encoding, once: lossy inputs written as PNG, and the quality
    of JPEG outputs."""
    notes = []
    lossless = [j for j in jobs if j.src.suffix.lower() in LOSSY_INPUTS and j.dst.suffix.lower() == ".png"]
    if lossless:
        kinds = sorted({"WebP" if j.src.suffix.lower() == ".webp" else "JPEG" for j in lossless})
        first = lossless[0]
        more = f", and {len(lossless) - 1} more likewise" if len(lossless) > 1 else ""
        notes.append(f"{first.src.name} → {first.dst.name}{more} (lossless; {' and '.join(kinds)} inputs are not "
                     "re-compressed)")
    jpeg = [j for j in jobs if j.dst.suffix.lower() in (".jpg", ".jpeg")]
    if jpeg:
        more = f" (and {len(jpeg) - 1} more)" if len(jpeg) > 1 else ""
        notes.append(f"{jpeg[0].dst}{more}: JPEG at quality {JPEG_QUALITY}, 4:4:4 chroma (lossy; name a .png "
                     "output for a lossless one)")
    return notes


def _relative(path: Path, roots: list[Path]) -> Path:
    for root in roots:
        try:
            return path.relative_to(root)
        except ValueError:
            continue
    return Path(path.name)


def check_writable(jobs: list[Job]) -> None:
    """Refuse, before any work, outputs that could not be written: a planned file that is a folder, a
    folder to be made where a file is, or a folder this process may not write into (each folder once)."""
    seen: set[Path] = set()
    for job in jobs:
        if job.dst.is_dir():
            raise RestoreKitError(f"{job.dst}: is a folder; the output of {job.src} cannot be written there")
        folder = job.dst.parent
        if folder in seen:
            continue
        seen.add(folder)
        existing = folder
        while not existing.exists() and existing != existing.parent:  # the nearest that exists: the rest is made in it
            existing = existing.parent
        if not existing.is_dir():
            raise RestoreKitError(f"{existing}: is a file, not a folder; cannot write {job.dst} under it")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise RestoreKitError(f"{existing}: not writable; cannot write {job.dst} (choose another output folder)")


# Images above AUTO_TILE_PIXELS run in AUTO_TILE tiles when the caller set no tile: memory bounded by the
# tile, and progress by tiles. Only for plain convolution stacks whose receptive field is bounded within
# tiling's exact bound (DnCNN and the built-in defaults, not MPRNet, DuRN or XDnCNN), for which the automatic
# overlap (3 × radius) makes tiled and whole-image results equal to float rounding.
AUTO_TILE_PIXELS = 4_000_000
AUTO_TILE = 1024


def auto_tile(model: nn.Module, options: InferenceOptions, height: int, width: int) -> InferenceOptions:
    """``options``, with ``tile=AUTO_TILE`` for a large image where that changes nothing but memory and
    progress (see :data:`AUTO_TILE_PIXELS`); a tile larger than the image runs it whole."""
    from .prepare import RestoreModule
    from .tiling import _EXACT_BOUND, _conv_bound

    if options.tile is not None or height * width <= AUTO_TILE_PIXELS:
        return options
    spec = model_spec(model, options.task)
    if spec.fixed is not None or spec.multiple > AUTO_TILE // 4:
        return options
    # The layers' bound, not receptive_radius: above the exact bound that is probed, and a probe can see less.
    if _conv_bound(RestoreModule(model, spec.info, task=spec.task, borrowed=True), spec) > _EXACT_BOUND:
        return options
    return dataclasses.replace(options, tile=AUTO_TILE)


def restore_files(jobs: list[Job], *, model: str | None = None, weights: str | None = None, options: Any = None,
                  bit_depth: int | None = None, overwrite: bool = False, progress: bool = True,
                  max_pixels: int | None | str = "default") -> BatchReport:
    """Restore each job's image to its output; a file that fails is reported in the result and the
    batch goes on. ``max_pixels`` (None: no limit; "default": read_image's) refuses larger images
    before decoding them. ``options`` None: ``InferenceOptions(precision="auto")``, the device's fast
    precision (the summary says which ran). Outputs that could not be written fail before any work
    (:func:`check_writable`); large images are tiled where that is exact (:func:`auto_tile`). ``progress``
    shows a bar of images with the rate in megapixels per second, and one of tiles for an image of several."""
    from tqdm import tqdm

    from ..io import current_pixel_limit, read_image, write_image
    from ..pretrained import resolve_model

    options = options or InferenceOptions(precision="auto")
    limit = current_pixel_limit() if max_pixels == "default" else max_pixels  # resolved here: threads read
    report = BatchReport(notes=output_notes(jobs))
    todo = [j for j in jobs if overwrite or not j.dst.exists()]
    report.skipped = [j.src for j in jobs if j not in todo]
    models: dict[int, nn.Module] = {}

    def model_for(channels: int) -> nn.Module:
        key = 0 if (model or weights) else channels
        if key not in models:
            models[key] = resolve_model(model, weights, channels=channels)
        return models[key]

    check_options(options)
    check_writable(todo)
    if model or weights:
        check_options(options, model=model_for(3))  # a bad model, weights file or option fails before any image is read
    report.precision = describe_precision(options, resolve_device(options.device))

    def read(path: Path) -> Any:
        return read_image(path, max_pixels=limit)

    start = time.perf_counter()
    pool = ThreadPoolExecutor(max_workers=2)
    reads: list[Future] = [pool.submit(read, j.src) for j in todo[:2]]
    writes: list[tuple[Job, Future]] = []
    bar = tqdm(todo, desc="restore", unit="img", disable=not progress)
    tile_bar: list[Any] = []  # the current image's, while it runs (images of more than one tile)

    def on_tiles(done: int, total: int) -> None:
        if total > 1 and progress:
            if not tile_bar:
                tile_bar.append(tqdm(total=total, desc="tiles", unit="tile", position=1, leave=False))
            tile_bar[0].update(done - tile_bar[0].n)

    def close_tile_bar() -> None:
        if tile_bar:
            tile_bar.pop().close()

    try:
        for i, job in enumerate(bar):
            if i + 2 < len(todo):
                reads.append(pool.submit(read, todo[i + 2].src))
            try:
                img = reads[i].result()
                reads[i] = None  # type: ignore[call-overload]
                net = model_for(img.channels)
                h, w = img.pixels.shape[:2]
                rate = report.megapixels / (time.perf_counter() - start)
                bar.set_postfix_str(f"{rate:.2f} MP/s; {job.src.name}: {h * w / 1e6:.1f} MP…")
                run = dataclasses.replace(auto_tile(net, options, h, w), progress=on_tiles)
                try:
                    out = restore_pixels(net, img.pixels, run, name=str(job.src))
                finally:
                    close_tile_bar()
                report.megapixels += h * w / 1e6
                bar.set_postfix_str(f"{report.megapixels / (time.perf_counter() - start):.2f} MP/s")
                depth = bit_depth or img.bit_depth
                writes.append((job, pool.submit(write_image, job.dst, out, alpha=img.alpha, bit_depth=depth,
                                                overwrite=overwrite, quality=JPEG_QUALITY)))
            except RestoreKitError as exc:
                report.failed.append((job.src, str(exc)))
            writes = _collect(writes, report, wait=False)
        _collect(writes, report, wait=True)
    except KeyboardInterrupt:
        for fut in reads:
            if fut is not None:
                fut.cancel()
        finished = set(report.done)
        # writes already queued finish (complete files, kept); a Ctrl-C inside _collect may have counted some
        _collect([(j, f) for j, f in writes if j.dst not in finished], report, wait=True)
        report.seconds = time.perf_counter() - start
        raise BatchInterrupted(report, len(todo)) from None
    finally:
        bar.close()
        pool.shutdown(wait=True, cancel_futures=True)
    report.seconds = time.perf_counter() - start
    return report


def _collect(writes: list[tuple[Job, Future]], report: BatchReport, *, wait: bool) -> list[tuple[Job, Future]]:
    pending = []
    for job, fut in writes:
        if not wait and not fut.done():
            pending.append((job, fut))
            continue
        try:
            fut.result()
            report.done.append(job.dst)
        except RestoreKitError as exc:
            report.failed.append((job.src, str(exc)))
        except OSError as exc:
            report.failed.append((job.src, f"cannot write {job.dst}: {exc.strerror or exc}"))
    return pending

"""Batch restoration of files: outputs planned (and refused) before any work, reading, inference and
writing overlapped, one bad file reported without stopping the batch. An interrupted batch (Ctrl-C)
keeps the outputs already written (each written atomically) and says how to continue."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import RestoreKitError
from .prepare import InferenceOptions, check_options
from .restore import restore_pixels


@dataclass(frozen=True)
class Job:
    src: Path
    dst: Path


@dataclass
class BatchReport:
    done: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [f"{path}: {_reason(path, why)}" for path, why in self.failed]
        rate = len(self.done) / self.seconds if self.seconds else 0.0
        lines.append(f"restored {len(self.done)}, skipped {len(self.skipped)}, failed {len(self.failed)} "
                     f"in {self.seconds:.1f} s ({rate:.2f} images/s)")
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
    """Map inputs to output paths (same names; formats that cannot be written, such as GIF and WebP,
    become PNG), refusing existing outputs unless told otherwise."""
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
    seen: dict[Path, Path] = {}
    for job in jobs:
        if job.dst in seen:
            raise RestoreKitError(f"{job.src} and {seen[job.dst]} would both be written to {job.dst}")
        if job.dst.resolve() == job.src.resolve():
            raise RestoreKitError(f"{job.src}: output would replace the input; choose another output folder")
        seen[job.dst] = job.src
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

    return name if name.suffix.lower() in WRITE_EXTENSIONS else name.with_suffix(".png")


def _relative(path: Path, roots: list[Path]) -> Path:
    for root in roots:
        try:
            return path.relative_to(root)
        except ValueError:
            continue
    return Path(path.name)


def restore_files(jobs: list[Job], *, model: str | None = None, weights: str | None = None, options: Any = None,
                  bit_depth: int | None = None, overwrite: bool = False, progress: bool = True,
                  max_pixels: int | None | str = "default") -> BatchReport:
    """Restore each job's image to its output; a file that fails is reported in the result and the
    batch goes on. ``max_pixels`` (None: no limit; "default": read_image's) refuses larger images
    before decoding them."""
    from tqdm import tqdm

    from ..io import current_pixel_limit, read_image, write_image
    from ..pretrained import resolve_model

    options = options or InferenceOptions()
    limit = current_pixel_limit() if max_pixels == "default" else max_pixels  # resolved here: threads read
    report = BatchReport()
    todo = [j for j in jobs if overwrite or not j.dst.exists()]
    report.skipped = [j.src for j in jobs if j not in todo]
    models: dict[int, nn.Module] = {}

    def model_for(channels: int) -> nn.Module:
        key = 0 if (model or weights) else channels
        if key not in models:
            models[key] = resolve_model(model, weights, channels=channels)
        return models[key]

    check_options(options)
    if model or weights:
        check_options(options, model=model_for(3))  # a bad model, weights file or option fails before any image is read

    def read(path: Path) -> Any:
        return read_image(path, max_pixels=limit)

    start = time.perf_counter()
    pool = ThreadPoolExecutor(max_workers=2)
    reads: list[Future] = [pool.submit(read, j.src) for j in todo[:2]]
    writes: list[tuple[Job, Future]] = []
    try:
        for i, job in enumerate(tqdm(todo, desc="restore", unit="img", disable=not progress)):
            if i + 2 < len(todo):
                reads.append(pool.submit(read, todo[i + 2].src))
            try:
                img = reads[i].result()
                reads[i] = None  # type: ignore[call-overload]
                net = model_for(img.channels)
                out = restore_pixels(net, img.pixels, options, name=str(job.src))
                depth = bit_depth or img.bit_depth
                writes.append((job, pool.submit(write_image, job.dst, out, alpha=img.alpha, bit_depth=depth,
                                                overwrite=overwrite)))
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

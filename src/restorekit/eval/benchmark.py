"""Benchmark several models over several test sets and noise levels, resumably.

Every finished cell (model × set × σ) is written to ``OUT/cells/<key>.json`` as soon as it is measured;
the key hashes what determines the numbers (the weights' bytes, the set's files, σ, protocol, seed,
inference options), so a rerun reuses finished cells and recomputes only what changed or is missing.
Restored images are not kept, except the few crops the report shows (:mod:`.crops`, cached in
``OUT/crops``). What was measured is :mod:`.results`; drawing it is :mod:`restorekit.report`'s job.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import RestoreKitError
from . import datasets, evaluate
from .env import environment
from .results import (
    CELL_VERSION,
    BenchmarkResults,
    Cell,
    ModelEntry,
    SetEntry,
    Skip,
    write_results,
)

__all__ = ["run_benchmark", "parse_model_spec", "cell_key", "DEFAULT_SETS", "DEFAULT_SIGMAS"]

DEFAULT_SETS = ("Set12", "BSD68", "CBSD68", "Kodak24", "McMaster", "PolyU", "CC15")
DEFAULT_SIGMAS = (15.0, 25.0, 50.0)
# Options that change where or how fast a model runs, not its numbers: not part of a cell's key.
_KEY_EXCLUDED_OPTIONS = {"device", "tile_batch", "batch_size", "progress"}


def _key_options(inference: dict[str, Any]) -> dict[str, Any]:
    """The inference options that enter a cell's key: those that differ from their defaults, so that a
    new option (whose default keeps the old behaviour) leaves the finished cells valid."""
    from ..inference import InferenceOptions

    defaults = _options_dict(InferenceOptions())
    return {k: v for k, v in inference.items()
            if k not in _KEY_EXCLUDED_OPTIONS and (k not in defaults or v != defaults[k])}
# Tasks whose models take synthetic Gaussian noise on clean sets.
_SYNTHETIC_TASKS = {"denoise"}


def parse_model_spec(spec: str) -> tuple[str | None, str]:
    """``LABEL=PATH`` or ``PATH``/built-in name → (label or None, weights). Official file names contain
    ``=`` themselves (``sigma=25.mat``): a spec is split only where the part after ``=`` names weights."""
    from ..pretrained import BUILTIN

    if spec in BUILTIN or Path(spec).exists() or "=" not in spec:
        return None, spec
    label, weights = spec.split("=", 1)
    if label and (weights in BUILTIN or Path(weights).exists()):
        return label, weights
    return None, spec  # neither reading names a file: the error will quote the spec as given


_GENERIC_STEMS = {"net", "model", "model_best", "best", "last", "checkpoint", "weights", "final"}


def _default_labels(specs: list[str]) -> list[str]:
    """File stems (``sigma=25``), with the folder prefixed where the stem says nothing or repeats
    (SaoYan's ``DnCNN-S-25/net.pth``, a run's ``best.safetensors``)."""
    labels = [Path(s).stem if Path(s).suffix else s for s in specs]
    out = []
    for spec, label in zip(specs, labels):
        parent = Path(spec).parent.name
        generic = label.lower() in _GENERIC_STEMS or labels.count(label) > 1
        out.append(f"{parent}/{label}" if generic and parent else label)
    return out


def _describe_model(label: str, spec: str) -> tuple[ModelEntry, nn.Module]:
    from ..models.registry import count_parameters
    from ..io.files import sha256_file
    from ..pretrained import load_weights, weights_file

    path = weights_file(spec)
    model = load_weights(path)
    info = model.info
    meta = getattr(model, "checkpoint_meta", None) or {}
    source = meta.get("source", {}).get("file", "") if isinstance(meta.get("source"), dict) else ""
    entry = ModelEntry(label=label, spec=spec, path=str(path), sha256=sha256_file(path), arch=info.name, task=info.task,
                       channels=info.channels, params=count_parameters(model), source_file=source,
                       protocol=info.protocol)
    return entry, model


def _set_channels(path: Path) -> int:
    """1 when the set's images are gray (or RGB with equal channels), else 3."""
    import numpy as np

    from ..io import read_image

    px = read_image(path).pixels
    if px.shape[2] == 1:
        return 1
    return 1 if np.array_equal(px[..., 0], px[..., 1]) and np.array_equal(px[..., 1], px[..., 2]) else 3


def _describe_set(name: str) -> SetEntry:
    folder, samples = datasets.dataset_samples(name)
    if not samples:
        raise RestoreKitError(f"{folder}: no images")
    base, _ = datasets.split_subset(name)
    suffix = str(name)[len(base):]  # "[80:]" for a slice, else ""
    paired = any(s.degraded is not None for s in samples)
    h = hashlib.sha256()
    for s in samples:
        for p in (s.target, s.degraded):
            if p is not None:
                h.update(f"{p.relative_to(folder).as_posix()}:{p.stat().st_size}\n".encode())
    channels = max(_set_channels(s.target) for s in samples[:3])
    label = Path(base).name if Path(base).is_dir() else base
    return SetEntry(name=label + suffix, path=str(folder) + suffix,
                    paired=paired, channels=channels, images=len(samples), fingerprint=h.hexdigest())


def _options_dict(options: Any) -> dict[str, Any]:
    if options is None:
        return {}
    if dataclasses.is_dataclass(options):
        d = asdict(options)
    else:
        d = dict(vars(options))
    return {k: (v if isinstance(v, (int, float, str, bool, type(None))) else str(v)) for k, v in d.items()}


def cell_key(model: ModelEntry, data: SetEntry, sigma: float | None, protocol: str, settings: dict[str, Any]) -> str:
    """Hash of everything that determines a cell's numbers (not labels, paths or the device)."""
    inference = _key_options(settings.get("inference", {}))
    ident = {"version": CELL_VERSION, "weights": model.sha256, "data": data.fingerprint, "channels": model.channels,
             "sigma": sigma, "protocol": protocol, "seed": settings["seed"], "repeats": settings["repeats"],
             "clip_noise": settings["clip_noise"], "crop_border": settings["crop_border"], "inference": inference}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:24]


class _ForwardTimer:
    """Accumulates the time spent running the model (CUDA synchronised around each call).

    The inference path runs a prepared copy (BatchNorm folded, moved to the device) inside a
    ``RestoreModule``; hooks on the caller's model would miss it, so global module hooks time the
    ``RestoreModule`` calls, or the model itself where it is run directly."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.seconds = 0.0
        self.calls = 0
        self.device = ""
        self._depth = 0
        self._start = 0.0
        self._handles: list[Any] = []
        try:
            from ..inference import RestoreModule

            self._wrapper: type | None = RestoreModule
        except ImportError:
            self._wrapper = None

    def _timed(self, module: nn.Module) -> bool:
        return module is self.model or (self._wrapper is not None and isinstance(module, self._wrapper))

    def _sync(self, args: tuple[Any, ...]) -> None:
        import torch

        x = next((a for a in args if isinstance(a, torch.Tensor)), None)
        if x is not None:
            self.device = str(x.device)
            if x.is_cuda:
                torch.cuda.synchronize(x.device)

    def _pre(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        if self._timed(module):
            self._depth += 1
            if self._depth == 1:  # the wrapper calls the model: time the outer call only
                self._sync(args)
                self._start = time.perf_counter()

    def _post(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if self._timed(module):
            self._depth -= 1
            if self._depth == 0:
                self._sync(args)
                self.seconds += time.perf_counter() - self._start
                self.calls += 1

    def __enter__(self) -> "_ForwardTimer":
        from torch.nn.modules.module import (
            register_module_forward_hook,
            register_module_forward_pre_hook,
        )

        self._handles = [register_module_forward_pre_hook(self._pre), register_module_forward_hook(self._post)]
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self._handles:
            h.remove()


def _image_megapixels(spec: str) -> dict[str, float]:
    from PIL import Image as PILImage

    sizes = {}
    for s in datasets.dataset_samples(spec)[1]:
        with PILImage.open(s.target) as im:
            sizes[s.name] = im.size[0] * im.size[1] / 1e6
    return sizes


def _measure_cell(model: nn.Module, entry: ModelEntry, data: SetEntry, sigma: float | None, protocol: str,
                  settings: dict[str, Any], options: Any, progress: bool) -> dict[str, Any]:
    es = evaluate.EvalSettings(data=data.path, sigma=sigma, seed=settings["seed"], repeats=settings["repeats"],
                               clip_noise=settings["clip_noise"], protocol=protocol,
                               crop_border=settings["crop_border"], model=entry.arch, weights=entry.spec,
                               inference=settings["inference"])
    megapixels = _image_megapixels(data.path)
    rows: list[dict[str, Any]] = []
    wall = time.perf_counter()
    with _ForwardTimer(model) as timer:
        last_fwd, last_wall = 0.0, wall
        for row in evaluate.iter_evaluation(model, es, options, progress=progress):
            now = time.perf_counter()
            row = dict(row, seconds=timer.seconds - last_fwd, wall_seconds=now - last_wall,
                       megapixels=megapixels.get(row["name"], 0.0) * settings["repeats"])
            last_fwd, last_wall = timer.seconds, now
            rows.append(row)
    if not rows:
        raise RestoreKitError(f"{data.path}: no images evaluated")
    timing = "forward" if timer.calls else "wall"
    timed = rows[1:] if len(rows) > 1 else rows  # the first image pays for warm-up (allocation, cuDNN tuning)
    secs = sum(r["seconds" if timer.calls else "wall_seconds"] for r in timed)
    mp = sum(r["megapixels"] for r in timed)
    keys = ("psnr", "ssim", "input_psnr", "input_ssim")
    return {"mean": {k: sum(r[k] for r in rows) / len(rows) for k in keys}, "images": rows,
            "speed_mp_s": mp / secs if secs > 0 else None, "timing": timing,
            "device": timer.device or str(settings["inference"].get("device", "cpu"))}


def _skip_reason(entry: ModelEntry, data: SetEntry, sigma: float | None) -> str | None:
    kind = {1: "gray", 3: "colour"}
    if entry.channels != data.channels:
        return f"{kind.get(entry.channels, entry.channels)} model on a {kind.get(data.channels, data.channels)} set"
    if sigma is not None and entry.task not in _SYNTHETIC_TASKS:
        return f"a {entry.task} model: synthetic Gaussian noise is for Gaussian denoisers"
    return None


def _read_cell(path: Path, key: str) -> Cell | None:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        cell = Cell.from_dict(d)
    except (OSError, ValueError, TypeError):
        return None
    return cell if cell.key == key and cell.version == CELL_VERSION else None


def _plan(entry: ModelEntry, sets: list[SetEntry], sigmas: list[float]) -> list[tuple[SetEntry, float | None, str | None]]:
    return [(s, sigma, _skip_reason(entry, s, sigma)) for s in sets for sigma in ([None] if s.paired else sigmas)]


def _run_cell(model: nn.Module, entry: ModelEntry, data: SetEntry, sigma: float | None, protocol: str,
              settings: dict[str, Any], options: Any, cells_dir: Path, env: dict[str, Any], *, resume: bool,
              progress: bool, failed: list[Skip], bar: Any) -> Cell | None:
    """A finished cell from disk, or measured now and stored at once; None (and noted) when it fails."""
    from ..io.files import atomic_write_text

    key = cell_key(entry, data, sigma, protocol, settings)
    path = cells_dir / f"{key}.json"
    cell = _read_cell(path, key) if resume and path.is_file() else None
    if cell is not None:
        cell.reused = True
        cell.model, cell.set = entry.label, data.name  # labels may change between runs
        return cell
    try:
        measured = _measure_cell(model, entry, data, sigma, protocol, settings, options, progress)
    except RestoreKitError as exc:
        failed.append(Skip(entry.label, data.name, sigma, str(exc)))
        bar.write(f"failed: {entry.label} on {data.name}: {exc}")
        return None
    cell = Cell(key=key, model=entry.label, set=data.name, sigma=sigma, protocol=protocol, environment=env,
                settings={k: settings[k] for k in ("seed", "repeats", "clip_noise", "crop_border", "inference")},
                created=time.strftime("%Y-%m-%dT%H:%M:%S"), **measured)
    atomic_write_text(path, json.dumps(cell.to_dict(), indent=1) + "\n")
    return cell


def run_benchmark(models: list[str] | None, sets: list[str] | None, sigmas: list[float] | None, out_dir: str | Path, *,
                  protocol: str | None = None, options: Any = None, resume: bool = True, progress: bool = True,
                  seed: int = 0, repeats: int = 1, clip_noise: bool = False, crop_border: int = 0,
                  crops: bool = True, command: str | None = None) -> BenchmarkResults:
    """Evaluate each model (``LABEL=WEIGHTS`` or ``WEIGHTS``: a checkpoint, an official file or a built-in
    name) on each set (a folder or a named set) at each σ (clean sets; paired sets ignore σ), resuming
    finished cells from ``out_dir/cells``; restore the crops the report shows (``crops``, cached in
    ``out_dir/crops``); then write results.json/.csv there. ``restorekit.report.write_report`` draws
    the report from the results. ``command``, the command line that ran this, is recorded in the
    results (and printed in the report) so that it can be re-run."""
    from tqdm import tqdm

    from ..inference import InferenceOptions, resolved_options
    from ..metrics import get_protocol
    from ..pretrained import available_builtins

    out_dir = Path(out_dir)
    if protocol is not None:
        get_protocol(protocol)
    if not models:
        models = available_builtins()
        if not models:
            raise RestoreKitError("no models given and no built-in weights installed", hint="give models (names or weight files)",
                                  cli_hint="pass --models WEIGHTS …")
    sigma_list = [float(s) for s in (DEFAULT_SIGMAS if sigmas is None else sigmas)]
    for s in sigma_list:
        if not 0 <= s <= 255:
            raise RestoreKitError(f"sigma {s:g} is outside 0..255")
    notes: list[str] = []
    if sets is None:
        found = []
        for name in DEFAULT_SETS:
            try:
                datasets.find_dataset(name)
                found.append(name)
            except RestoreKitError:
                notes.append(f"default set {name} not found: skipped")
        if not found:
            raise RestoreKitError("no test sets given and none of the default sets found", hint="give sets",
                                  cli_hint="pass --sets")
        sets = found
    # recorded as run ("bf16", not "auto"): a cell's numbers are the precision's, not the machine's choice
    options = resolved_options(options if options is not None else InferenceOptions())
    settings = {"seed": seed, "repeats": repeats, "clip_noise": clip_noise, "crop_border": crop_border,
                "protocol": protocol, "sigmas": sigma_list, "inference": _options_dict(options)}
    if command:
        settings["command"] = command

    parsed = [parse_model_spec(m) for m in models]
    defaults = _default_labels([w for _, w in parsed])
    labels = [lab or d for (lab, _), d in zip(parsed, defaults)]
    if len(set(labels)) != len(labels):
        dup = sorted({x for x in labels if labels.count(x) > 1})
        raise RestoreKitError(f"two models labelled {', '.join(dup)}; name them LABEL=WEIGHTS")
    set_entries = [_describe_set(s) for s in sets]
    names = [s.name for s in set_entries]
    if len(set(names)) != len(names):
        raise RestoreKitError(f"test set given twice: {', '.join(sorted({n for n in names if names.count(n) > 1}))}")
    for s in set_entries:
        if s.paired and sigmas:
            notes.append(f"{s.name} is a paired (real degradation) set: σ does not apply")

    cells_dir = out_dir / "cells"
    entries: list[ModelEntry] = []
    cells: list[Cell] = []
    skipped: list[Skip] = []
    failed: list[Skip] = []
    env = environment()
    bar = tqdm(total=0, desc="benchmark", unit="cell", disable=not progress)
    # One model in memory at a time: load it, run (or reuse) its cells, drop it.
    for label, (_, weights) in zip(labels, parsed):
        entry, model = _describe_model(label, weights)
        entries.append(entry)
        plan = list(_plan(entry, set_entries, sigma_list))
        bar.total += sum(r is None for *_, r in plan)
        bar.refresh()
        for s, sigma, reason in plan:
            if reason is not None:
                skipped.append(Skip(label, s.name, sigma, reason))
                continue
            bar.set_postfix_str(f"{label} · {s.name}" + ("" if sigma is None else f" σ={sigma:g}"))
            cell = _run_cell(model, entry, s, sigma, protocol or evaluate.default_protocol(entry), settings,
                             options, cells_dir, env, resume=resume, progress=progress, failed=failed, bar=bar)
            if cell is not None:
                cells.append(cell)
            bar.update()
        del model
    bar.close()

    results = BenchmarkResults(out_dir=out_dir, models=entries, sets=set_entries, cells=cells, skipped=skipped,
                               failed=failed, notes=notes, environment=env, settings=settings)
    if crops and cells:
        from .crops import make_crops

        try:
            results.crops = make_crops(results, options=options, progress=progress)
        except RestoreKitError as exc:
            results.notes.append(f"crops not drawn: {exc}")
    write_results(results)
    return results

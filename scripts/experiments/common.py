"""Shared helpers of the experiment scripts in this folder (one place for all of them).

- finding the data in ``../shared`` (or ``$RESTOREKIT_DATA``) and skipping cleanly without it;
- training a shipped recipe with ``key=value`` overrides in a named run folder, resuming it when the
  folder already holds a run (``restorekit.train.train(..., resume=...)``), with a wall-clock budget
  mode that trains in chunks of steps;
- building held-out sets through restorekit's own data code (``build_val_set``: degradation seeded by
  each image's name, so every run and machine sees the same inputs) and evaluating a checkpoint on them
  through the inference path (``restore_tensor``) with a metrics protocol;
- timing inference, and writing a report folder: ``report.md`` (tables), ``results.json`` and PNG plots,
  each with the command that produced it.

The scripts run with ``PYTHONPATH=src`` from the checkout's root; this module adds ``src`` to the path
itself when restorekit is not importable.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import shlex
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
try:
    import restorekit  # noqa: F401
except ImportError:  # run without PYTHONPATH=src
    sys.path.insert(0, str(ROOT / "src"))

import torch

from restorekit.errors import RestoreKitError

# Run folders are never committed (``runs/`` is git-ignored); reports go to reports/experiments/NAME.
DEFAULT_RUNS = Path("runs") / "experiments"
DEFAULT_DOCS = ROOT / "reports" / "experiments"
# Train steps are counted by the engine; these settings keep its side outputs out of the timing:
# no progress bar or TensorBoard, no curves.png redraw and no validation (evaluation happens after).
QUIET = ["train.progress=false", "train.tensorboard=false", "train.plot=false", "data.val=null",
         "train.val_unit=step", "train.val_every=1000000000"]


# --------------------------------------------------------------------------- command line, threads


def base_parser(name: str, description: str, epilog: str = "") -> argparse.ArgumentParser:
    """Options every script shares: --quick, --out, --runs, --threads, --seed."""
    p = argparse.ArgumentParser(prog=f"scripts/experiments/{name}.py", description=description, epilog=epilog,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="a tiny end-to-end check (a few steps, 2 images, small crops); reports go to "
                        f"{DEFAULT_RUNS}-quick/{name}/report unless --out is given")
    p.add_argument("--out", type=Path, default=None,
                   help=f"report folder (default reports/experiments/{name}; with --quick {DEFAULT_RUNS}-quick/{name}/report)")
    p.add_argument("--runs", type=Path, default=None,
                   help=f"folder of the training runs (default {DEFAULT_RUNS}/{name}, or {DEFAULT_RUNS}-quick/{name}). "
                        "Running the same command again resumes unfinished runs and reuses finished ones")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads for training, evaluation and timing (default: torch's, i.e. OMP_NUM_THREADS)")
    p.add_argument("--seed", type=int, default=0, help="training seed (train.seed)")
    return p


def finish_args(args: argparse.Namespace, name: str) -> argparse.Namespace:
    """Default folders (quick runs never write into docs/), threads, and the warnings we expect."""
    quick_root = Path(f"{DEFAULT_RUNS}-quick") / name
    if args.runs is None:
        args.runs = quick_root if args.quick else DEFAULT_RUNS / name
    if args.out is None:
        args.out = quick_root / "report" if args.quick else DEFAULT_DOCS / name
    args.runs, args.out = args.runs.resolve(), args.out.resolve()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.threads = torch.get_num_threads()
    # IPT's 24-48 px tiles are "small" for its unbounded receptive field: expected, said once in the report
    warnings.filterwarnings("ignore", message="tile .* is small for model")
    return args


def command_line() -> str:
    """The command that is running, as one could type it again from the checkout's root."""
    script_text = shown(Path(sys.argv[0]))
    env = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} " if "OMP_NUM_THREADS" in os.environ else ""
    return f"{env}PYTHONPATH=src python {shlex.join([script_text, *sys.argv[1:]])}"


def shown(path: Path) -> str:
    """A path as the reports print it: relative to the checkout's root when inside it (no machine's
    absolute paths in committed reports)."""
    try:
        return Path(path).resolve().relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# --------------------------------------------------------------------------- data


def require_data(*names: str) -> dict[str, Path]:
    """Named sets (``BSD400``, ``PolyU``, ``rain-sample`` …) found under ../shared/data or
    $RESTOREKIT_DATA; without them, a one-line skip message and exit status 0."""
    from restorekit.eval.datasets import find_dataset

    found, missing = {}, []
    for name in names:
        try:
            found[name] = find_dataset(name).resolve()
        except RestoreKitError:
            missing.append(name)
    if missing:
        print(f"skipped: data set(s) {', '.join(missing)} not found under ../shared/data or $RESTOREKIT_DATA "
              "(see ../shared/README.md); nothing to run", flush=True)
        raise SystemExit(0)
    return found


def yaml_value(value: Any) -> str:
    """An override's value as YAML (JSON is YAML): lists, mappings and None included."""
    return json.dumps(value)


def clean_heldout(root: Path | Sequence[Path], degradation: dict[str, Any] | None, *, channels: int,
                  crop: int | None, max_images: int | None, resize: list[int] | None = None) -> list[Any]:
    """Held-out (degraded, clean) items from clean images, degraded once with a generator seeded by
    each file name (``restorekit.data.build_val_set``): the same inputs in every run."""
    from restorekit.data import DatasetConfig, DegradationConfig, build_val_set

    roots = [str(r) for r in (root if isinstance(root, (list, tuple)) else [root])]
    cfg = DatasetConfig(root=roots, kind="clean", channels=channels, center_crop=crop, max_images=max_images,
                        resize=resize,
                        degradation=DegradationConfig(degradation["name"], dict(degradation.get("params") or {})))
    return build_val_set(cfg, channels)


def paired_heldout(root: Path, *, input: str, target: str, channels: int, crop: int | None = None,
                   resize: list[int] | None = None, select: slice | None = None) -> list[Any]:
    """Held-out (degraded, clean) pairs matched by name (``restorekit.data.find_pairs`` order, sorted by
    name), optionally a ``select`` slice of them (e.g. ``slice(80, None)`` for a train/held-out split)."""
    from restorekit.data import DatasetConfig, build_val_set

    cfg = DatasetConfig(root=[str(root)], kind="paired", input=input, target=target, channels=channels,
                        center_crop=crop, resize=resize)
    items = build_val_set(cfg, channels)
    return items[select] if select is not None else items


# --------------------------------------------------------------------------- training


@dataclass
class RunStatus:
    step: int
    wall_time: float


def run_status(run_dir: Path) -> RunStatus | None:
    """Step and training wall time of the run's last checkpoint (None when there is none yet)."""
    from restorekit.checkpoints import checkpoint_metadata

    last = Path(run_dir) / "last.safetensors"
    if not last.is_file() or not (Path(run_dir) / "state.pt").is_file():
        return None
    meta = checkpoint_metadata(last)
    return RunStatus(int(meta.get("step", 0)), float(meta.get("wall_time", 0.0)))


def _check_resumable(recipe: str, overrides: list[str], run_dir: Path, allowed: tuple[str, ...]) -> None:
    """Refuse (with the differences) to resume a run made with other settings, except ``allowed`` keys."""
    from restorekit.recipes import load_recipe
    from restorekit.train import build_config, config_diff
    from restorekit.train.config import resolve_paths

    saved = build_config(run_dir / "config.yaml")
    new = resolve_paths(build_config(load_recipe(recipe), overrides))
    changes = [c for c in config_diff(saved, new) if c.split(":", 1)[0] not in allowed]
    if changes:
        raise SystemExit(
            f"error: {run_dir} holds a run made with other settings ({'; '.join(changes[:6])}"
            f"{' …' if len(changes) > 6 else ''}). Use the options it was made with, another --runs folder, "
            "or delete that run folder to start it again."
        )


def run_training(recipe: str, overrides: Iterable[str], run_dir: Path, *, steps: int, label: str = "") -> RunStatus:
    """Train ``recipe`` with ``overrides`` for ``steps`` steps in ``run_dir`` (resumed if it holds a
    run, reused if it is finished: ``steps`` reached, or its ``train.max_minutes`` spent). Exits with a
    message when the run stopped early (Ctrl-C / SIGTERM: the engine saved a resumable checkpoint; the
    same command continues it)."""
    from restorekit.errors import RestoreKitError
    from restorekit.recipes import load_recipe
    from restorekit.train import build_config
    from restorekit.train import train as engine_train

    def train(**kw: Any) -> None:
        try:
            engine_train(**kw)
        except RestoreKitError as exc:  # a bad setting or data: one line, as restorekit train says it
            raise SystemExit(f"{label}: {exc}") from None

    run_dir = Path(run_dir)
    label = label or run_dir.name
    overrides = [*QUIET, *overrides, "train.epochs=null", f"train.steps={steps}", f"run_dir={run_dir}"]
    try:  # the engine ends a run on its train.max_minutes, validated and saved: spent, it counts as finished
        budget = build_config(load_recipe(recipe), overrides).train.max_minutes
    except RestoreKitError as exc:
        raise SystemExit(f"{label}: {exc}") from None

    def budget_spent(status: RunStatus) -> bool:
        return budget is not None and status.wall_time >= budget * 60

    status = run_status(run_dir)
    start_step, cpu0 = (status.step if status else 0), time.process_time()
    if status is not None and status.step >= steps:
        log(f"{label}: already trained ({status.step} steps) in {run_dir}")
        return status
    if status is not None and budget_spent(status):
        log(f"{label}: its time budget is spent ({status.step} steps, {status.wall_time / 60:.1f} min) in {run_dir}")
        return status
    if status is not None:
        _check_resumable(recipe, overrides, run_dir, allowed=("train.steps",))
        log(f"{label}: resuming {run_dir} at step {status.step} of {steps}")
        train(recipe=recipe, overrides=overrides, resume=run_dir, allow_config_change=True)
    else:
        if (run_dir / "config.yaml").exists():  # killed before its first checkpoint: nothing to keep
            for f in ("config.yaml", "metrics.csv", "train.log"):
                (run_dir / f).unlink(missing_ok=True)
        log(f"{label}: training {recipe} for {steps} steps in {run_dir}")
        train(recipe=recipe, overrides=overrides)
    status = run_status(run_dir)
    if status is not None and status.step < steps and budget_spent(status):
        log(f"{label}: time budget reached at step {status.step} of {steps}")
    elif status is None or status.step < steps:
        at = status.step if status else 0
        raise SystemExit(f"{label}: training stopped at step {at} of {steps}; run the same command again to continue")
    cpu = (time.process_time() - cpu0) / max(1, status.step - start_step)
    log(f"{label}: {status.step} steps, {status.wall_time:.1f} s of training ({status.wall_time / status.step:.3f} s/step "
        f"wall; this call {cpu:.3f} s/step of process CPU time, data loading included)")
    return status


def train_for_minutes(recipe: str, overrides: Iterable[str], run_dir: Path, *, minutes: float,
                      probe_steps: int = 20, label: str = "") -> RunStatus:
    """Train until the run's own training wall time (the engine's ``wall_time``: the step loop, not the
    data loading before it) reaches ``minutes``.

    The engine has no time limit, so this trains in chunks: ``probe_steps`` first, then as many steps as
    the measured time per step says fit in what is left, resuming with a larger ``train.steps`` (the
    only config change allowed), until less than one step's time is left. With a schedule that does not
    depend on the run's length (constant, or milestones in steps) the result is the same as one run of
    that many steps. Overshoot: at most one step, plus any misestimate when the machine's load changes.
    """
    overrides = list(overrides)
    budget = minutes * 60.0
    status = run_status(run_dir) or run_training(recipe, overrides, run_dir, steps=probe_steps, label=label)
    for _ in range(50):
        per_step = status.wall_time / max(1, status.step)
        left = budget - status.wall_time
        if left < per_step:
            break
        target = status.step + max(1, int(left / per_step))
        status = run_training(recipe, overrides, run_dir, steps=target, label=label)
    return status


def metrics_rows(run_dir: Path) -> list[dict[str, float | None]]:
    from restorekit.report.training import read_metrics

    path = Path(run_dir) / "metrics.csv"
    return read_metrics(path) if path.is_file() else []


def load_run(run_dir: Path, which: str = "last") -> torch.nn.Module:
    """The run's ``last`` (or ``best``) weights as a model in eval mode."""
    from restorekit.checkpoints import load

    return load(Path(run_dir) / f"{which}.safetensors")


# --------------------------------------------------------------------------- evaluation


def evaluate_items(model: torch.nn.Module, items: Sequence[Any], *, protocol: str, task: str | None = None,
                   crop_border: int = 0, baseline: Callable[[torch.Tensor], torch.Tensor] | None = None,
                   tile: int | None = None) -> dict[str, Any]:
    """PSNR/SSIM of the input (or ``baseline(input)``, e.g. bicubic up-sampling) and of the model's
    output against each item's target, with ``protocol``: restorekit's own per-image evaluation step
    (``restorekit.eval.evaluate.restore_and_measure``) in fp32 on the CPU (``task`` for multi-task models)."""
    from restorekit.eval.evaluate import measure, restore_and_measure
    from restorekit.inference import InferenceOptions

    options = InferenceOptions(task=task, device="cpu", precision="fp32", tile=tile)
    kw: dict[str, Any] = {"protocol": protocol}
    if crop_border:
        kw["crop_border"] = crop_border
    rows, seconds = [], 0.0
    for item in items:
        t0 = time.perf_counter()
        out_psnr, out_ssim = restore_and_measure(model, item.input, item.target, options, **kw)
        seconds += time.perf_counter() - t0
        ref = (baseline(item.input) if baseline is not None else item.input).clamp(0, 1)
        in_psnr, in_ssim = measure(ref, item.target, **kw)
        rows.append({"name": item.name, "psnr": out_psnr, "ssim": out_ssim, "input_psnr": in_psnr, "input_ssim": in_ssim})
    mean = {k: statistics.fmean(r[k] for r in rows) for k in ("psnr", "ssim", "input_psnr", "input_ssim")} if rows else {}
    mean["gain"] = mean["psnr"] - mean["input_psnr"] if rows else math.nan
    size = items[0].target.shape[-2:] if items else (0, 0)
    return {"protocol": protocol, "crop_border": crop_border, "images": len(rows), "first_size": list(size),
            "mean": mean, "per_image": rows, "eval_seconds": round(seconds, 2)}


def time_inference(model: torch.nn.Module, shape: Sequence[int], *, repeats: int = 3, task: str | None = None,
                   tile: int | None = None) -> dict[str, float]:
    """Seconds per megapixel of ``restore_tensor`` (fp32, CPU, this process's threads) on a random
    image of ``shape`` (N, C, H, W), timed as ``restorekit bench`` times (``restorekit.eval.speed.time_restore``):
    the minimum is the least disturbed by other load on the machine, the median is reported beside it."""
    from restorekit.eval.speed import time_restore
    from restorekit.inference import InferenceOptions

    options = InferenceOptions(task=task, device="cpu", precision="fp32", tile=tile)
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    times, cpu = time_restore(model, x, options, repeats=repeats, warmup=1)
    mp = shape[0] * shape[-1] * shape[-2] / 1e6
    # CPU time: with one thread, what the wall time would be on an idle machine (other load only delays)
    return {"s_per_mp": min(times) / mp, "s_per_mp_median": statistics.median(times) / mp,
            "cpu_s_per_mp": min(cpu) / mp, "megapixels": mp, "repeats": len(times), "threads": torch.get_num_threads()}


def count_params(model: torch.nn.Module) -> int:
    from restorekit.models import count_parameters

    return count_parameters(model)


# --------------------------------------------------------------------------- reports


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Iterable[int] = ()) -> str:
    """A Markdown pipe table (restorekit.report.markdown's renderer); numeric columns right-aligned."""
    from restorekit.report import Table
    from restorekit.report.markdown import table

    t = Table(list(headers), numeric=set(numeric))
    for row in rows:
        t.add([str(v) for v in row])
    return table(t)


def fmt(value: Any, digits: int = 2) -> str:
    """A number as the reports print it ("—" for missing or non-finite); other values as text."""
    from restorekit.report.tables import fmt_value

    return fmt_value(value, digits) if isinstance(value, float) or value is None else str(value)


def fmt_params(n: int | None) -> str:
    from restorekit.report.tables import fmt_params as _fmt

    return _fmt(n)


def environment() -> dict[str, Any]:
    from restorekit.eval.env import environment as env

    return env()


def write_report(out: Path, *, title: str, intro: str, sections: Sequence[tuple[str, str]], data: dict[str, Any],
                 figures: Sequence[tuple[str, str]] = (), quick: bool = False) -> Path:
    """``out/report.md`` (the tables, the plots, the command and the machine) and ``out/results.json``
    (``data`` with the command, date and environment). ``figures`` are (file name in ``out``, caption)."""
    from restorekit.io.files import atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    cmd = command_line()
    env = environment()
    now = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    payload = {"title": title, "command": cmd, "generated": now, "quick": quick, "environment": env, **data}
    atomic_write_text(out / "results.json", json.dumps(payload, indent=2, default=str) + "\n")
    lines = [f"# {title}", ""]
    if quick:
        lines += [("> **--quick run**: a few steps on 2 small images, to check the script end to end. "
                  "These numbers say nothing about the models."), ""]
    lines += [intro.strip(), "", "Produced by:", "", "```bash", cmd, "```", ""]
    for heading, body in sections:
        lines += [f"## {heading}", "", body.strip(), ""]
    for name, caption in figures:
        lines += [f"![{caption}]({name})", "", f"*{caption}*", ""]
    lines += ["## Machine", "", f"{now}; " + ", ".join(f"{k} {v}" for k, v in env.items()), "",
              "Raw numbers (per image, per run): `results.json`.", ""]
    atomic_write_text(out / "report.md", "\n".join(lines))
    log(f"wrote {out / 'report.md'}, {out / 'results.json'}" + "".join(f", {out / n}" for n, _ in figures))
    print(f"produced by: {cmd}", flush=True)
    return out / "report.md"


def new_figure(width: float, height: float, rows: int = 1, cols: int = 1) -> tuple[Any, Any]:
    """A bare matplotlib Figure (Agg, no pyplot) and its axes array."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    return fig, fig.subplots(rows, cols, squeeze=False)


def save_figure(fig: Any, path: Path) -> Path:
    from restorekit.report.plots import save_figure as _save

    fig.tight_layout()
    return _save(fig, path)


def plot_losses(runs: dict[str, Path], path: Path, *, title: str = "training loss", offsets: dict[str, int] | None = None,
                logy: bool = True) -> Path | None:
    """Training loss against the step of several runs on one axis (``offsets`` shift a run's steps,
    e.g. a fine-tuning run after its pre-training)."""
    fig, axes = new_figure(7, 4)
    ax = axes[0][0]
    values: list[float] = []
    for label, run_dir in runs.items():
        rows = [r for r in metrics_rows(run_dir) if r.get("loss") is not None and math.isfinite(r["loss"])]
        if rows:
            off = (offsets or {}).get(label, 0)
            ax.plot([r["step"] + off for r in rows], [r["loss"] for r in rows], lw=1, label=label)
            values += [r["loss"] for r in rows]
    if not values:
        return None
    if logy and min(values) > 0:  # DuRN's and IPT's losses can be negative: linear then
        ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="loss", title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def per_step_seconds(status: RunStatus) -> float:
    return status.wall_time / max(1, status.step)


__all__ = [name for name in dir() if not name.startswith("_")]

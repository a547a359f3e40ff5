"""The run folder: its config (checked on resume), its place on disk, and the resumable state file.

``state.pt`` holds tensors and plain Python values only, so that it loads with ``weights_only=True``;
the global RNG states are stored in that form by :func:`capture_rng`.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import RestoreKitError
from ..io.files import atomic_write
from . import distributed
from .config import (
    TrainConfig,
    build_config,
    config_diff,
    load_config_data,
    resolve_paths,
)

STATE_FILE = "state.pt"
CONFIG_FILE = "config.yaml"
STATE_VERSION = 1


def resolve_config(
    config: str | Path | TrainConfig | dict[str, Any] | None,
    *,
    recipe: str | None,
    overrides: list[str] | tuple[str, ...],
    resume: str | Path | None,
    allow_config_change: bool,
) -> tuple[TrainConfig, Path | None]:
    """The run's config, and its folder when resuming; a changed config on resume is refused."""
    if config is not None and recipe is not None:
        raise RestoreKitError("give a config file or a recipe, not both")
    source: Any = None
    if recipe is not None:
        from ..recipes import load_recipe

        source = load_recipe(recipe)
    elif isinstance(config, (str, Path)):
        source = load_config_data(config)
        source.setdefault("name", Path(config).stem)
    elif config is not None:
        source = config
    if resume is None:
        if source is None:
            raise RestoreKitError("nothing to train: give a config, a recipe or a run folder to resume")
        return resolve_paths(build_config(source, overrides)), None

    run_dir = Path(resume)
    if not (run_dir / STATE_FILE).is_file() or not (run_dir / CONFIG_FILE).is_file():
        raise RestoreKitError(f"{run_dir}: not a resumable run folder (no {STATE_FILE} / {CONFIG_FILE})")
    saved = build_config(run_dir / CONFIG_FILE)
    new = resolve_paths(build_config(source if source is not None else saved, overrides))
    changes = config_diff(saved, new)
    if changes and not allow_config_change:
        raise RestoreKitError(
            f"{run_dir}: the config differs from the run's ({len(changes)} change(s)): " + "; ".join(changes)
            + ". Resume with the run's own config, or allow the change (--allow-config-change)"
        )
    new.run_dir = str(run_dir.resolve())
    return new, run_dir.resolve()


def choose_run_dir(cfg: TrainConfig) -> Path:
    """``run_dir`` if given (refused if it holds a run), else ``runs/NAME``, ``runs/NAME-2``, …"""
    if cfg.run_dir:
        path = Path(cfg.run_dir).resolve()
        if (path / CONFIG_FILE).exists():
            raise RestoreKitError(f"{path} already holds a run; resume it (--resume {path}) or choose another run_dir")
        return path
    base = Path("runs") / cfg.name
    path, n = base, 1
    while path.exists() and any(path.iterdir()):
        n += 1
        path = base.with_name(f"{cfg.name}-{n}")
    return path.resolve()


def agree_run_dir(cfg: TrainConfig, info: distributed.DistInfo) -> Path:
    """Rank 0's choice of a new run folder, on every rank. Its error reaches every rank too, or the
    others would wait forever."""
    choice: tuple[Path | None, str | None] = (None, None)
    if info.is_main:
        try:
            choice = (choose_run_dir(cfg), None)
        except RestoreKitError as exc:
            choice = (None, str(exc))
    run_dir, error = distributed.broadcast_object(info, choice)
    if error:
        raise RestoreKitError(error)
    return run_dir


def capture_rng() -> dict[str, Any]:
    """Global RNG states as tensors, ints and lists (loadable with ``weights_only=True``)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": py_state[0], "state": torch.tensor(py_state[1], dtype=torch.int64),
                   "gauss_next": py_state[2]},
    }


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss_next"]))


def read_state(run_dir: Path) -> dict[str, Any]:
    """The run's ``state.pt``; a truncated or foreign file is a RestoreKitError naming it."""
    path = run_dir / STATE_FILE
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise RestoreKitError(f"{path}: cannot read the training state ({exc})") from None


def write_state(run_dir: Path, state: dict[str, Any]) -> None:
    """``state.pt``, atomically: a failed write leaves the previous file whole."""

    def write(tmp: Path) -> None:
        try:
            torch.save(state, tmp)
        except RuntimeError as exc:  # torch's zip writer reports a full disk this way
            raise OSError(f"{str(exc).splitlines()[0]}") from exc

    atomic_write(run_dir / STATE_FILE, write)

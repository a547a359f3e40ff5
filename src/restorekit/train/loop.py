"""The training loop: ``train(config)`` → a run folder with checkpoints, logs and a resumable state.

Exact resume rests on one rule: nothing random in a step depends on the past except through state
that ``state.pt`` holds. The data a step sees is a function of ``(seed, step)`` (see
:mod:`restorekit.data`), degradations and MixUp are seeded from the per-sample and per-step keys,
the learning rate is a function of the step, and the model, optimiser, EMA, GradScaler and global
RNG states are saved. A run killed at any point and resumed from its last state therefore ends with
bit-identical weights on the CPU.
"""

from __future__ import annotations

import contextlib
import math
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..eval.env import environment
from ..checkpoints import load_state_dict_strict, read_checkpoint, save_checkpoint
from ..io.files import atomic_write, atomic_write_text
from ..data import Degrader, build_train_dataset, build_val_set, make_loader, mix_seed, StepSampler
from ..errors import RestoreKitError
from . import distributed
from .config import TrainConfig, build_config, config_diff, load_config_data, resolve_paths
from .ema import EMA
from .logging import RunLogger
from .schedule import Schedule

STATE_FILE = "state.pt"
CONFIG_FILE = "config.yaml"
STATE_VERSION = 1


# --------------------------------------------------------------------------- entry point


def train(
    config: str | Path | TrainConfig | dict[str, Any] | None = None,
    *,
    recipe: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    resume: str | Path | None = None,
    allow_config_change: bool = False,
) -> Path:
    """Train from a config (YAML path, mapping or :class:`TrainConfig`) or a shipped ``recipe``, with
    ``key.sub=value`` ``overrides``; or continue the run in folder ``resume``. Returns the run folder.

    Under ``torchrun`` every process calls this; rank 0 alone writes the run folder.
    """
    cfg, run_dir = resolve_config(config, recipe=recipe, overrides=overrides, resume=resume,
                                  allow_config_change=allow_config_change)
    info = distributed.setup(cfg.train.device)
    try:
        if run_dir is None:
            # rank 0 decides; an error must reach every rank, or the others would wait forever
            choice: tuple[Path | None, str | None] = (None, None)
            if info.is_main:
                try:
                    choice = (choose_run_dir(cfg), None)
                except RestoreKitError as exc:
                    choice = (None, str(exc))
            run_dir, error = distributed.broadcast_object(info, choice)
            if error:
                raise RestoreKitError(error)
        cfg.run_dir = str(run_dir)
        trainer = Trainer(cfg, Path(run_dir), info, resume=resume is not None)
        result = trainer.fit()
        # Rank 0 is still writing the last checkpoints when the others finish; tearing a gloo group down
        # under a busy peer aborts the process ("terminate called without an active exception").
        distributed.barrier(info)
        return result
    finally:
        distributed.cleanup(info)


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


# --------------------------------------------------------------------------- helpers


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


# --------------------------------------------------------------------------- trainer


class Trainer:
    """One run: built from a config, stepped by :meth:`fit`, saved and restored with :meth:`state_dict`."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, dist: distributed.DistInfo, *, resume: bool = False) -> None:
        from ..losses import build_loss
        from ..models import create_model, zero_output_layer

        self.cfg, self.run_dir, self.dist = cfg, run_dir, dist
        t = cfg.train
        self.device = dist.device
        if t.precision == "fp16" and self.device.type != "cuda":
            raise RestoreKitError("train.precision=fp16 needs a CUDA device; use bf16 on the CPU")
        if t.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.main = dist.is_main
        if self.main:
            run_dir.mkdir(parents=True, exist_ok=True)
        state = self._read_state() if resume else None

        # model
        torch.manual_seed(t.seed)
        self.model = create_model(cfg.model.name, **cfg.model.args)
        self.info = self.model.info
        if cfg.model.init_from and state is None:
            self._init_from(cfg.model.init_from)
        if cfg.model.identity_init and state is None:
            zero_output_layer(self.model)
        self.channels = cfg.data.train.channels or self.info.channels
        self.bgr = self.info.color_order == "bgr"

        # data
        self.train_set = build_train_dataset(cfg.data.train, self.channels, seed=t.seed)
        self.tasks = self._tasks()
        # every rank builds it (only rank 0 uses it) so that a data error stops all ranks alike
        self.val_set = build_val_set(cfg.data.val, cfg.data.val.channels or self.channels) if cfg.data.val else []
        self.steps_per_epoch = max(1, len(self.train_set) // t.batch_size)
        self.total_steps = t.steps or int(t.epochs) * self.steps_per_epoch  # type: ignore[operator]

        # loss: image terms on the outputs, feature terms (IPT's contrastive) on return_features
        spec = [cfg.loss] if isinstance(cfg.loss, (str, dict)) else list(cfg.loss)
        spec = [{"name": s} if isinstance(s, str) else s for s in spec]
        feature_terms = [s for s in spec if s.get("name") == "contrastive"]
        image_terms = [s for s in spec if s.get("name") != "contrastive"]
        self.loss_fn = build_loss(image_terms).to(self.device) if image_terms else None
        self.feature_loss = build_loss(feature_terms).to(self.device) if feature_terms else None

        # optimisation
        self.model.to(self.device)
        if t.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.optimizer = self._optimizer()
        self.schedule = Schedule(cfg.schedule, self.total_steps, self.steps_per_epoch, cfg.optim.lr)
        self.ema = EMA(self.model, t.ema) if t.ema else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=t.precision == "fp16")
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(t.precision)

        self.step = 0
        self.best_psnr = -math.inf
        self.last_val: tuple[float, float] | None = None
        self.bad_steps = 0
        self.wall_time = 0.0
        if state is not None:
            self._load_state(state)

        # wrappers come last: they see the restored weights
        net: nn.Module = self.model
        if dist.enabled:
            if t.sync_bn:
                if self.device.type != "cuda":
                    raise RestoreKitError("train.sync_bn needs CUDA (PyTorch's SyncBatchNorm is GPU-only); on the CPU "
                                          "each process normalises with its own batch's statistics")
                net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
            ids = [self.device.index] if self.device.type == "cuda" else None
            # a multi-task model trains one head per step: the others get no gradient
            net = nn.parallel.DistributedDataParallel(net, device_ids=ids, find_unused_parameters=len(self.info.tasks) > 1)
        self.net = torch.compile(net) if t.compile else net

        self.logger = RunLogger(run_dir, enabled=self.main, tensorboard=t.tensorboard,
                                resume_step=self.step if state is not None else None)
        if self.main:
            atomic_write_text(run_dir / CONFIG_FILE, cfg.to_yaml())
        self._stop_signal: int | None = None

    # ----------------------------------------------------------------- building

    def _tasks(self) -> list[tuple[str | None, Degrader | None, int | None]]:
        data = self.cfg.data
        if data.tasks:
            return [(tk.name, Degrader(tk.degradation) if tk.degradation else None, tk.patch) for tk in data.tasks]
        if data.train.kind == "clean" and data.train.degradation is None:
            raise RestoreKitError("data.train: clean images need a degradation (or kind: paired)")
        degrader = Degrader(data.train.degradation) if data.train.kind == "clean" else None  # type: ignore[arg-type]
        return [(None, degrader, None)]

    def _optimizer(self) -> torch.optim.Optimizer:
        o = self.cfg.optim
        params = [p for p in self.model.parameters() if p.requires_grad]
        if o.name == "sgd":
            return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov, weight_decay=o.weight_decay)
        cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
        return cls(params, lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay)

    def _init_from(self, path_text: str) -> None:
        path = Path(path_text)
        if path.is_dir():
            path = path / "best.safetensors" if (path / "best.safetensors").is_file() else path / "last.safetensors"
        state, meta = read_checkpoint(path)
        if meta.get("arch") not in (None, self.info.name):
            raise RestoreKitError(f"model.init_from: {path} holds {meta.get('arch')}, not {self.info.name}")
        load_state_dict_strict(self.model, state, source=str(path))

    # ----------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs, as tensors and plain Python values."""
        return {
            "version": STATE_VERSION,
            "step": self.step,
            "epoch": self.step // self.steps_per_epoch,
            "data": {"seed": self.cfg.train.seed, "position": self.step, "steps_per_epoch": self.steps_per_epoch},
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": {"name": self.cfg.schedule.name, "step": self.step, "lr": self.schedule.lr(max(0, self.step - 1))},
            "ema": self.ema.state_dict() if self.ema else None,
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "best_psnr": self.best_psnr,
            "bad_steps": self.bad_steps,
            "wall_time": self.wall_time,
            "world_size": self.dist.world_size,
            "rng": capture_rng(),
        }

    def _read_state(self) -> dict[str, Any]:
        path = self.run_dir / STATE_FILE
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a truncated or foreign file: say which
            raise RestoreKitError(f"{path}: cannot read the training state ({exc})") from None

    def _load_weights_state(self, state: dict[str, Any]) -> None:
        """Model, optimiser, EMA and GradScaler from a saved state (no counters, no RNG)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None:
            if state["ema"] is None:
                raise RestoreKitError("train.ema was turned on after the run started; it cannot be resumed with EMA")
            self.ema.load_state_dict(state["ema"])
        if state["scaler"] is not None and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler"])

    def _load_state(self, state: dict[str, Any]) -> None:
        self._load_weights_state(state)
        self.step = int(state["step"])
        self.best_psnr = float(state["best_psnr"])
        self.bad_steps = int(state["bad_steps"])
        self.wall_time = float(state["wall_time"])
        restore_rng(state["rng"])

    def _state_is_finite(self) -> bool:
        """Whether the weights, buffers, EMA weights and optimiser state are all finite."""
        tensors: list[torch.Tensor] = list(self.model.state_dict().values())
        if self.ema is not None:
            tensors += list(self.ema.module.state_dict().values())
        for per_param in self.optimizer.state.values():
            tensors += [v for v in per_param.values() if isinstance(v, torch.Tensor)]
        return all(bool(torch.isfinite(t).all()) for t in tensors if t.is_floating_point())

    def _ensure_finite_state(self) -> None:
        """Non-finite weights or optimiser state (a step that overflowed) roll back to the last saved
        state, ``state.pt``: the step counter and the data position go on, past the bad batches."""
        if self._state_is_finite():
            return
        path = self.run_dir / STATE_FILE
        if not path.is_file():
            raise RestoreKitError(
                f"training stopped at step {self.step}: the weights became non-finite and no checkpoint has been "
                "saved yet to roll back to; lower optim.lr or set train.grad_clip"
            )
        state = self._read_state()
        self._load_weights_state(state)
        self.logger.message(f"step {self.step}: weights or optimiser state became non-finite; rolled back to the "
                            f"state saved at step {int(state['step'])}")

    def save(self, *, best: bool = False) -> None:
        """``last`` (and ``best``) weights and ``state.pt``, atomically, from rank 0.

        Non-finite weights are never saved over the last good checkpoint: they are rolled back first.
        A failed write (a full disk) leaves the previous files whole and raises a RestoreKitError.
        """
        self._ensure_finite_state()
        error = None
        if self.main:
            try:
                self._write_checkpoints(best)
            except RestoreKitError as exc:  # e.g. a full disk: each file is written atomically
                error = (f"checkpoint at step {self.step} not saved: {exc}; the previous checkpoint files are intact, "
                         f"resume with: restorekit train --resume {self.run_dir}")
        # every rank learns of a failed save (rank 0 alone writes), else the others would wait forever
        error = distributed.broadcast_object(self.dist, error)
        if error:
            raise RestoreKitError(error)

    def _write_checkpoints(self, best: bool) -> None:
        meta = {
            "run": self.run_dir.name,
            "config": self.cfg.to_dict(),
            "step": self.step,
            "epoch": self.step // self.steps_per_epoch,
            "best_psnr": self.best_psnr if math.isfinite(self.best_psnr) else None,
            "val_psnr": self.last_val[0] if self.last_val else None,
            "val_ssim": self.last_val[1] if self.last_val else None,
            "wall_time": round(self.wall_time, 3),
            "hardware": environment(),
            "world_size": self.dist.world_size,
        }
        for name in ("last", "best") if best else ("last",):
            if self.ema is not None:
                save_checkpoint(self.run_dir / f"{name}.safetensors", self.ema.module, metadata={**meta, "weights": "ema"})
                save_checkpoint(self.run_dir / f"{name}-raw.safetensors", self.model, metadata={**meta, "weights": "raw"})
            else:
                save_checkpoint(self.run_dir / f"{name}.safetensors", self.model, metadata={**meta, "weights": "raw"})
        state = self.state_dict()

        def write_state(tmp: Path) -> None:
            try:
                torch.save(state, tmp)
            except RuntimeError as exc:  # torch's zip writer reports a full disk this way
                raise OSError(f"{str(exc).splitlines()[0]}") from exc

        atomic_write(self.run_dir / STATE_FILE, write_state)

    # ----------------------------------------------------------------- one step

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        if self.bgr:
            x = x.flip(1)
        if self.cfg.train.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _forward(self, net: nn.Module, x: torch.Tensor, task: str | None, features: bool = False) -> tuple[Any, Any]:
        """Model outputs as float32 in [0, 1]-scale RGB (a list for multi-output models), and features."""
        r = self.info.input_range
        kwargs: dict[str, Any] = {"task": task} if task is not None else {}
        if features:
            kwargs["return_features"] = True
        with self._autocast():
            out = net(x * r if r != 1 else x, **kwargs)
        feats = None
        if features:
            out, feats = out
            feats = feats.float()

        def convert(o: torch.Tensor) -> torch.Tensor:
            o = o.float()
            o = o / r if r != 1 else o
            o = o.flip(1) if self.bgr else o
            return o.clamp(0, 1) if self.cfg.train.clamp_outputs else o

        out = [convert(o) for o in out] if isinstance(out, (list, tuple)) else convert(out)
        return out, feats

    def _mixup(self, x: torch.Tensor, y: torch.Tensor, step: int, local: int) -> tuple[torch.Tensor, torch.Tensor]:
        alpha = self.cfg.train.mixup.alpha  # type: ignore[union-attr]
        rng = np.random.default_rng(mix_seed(self.cfg.train.seed, 0x313, step, local, self.dist.rank))
        n = x.shape[0]
        perm = torch.from_numpy(rng.permutation(n)).to(x.device)
        lam = torch.from_numpy(rng.beta(alpha, alpha, size=n)).float().view(-1, 1, 1, 1).to(x.device)
        return lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[perm]

    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> tuple[list[float], int]:
        """``locally_training_num`` updates on one batch; returns the applied losses and the skipped count."""
        t = self.cfg.train
        task, degrader, task_patch = self.tasks[step % len(self.tasks)]
        target = batch["target"]
        if task_patch is not None:
            target = target[..., :task_patch, :task_patch]
        epoch = step // self.steps_per_epoch
        losses, skipped = [], 0
        for local in range(t.locally_training_num):
            inp = batch["input"] if "input" in batch else degrader(target, batch["seed"], salt=local)  # type: ignore[misc]
            x, y = self._to_device(inp), target.to(self.device, non_blocking=True)
            if t.mixup is not None and epoch >= t.mixup.start_epoch:
                x, y = self._mixup(x, y, step, local)
            buffers = self._snapshot_buffers()
            out, feats = self._forward(self.net, x, task, features=self.feature_loss is not None)
            loss = self.loss_fn(out, y) if self.loss_fn is not None else 0.0
            if self.feature_loss is not None:
                loss = loss + self.feature_loss(feats, None)
            bad = not bool(torch.isfinite(loss))
            (bad,) = distributed.any_flag(self.dist, bad)
            if not bad:
                self.scaler.scale(loss).backward()
                # fp16: the scaler skips the update itself; otherwise a non-finite gradient is a bad step,
                # checked before the optimiser sees it (Adam's moments would keep a NaN for good)
                if t.grad_clip:
                    self.scaler.unscale_(self.optimizer)
                    norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
                    bad = not self.scaler.is_enabled() and not bool(torch.isfinite(norm))
                elif not self.scaler.is_enabled():
                    grads = [p.grad for p in self.model.parameters() if p.grad is not None]
                    bad = bool(grads) and not bool(torch.isfinite(torch.nn.utils.get_total_norm(grads)))
            if bad:
                self.optimizer.zero_grad(set_to_none=True)
                self._restore_buffers(buffers)  # the bad forward's BatchNorm statistics are undone too
                skipped += 1
                continue
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
            if self.ema is not None:
                self.ema.update(self.model)
            losses.append(float(loss.detach()))
        return losses, skipped

    def _snapshot_buffers(self) -> list[torch.Tensor] | None:
        """Copies of the model's buffers (BatchNorm running statistics, which a forward pass updates)."""
        buffers = list(self.model.buffers())
        return [b.detach().clone() for b in buffers] if buffers else None

    @torch.no_grad()
    def _restore_buffers(self, saved: list[torch.Tensor] | None) -> None:
        if saved is not None:
            for b, s in zip(self.model.buffers(), saved):
                b.copy_(s)

    # ----------------------------------------------------------------- validation

    def validate(self) -> tuple[float, float]:
        """Mean PSNR / SSIM over the validation set, with the EMA weights when there are some.

        The model runs through :func:`restorekit.inference.restore_tensor`, the path every model
        takes at inference (padding to its size multiple, IPT's fixed-size tiles, output pick, clamp).
        """
        from ..inference import InferenceOptions, restore_tensor
        from ..metrics import psnr, ssim

        model = self.ema.module if self.ema is not None else self.model
        options = InferenceOptions(precision=self.cfg.train.precision, device=str(self.device), fold_bn=False,
                                   task=self.tasks[0][0])
        ps, ss = [], []
        for item in self.val_set:
            out = restore_tensor(model, item.input.to(self.device), options).cpu()
            ps.append(float(psnr(out, item.target)))
            ss.append(float(ssim(out, item.target)))
        return float(np.mean(ps)), float(np.mean(ss))

    # ----------------------------------------------------------------- loop

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """SIGINT/SIGTERM ask the loop to save and stop after the current step; a second SIGINT aborts."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            if self._stop_signal is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self._stop_signal = signum

        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    def _out_of_time(self) -> bool:
        budget = self.cfg.train.max_minutes
        return budget is not None and self.wall_time >= budget * 60

    def _due(self, step_done: int, out_of_time: bool = False) -> tuple[bool, bool]:
        """(validate, checkpoint) after ``step_done`` steps."""
        t = self.cfg.train
        end = step_done >= self.total_steps or out_of_time
        if t.val_unit == "step":
            val = step_done % t.val_every == 0
        else:
            val = step_done % self.steps_per_epoch == 0 and (step_done // self.steps_per_epoch) % t.val_every == 0
        ckpt = bool(t.checkpoint_every) and step_done % t.checkpoint_every == 0  # type: ignore[operator]
        return val or end, val or ckpt or end

    def _check_bad_steps(self, losses: list[float], skipped: int) -> None:
        """Report skipped (non-finite) updates; save and stop after too many in a row."""
        t = self.cfg.train
        if not skipped:
            self.bad_steps = 0 if losses else self.bad_steps
            return
        self.bad_steps += skipped
        self.logger.message(f"step {self.step}: non-finite loss or gradient, update skipped ({self.bad_steps} in a row)")
        self._ensure_finite_state()  # a NaN loss from NaN weights: the last good state comes back
        if t.on_nan == "stop" or self.bad_steps >= t.max_bad_steps:
            self.save()
            raise RestoreKitError(
                f"training stopped at step {self.step}: {self.bad_steps} non-finite step(s) in a row "
                f"(train.on_nan={t.on_nan}, max_bad_steps={t.max_bad_steps}); lower optim.lr or set "
                f"train.grad_clip, then resume from {self.run_dir}"
            )

    def _end_of_step(self, row: dict[str, float | None]) -> bool:
        """Validate, log, plot and checkpoint as due after ``self.step`` steps; True to stop (a signal or
        the time budget)."""
        (out_of_time,) = distributed.any_flag(self.dist, self._out_of_time())  # ranks' clocks differ a little
        do_val, do_ckpt = self._due(self.step, out_of_time)
        is_best = False
        if do_val and self.val_set and self.main:
            self.last_val = self.validate()
            row.update(val_psnr=self.last_val[0], val_ssim=self.last_val[1])
            is_best = self.last_val[0] > self.best_psnr
            self.best_psnr = max(self.best_psnr, self.last_val[0])
            self.logger.message(f"step {self.step} (epoch {self.step / self.steps_per_epoch:.2f}): val PSNR "
                                f"{self.last_val[0]:.3f} dB, SSIM {self.last_val[1]:.4f}" + (" (best)" if is_best else ""))
        if row:
            self.logger.log(self.step, self.step // self.steps_per_epoch, time=round(self.wall_time, 3), **row)
        if do_val and self.cfg.train.plot:
            self.logger.plot()
        (stop,) = distributed.any_flag(self.dist, self._stop_signal is not None)
        if do_ckpt or stop:
            self.save(best=is_best)
        if stop:
            self.logger.message(f"stopped by signal at step {self.step}; resume with: "
                                f"restorekit train --resume {self.run_dir}")
        elif out_of_time:
            self.logger.message(f"time budget of {self.cfg.train.max_minutes:g} min reached at step {self.step} of "
                                f"{self.total_steps}: the run ends here (raise train.max_minutes to continue it)")
        return stop or out_of_time

    def fit(self) -> Path:
        """Train to the last step (or a stop signal); return the run folder."""
        t = self.cfg.train
        log = self.logger
        if self.step >= self.total_steps:
            log.message(f"{self.run_dir}: already trained for {self.total_steps} steps")
            return self.run_dir
        if self._out_of_time():
            log.message(f"{self.run_dir}: its time budget of {t.max_minutes:g} min is used up at step {self.step}")
            return self.run_dir
        params = sum(p.numel() for p in self.model.parameters())
        log.message(
            f"{'resuming' if self.step else 'training'} {self.info.name} ({params:,} parameters) in {self.run_dir}: "
            f"{len(self.train_set)} samples, {self.steps_per_epoch} steps/epoch, step {self.step} of {self.total_steps}, "
            f"batch {t.batch_size} on {self.dist.world_size}×{self.device}, {t.precision}"
        )
        sampler = StepSampler(len(self.train_set), t.batch_size, seed=t.seed, rank=self.dist.rank,
                              world_size=self.dist.world_size, start=self.step, total=self.total_steps)
        loader = make_loader(self.train_set, sampler, num_workers=t.num_workers,
                             pin_memory=self.device.type == "cuda", seed=t.seed)
        bar = tqdm(total=self.total_steps, initial=self.step, unit="step", dynamic_ncols=True,
                   disable=not (self.main and t.progress))
        window: list[float] = []
        started = time.perf_counter() - self.wall_time
        self.model.train()
        try:
            with self._signals():
                for batch in loader:
                    step = self.step
                    lr = self.schedule.lr(step)
                    for group in self.optimizer.param_groups:
                        group["lr"] = lr
                    losses, skipped = self.train_step(batch, step)
                    self.step = step + 1
                    self.wall_time = time.perf_counter() - started
                    bar.update(1)
                    self._check_bad_steps(losses, skipped)
                    window.extend(losses)
                    row: dict[str, float | None] = {}
                    if self.step % t.log_every == 0 or self.step == self.total_steps:
                        mean_loss = distributed.mean_scalar(self.dist, float(np.mean(window)) if window else math.nan)
                        window = []
                        row.update(loss=mean_loss, lr=lr)
                        bar.set_postfix(loss=f"{mean_loss:.4g}", lr=f"{lr:.2e}")
                    if self._end_of_step(row):
                        break
        finally:
            bar.close()
            log.close()
        return self.run_dir

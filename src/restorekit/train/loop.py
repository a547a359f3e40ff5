"""The training loop: ``train(config)`` → a run folder with checkpoints, logs and a resumable state.

Read :meth:`Trainer.fit` first: it is the loop (batch → forward → loss → backward and step → EMA →
log → validate → checkpoint), each part a small method below it. ``Trainer.__init__`` lists the
builders (backends, model, data, loss, optimisation, resume, wrappers, logging).

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
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..checkpoints import load_state_dict_strict, read_checkpoint, save_checkpoint
from ..data import (
    Degrader,
    StepSampler,
    build_train_dataset,
    build_val_set,
    make_loader,
    mix_seed,
)
from ..errors import RestoreKitError
from ..eval.env import environment
from ..inference.prepare import PRECISIONS, auto_precision, from_model_output, to_model_input
from ..io.files import atomic_write_text
from . import distributed
from .config import TrainConfig
from .ema import EMA
from .logging import RunLogger
from .run import (
    CONFIG_FILE,
    STATE_FILE,
    STATE_VERSION,
    agree_run_dir,
    capture_rng,
    choose_run_dir,
    read_state,
    resolve_config,
    restore_rng,
    write_state,
)
from .schedule import Schedule
from .timing import StepTimer, project

__all__ = ["CONFIG_FILE", "SAMPLES_DIR", "STATE_FILE", "Interrupted", "Trainer", "capture_rng", "choose_run_dir",
           "resolve_config", "restore_rng", "train"]

SAMPLES_DIR = "samples"  # samples/step_000500.png: input | output | target of a few validation images
SAMPLE_IMAGES = 3
SAMPLE_CROP = 128


class Interrupted(KeyboardInterrupt):
    """A signal (Ctrl-C, SIGTERM) stopped the run after its state was saved: :func:`train` raises this
    once the run can be resumed from ``run_dir``. A KeyboardInterrupt, as Ctrl-C is elsewhere."""

    def __init__(self, run_dir: Path, step: int, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}; the state is saved in {run_dir}")
        self.run_dir, self.step, self.signum = run_dir, step, signum


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

    Under ``torchrun`` every process calls this; rank 0 alone writes the run folder. A new run that
    fails before its first step ends leaves no run folder behind. A signal saves the state and stops
    the run: then :class:`Interrupted` is raised.
    """
    cfg, run_dir = resolve_config(config, recipe=recipe, overrides=overrides, resume=resume,
                                  allow_config_change=allow_config_change)
    info = distributed.setup(cfg.train.device)
    try:
        if run_dir is None:
            run_dir = agree_run_dir(cfg, info)
        cfg.run_dir = str(run_dir)
        run_dir = Path(run_dir)
        before = _entries(run_dir)
        trainer: Trainer | None = None
        try:
            trainer = Trainer(cfg, run_dir, info, resume=resume is not None)
            trainer.fit()
        except BaseException:
            if resume is None and info.is_main and (trainer is None or trainer.step == 0):
                _remove_new_entries(run_dir, before)
            raise
        # Rank 0 is still writing the last checkpoints when the others finish; tearing a gloo group down
        # under a busy peer aborts the process ("terminate called without an active exception").
        distributed.barrier(info)
        if trainer.stopped_by is not None:
            raise Interrupted(run_dir, trainer.step, trainer.stopped_by)
        return run_dir
    finally:
        distributed.cleanup(info)


def _entries(folder: Path) -> tuple[set[str] | None, Path]:
    """The names in ``folder`` (None where it does not exist) and its nearest folder that exists."""
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    return ({p.name for p in folder.iterdir()} if folder.is_dir() else None), existing


def _remove_new_entries(folder: Path, before: tuple[set[str] | None, Path]) -> None:
    """Undo a failed start: what it wrote in ``folder`` is removed, and the folders it made (the run's,
    ``runs/``) too."""
    import shutil

    names, existing = before
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if names is None or path.name not in names:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
    made = folder
    while names is None and made != existing and existing in made.parents:
        try:
            made.rmdir()
        except OSError:  # not empty: something else writes there now
            break
        made = made.parent


Task = tuple[str | None, Degrader | None, int | None]  # (name for forward(task=…), degradation, target patch)


class Trainer:
    """One run: built from a config, stepped by :meth:`fit`, saved and restored with :meth:`state_dict`."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, dist: distributed.DistInfo, *, resume: bool = False) -> None:
        self.cfg, self.run_dir, self.dist = cfg, run_dir, dist
        self.device, self.main = dist.device, dist.is_main
        self._set_backends()
        state = read_state(run_dir) if resume else None
        self._build_model(fresh=state is None)
        self._build_data()
        self._build_loss()
        self._build_optimisation()
        self._reset_progress()
        if state is not None:
            self._load_state(state)
        self.net = self._wrap(self.model)  # wrappers come last: they see the restored weights
        self._build_logging(resume_step=self.step if state is not None else None)

    # ----------------------------------------------------------------- the loop

    def fit(self) -> Path:
        """Train to the last step, a stop signal or the time budget; return the run folder. After a
        signal, ``stopped_by`` holds its number."""
        bar: tqdm | None = None
        try:
            if self._nothing_to_do():
                return self.run_dir
            self._announce()
            loader, bar = self._loader(), self._progress_bar()
            window: list[float] = []  # the applied losses since the last logged row
            timer, self._started_at = StepTimer(), self.step
            started = time.perf_counter() - self.wall_time
            self.model.train()
            with self._signals():
                timer.start()  # a step's time includes fetching its batch
                for batch in loader:
                    lr = self._set_lr(self.step)
                    losses, skipped = self.train_step(batch, self.step)  # forward, loss, backward, step, EMA
                    self.step += 1
                    self.wall_time = time.perf_counter() - started
                    bar.update(1)
                    self._project(timer.stop())
                    self._check_bad_steps(losses, skipped)
                    window.extend(losses)
                    # any rank: clocks differ, and a signal may reach one process only
                    out_of_time, stop = distributed.any_flag(self.dist, self._out_of_time(), self._stop_signal is not None)
                    row = self._loss_row(window, lr, bar, stopping=stop or out_of_time)
                    do_val, do_ckpt = self._due(self.step, out_of_time)
                    is_best = do_val and self._validate_into(row)
                    self._log(row, plot=do_val)
                    if do_ckpt or stop:
                        self.save(best=is_best)
                    if (stop and self.step < self.total_steps) or out_of_time:
                        self._say_why_stopped(stop)
                        if stop:
                            self.stopped_by = self._stop_signal or signal.SIGINT  # another rank's signal
                        break
                    timer.start()
        finally:
            if bar is not None:
                bar.close()
            self.logger.close()
        return self.run_dir

    # ----------------------------------------------------------------- building

    def _set_backends(self) -> None:
        t = self.cfg.train
        self.precision, why = auto_precision(self.device) if t.precision == "auto" else (t.precision, "")
        self.precision_note = f" (auto: {why})" if why else ""
        if self.precision == "fp16" and self.device.type != "cuda":
            raise RestoreKitError("train.precision=fp16 needs a CUDA device; use bf16 on the CPU")
        if t.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True

    def _build_model(self, *, fresh: bool) -> None:
        """The model, seeded, with its starting weights (unless a saved state will replace them), on the device."""
        from ..models import create_model, zero_output_layer

        m = self.cfg.model
        torch.manual_seed(self.cfg.train.seed)
        self.model = create_model(m.name, **m.args)
        self.info = self.model.info
        if m.init_from and fresh:
            self._init_from(m.init_from)
        if m.identity_init and fresh:
            zero_output_layer(self.model)
        if m.train_only:
            self._freeze_all_but(m.train_only)
        self.model.to(self.device)
        if self.cfg.train.channels_last:
            self.model.to(memory_format=torch.channels_last)

    def _freeze_all_but(self, pattern: str) -> None:
        try:
            wanted = re.compile(pattern)
        except re.error as exc:
            raise RestoreKitError(f"model.train_only: {pattern!r} is not a regular expression ({exc})") from None
        named = list(self.model.named_parameters())
        for name, p in named:
            p.requires_grad_(bool(wanted.search(name)))
        if not any(p.requires_grad for _, p in named):
            raise RestoreKitError(f"model.train_only: {pattern!r} names none of {self.info.name}'s parameters "
                                  f"(they are named like {named[0][0]!r})")

    def _init_from(self, path_text: str) -> None:
        path = Path(path_text)
        if path.is_dir():
            path = path / "best.safetensors" if (path / "best.safetensors").is_file() else path / "last.safetensors"
        state, meta = read_checkpoint(path)
        if meta.get("arch") not in (None, self.info.name):
            raise RestoreKitError(f"model.init_from: {path} holds {meta.get('arch')}, not {self.info.name}")
        load_state_dict_strict(self.model, state, source=str(path))

    def _build_data(self) -> None:
        d, t = self.cfg.data, self.cfg.train
        self.channels = d.train.channels or self.info.channels
        self.train_set = build_train_dataset(d.train, self.channels, seed=t.seed)
        self.tasks = self._tasks()
        # every rank builds it (only rank 0 uses it) so that a data error stops all ranks alike
        self.val_set = build_val_set(d.val, d.val.channels or self.channels) if d.val else []
        self.steps_per_epoch = max(1, len(self.train_set) // t.batch_size)
        self.total_steps = t.steps or int(t.epochs) * self.steps_per_epoch  # type: ignore[operator]

    def _tasks(self) -> list[Task]:
        data = self.cfg.data
        if data.tasks:
            return [(tk.name, Degrader(tk.degradation) if tk.degradation else None, tk.patch) for tk in data.tasks]
        if data.train.kind == "clean" and data.train.degradation is None:
            raise RestoreKitError("data.train: clean images need a degradation (or kind: paired)")
        degrader = Degrader(data.train.degradation) if data.train.kind == "clean" else None  # type: ignore[arg-type]
        return [(None, degrader, None)]

    def _build_loss(self) -> None:
        """Image terms on the outputs; feature terms (IPT's contrastive) on the model's return_features."""
        from ..losses import build_loss

        spec = [self.cfg.loss] if isinstance(self.cfg.loss, (str, dict)) else list(self.cfg.loss)
        spec = [{"name": s} if isinstance(s, str) else s for s in spec]
        feature_terms = [s for s in spec if s.get("name") == "contrastive"]
        image_terms = [s for s in spec if s.get("name") != "contrastive"]
        self.loss_fn = build_loss(image_terms).to(self.device) if image_terms else None
        self.feature_loss = build_loss(feature_terms).to(self.device) if feature_terms else None

    def _build_optimisation(self) -> None:
        """Optimiser, learning-rate schedule, EMA, GradScaler and autocast precision."""
        t = self.cfg.train
        self.optimizer = self._optimizer()
        self.schedule = Schedule(self.cfg.schedule, self.total_steps, self.steps_per_epoch, self.cfg.optim.lr)
        self.ema = EMA(self.model, t.ema) if t.ema else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision == "fp16")
        self.autocast_dtype = PRECISIONS[self.precision]

    def _optimizer(self) -> torch.optim.Optimizer:
        o = self.cfg.optim
        params = [p for p in self.model.parameters() if p.requires_grad]
        if o.name == "sgd":
            return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov, weight_decay=o.weight_decay)
        cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
        return cls(params, lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay)

    def _reset_progress(self) -> None:
        self.step = 0
        self.best_psnr = -math.inf
        self.last_val: tuple[float, float] | None = None
        self.bad_steps = 0
        self.wall_time = 0.0
        self._stop_signal: int | None = None
        self.stopped_by: int | None = None
        self._started_at = 0  # the step this session of the run started from

    def _wrap(self, model: nn.Module) -> nn.Module:
        """DDP (with SyncBatchNorm if asked) and torch.compile around the model; the model itself otherwise."""
        t = self.cfg.train
        net = model
        if self.dist.enabled:
            if t.sync_bn:
                if self.device.type != "cuda":
                    raise RestoreKitError("train.sync_bn needs CUDA (PyTorch's SyncBatchNorm is GPU-only); on the CPU "
                                          "each process normalises with its own batch's statistics")
                net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
            ids = [self.device.index] if self.device.type == "cuda" else None
            # a multi-task model trains one head per step: the others get no gradient
            net = nn.parallel.DistributedDataParallel(net, device_ids=ids, find_unused_parameters=len(self.info.tasks) > 1)
        return torch.compile(net) if t.compile else net

    def _build_logging(self, *, resume_step: int | None) -> None:
        t = self.cfg.train
        if self.main:  # only now: a config, data or model that fails to build leaves no folder
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.logger = RunLogger(self.run_dir, enabled=self.main, tensorboard=t.tensorboard, resume_step=resume_step)
        if self.main:
            atomic_write_text(self.run_dir / CONFIG_FILE, self.cfg.to_yaml())

    # ----------------------------------------------------------------- before the loop

    def _nothing_to_do(self) -> bool:
        """A finished run, or one whose time budget is spent, resumes as a no-op."""
        if self.step >= self.total_steps:
            self.logger.message(f"{self.run_dir}: already trained for {self.total_steps} steps")
            return True
        if self._out_of_time():
            self.logger.message(f"{self.run_dir}: its time budget of {self.cfg.train.max_minutes:g} min is used up "
                                f"at step {self.step}")
            return True
        return False

    def _announce(self) -> None:
        t = self.cfg.train
        params = sum(p.numel() for p in self.model.parameters())
        self.logger.message(
            f"{'resuming' if self.step else 'training'} {self.info.name} ({params:,} parameters) in {self.run_dir}: "
            f"{len(self.train_set)} samples, {self.steps_per_epoch} steps/epoch, step {self.step} of {self.total_steps}, "
            f"batch {t.batch_size} on {self.dist.world_size}×{self.device}, {self.precision}{self.precision_note}"
        )

    def _loader(self) -> Iterable[dict[str, torch.Tensor]]:
        """This rank's batches from the current step on (a function of the seed and the step)."""
        t = self.cfg.train
        sampler = StepSampler(len(self.train_set), t.batch_size, seed=t.seed, rank=self.dist.rank,
                              world_size=self.dist.world_size, start=self.step, total=self.total_steps)
        return make_loader(self.train_set, sampler, num_workers=t.num_workers,
                           pin_memory=self.device.type == "cuda", seed=t.seed)

    def _progress_bar(self) -> tqdm:
        return tqdm(total=self.total_steps, initial=self.step, unit="step", dynamic_ncols=True,
                    disable=not (self.main and self.cfg.train.progress))

    # ----------------------------------------------------------------- one step

    def _set_lr(self, step: int) -> float:
        lr = self.schedule.lr(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> tuple[list[float], int]:
        """``locally_training_num`` updates on one batch; returns the applied losses and the skipped count."""
        task, degrader, patch = self.tasks[step % len(self.tasks)]
        target = batch["target"] if patch is None else batch["target"][..., :patch, :patch]
        losses, skipped = [], 0
        for local in range(self.cfg.train.locally_training_num):
            x, y = self._pair(batch, target, degrader, step, local)
            buffers = self._snapshot_buffers()
            loss = self._loss(x, y, task)
            if self._backward(loss):
                self._optimizer_step()
                self._update_ema()
                losses.append(float(loss.detach()))
            else:
                self.optimizer.zero_grad(set_to_none=True)
                self._restore_buffers(buffers)  # the bad forward's BatchNorm statistics are undone too
                skipped += 1
        return losses, skipped

    def _pair(self, batch: dict[str, torch.Tensor], target: torch.Tensor, degrader: Degrader | None, step: int,
              local: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(input, target) on the device in [0, 1] RGB: the paired input or a fresh degradation, mixed when due."""
        t = self.cfg.train
        inp = batch["input"] if "input" in batch else degrader(target, batch["seed"], salt=local)  # type: ignore[misc]
        x, y = inp.to(self.device, non_blocking=True), target.to(self.device, non_blocking=True)
        if t.mixup is not None and step // self.steps_per_epoch >= t.mixup.start_epoch:
            x, y = self._mixup(x, y, step, local)
        return x, y

    def _mixup(self, x: torch.Tensor, y: torch.Tensor, step: int, local: int) -> tuple[torch.Tensor, torch.Tensor]:
        alpha = self.cfg.train.mixup.alpha  # type: ignore[union-attr]
        rng = np.random.default_rng(mix_seed(self.cfg.train.seed, 0x313, step, local, self.dist.rank))
        n = x.shape[0]
        perm = torch.from_numpy(rng.permutation(n)).to(x.device)
        lam = torch.from_numpy(rng.beta(alpha, alpha, size=n)).float().view(-1, 1, 1, 1).to(x.device)
        return lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[perm]

    def forward(self, x: torch.Tensor, task: str | None = None, *, features: bool = False) -> tuple[Any, Any]:
        """The network on [0, 1] RGB through the inference path's conversions (its range and colour order):
        float32 [0, 1]-scale RGB, every output of a multi-output model (a list), clamped with
        ``train.clamp_outputs``; and the features when asked (IPT's contrastive term), else None."""
        kwargs: dict[str, Any] = {"task": task} if task is not None else {}
        if features:
            kwargs["return_features"] = True
        x = to_model_input(x, self.info, channels_last=self.cfg.train.channels_last)
        with self._autocast():
            out = self.net(x, **kwargs)
        feats = None
        if features:
            out, feats = out
            feats = feats.float()
        out = from_model_output(out, self.info, stages=True)
        if self.cfg.train.clamp_outputs:
            out = [o.clamp(0, 1) for o in out] if isinstance(out, list) else out.clamp(0, 1)
        return out, feats

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _loss(self, x: torch.Tensor, y: torch.Tensor, task: str | None) -> torch.Tensor:
        """The configured loss, in [0, 1]-scale RGB (whatever the model's own range and colour order)."""
        out, feats = self.forward(x, task, features=self.feature_loss is not None)
        loss = self.loss_fn(out, y) if self.loss_fn is not None else 0.0
        if self.feature_loss is not None:
            loss = loss + self.feature_loss(feats, None)
        return loss  # type: ignore[return-value]

    def _backward(self, loss: torch.Tensor) -> bool:
        """Back-propagate a finite loss; False when the update must be skipped (a non-finite loss on any
        rank, or a non-finite gradient)."""
        t = self.cfg.train
        (bad,) = distributed.any_flag(self.dist, not bool(torch.isfinite(loss)))
        if bad:
            return False
        self.scaler.scale(loss).backward()
        # fp16: the scaler skips the update itself; otherwise a non-finite gradient is a bad step,
        # checked before the optimiser sees it (Adam's moments would keep a NaN for good)
        if t.grad_clip:
            self.scaler.unscale_(self.optimizer)
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
            return self.scaler.is_enabled() or bool(torch.isfinite(norm))
        if self.scaler.is_enabled():
            return True
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        return not grads or bool(torch.isfinite(torch.nn.utils.get_total_norm(grads)))

    def _optimizer_step(self) -> None:
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)

    def _update_ema(self) -> None:
        if self.ema is not None:
            self.ema.update(self.model)

    def _snapshot_buffers(self) -> list[torch.Tensor] | None:
        """Copies of the model's buffers (BatchNorm running statistics, which a forward pass updates)."""
        buffers = list(self.model.buffers())
        return [b.detach().clone() for b in buffers] if buffers else None

    @torch.no_grad()
    def _restore_buffers(self, saved: list[torch.Tensor] | None) -> None:
        if saved is not None:
            for b, s in zip(self.model.buffers(), saved):
                b.copy_(s)

    # ----------------------------------------------------------------- after a step

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

    def _project(self, sec_per_step: float | None) -> None:
        """Once the first steps are timed: this device's seconds per step and the run's projected length,
        with a warning (and shorter alternatives) when that is days."""
        if sec_per_step is None:
            return
        from ..recipes import list_recipes

        t = self.cfg.train
        variant = f"{self.cfg.name}-cpu"
        cpu_variant = variant if self.device.type == "cpu" and variant in list_recipes() else None
        p = project(sec_per_step, started_at=self._started_at, step=self.step, total_steps=self.total_steps,
                    steps_per_epoch=self.steps_per_epoch, max_minutes=t.max_minutes, wall_time=self.wall_time,
                    epochs=t.epochs is not None, cpu_variant=cpu_variant)
        self.logger.message(p.line)
        if p.warning:
            self.logger.warning(p.warning)

    def _loss_row(self, window: list[float], lr: float, bar: tqdm, *, stopping: bool = False) -> dict[str, float | None]:
        """The mean loss over ranks since the last row and the rate, when a row is due (``window`` is
        emptied); else nothing. Rows are due every ``log_every`` steps, at the first and the last step,
        and when the run stops early, so that every run that made a step has one."""
        t = self.cfg.train
        if self.step % t.log_every and self.step not in (1, self.total_steps) and not stopping:
            return {}
        mean_loss = distributed.mean_scalar(self.dist, float(np.mean(window)) if window else math.nan)
        window.clear()
        bar.set_postfix(loss=f"{mean_loss:.4g}", lr=f"{lr:.2e}")
        return {"loss": mean_loss, "lr": lr}

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

    def _validate_into(self, row: dict[str, float | None]) -> bool:
        """Validate (rank 0, when there is a validation set), add the scores to ``row`` and report them;
        True for a new best PSNR."""
        if not (self.val_set and self.main):
            return False
        self.last_val = self.validate()
        self._save_samples()
        psnr, ssim = self.last_val
        row.update(val_psnr=psnr, val_ssim=ssim)
        is_best = psnr > self.best_psnr
        self.best_psnr = max(self.best_psnr, psnr)
        self.logger.message(f"step {self.step} (epoch {self.step / self.steps_per_epoch:.2f}): val PSNR "
                            f"{psnr:.3f} dB, SSIM {ssim:.4f}" + (" (best)" if is_best else ""))
        return is_best

    def validate(self) -> tuple[float, float]:
        """Mean PSNR / SSIM over the validation set, with the EMA weights when there are some.

        Each image takes :func:`restorekit.eval.evaluate.restore_and_measure`, the step of every evaluation:
        the inference path (padding to the size multiple, IPT's fixed-size tiles, output pick, clamp),
        then the metrics.
        """
        from ..eval.evaluate import restore_and_measure

        model, options = self._inference()
        scores = [restore_and_measure(model, item.input.to(self.device), item.target, options) for item in self.val_set]
        return float(np.mean([p for p, _ in scores])), float(np.mean([s for _, s in scores]))

    def _inference(self) -> tuple[nn.Module, Any]:
        """The model validation restores with (the EMA one when there is one) and its inference options."""
        from ..inference import InferenceOptions

        model = self.ema.module if self.ema is not None else self.model
        options = InferenceOptions(precision=self.precision, device=str(self.device), fold_bn=False,
                                   task=self.tasks[0][0])
        return model, options

    def sample_sheet(self) -> torch.Tensor | None:
        """The first validation images as rows of input | output | target (centre crops of at most
        ``SAMPLE_CROP`` pixels; a smaller SR input enlarged to the target's size), as a C×H×W tensor."""
        from ..inference import restore_tensor

        items = self.val_set[:SAMPLE_IMAGES]
        if not items:
            return None
        model, options = self._inference()
        rows = []
        for item in items:
            target = item.target[0].float().cpu()
            output = restore_tensor(model, item.input.to(self.device), options)[0].float().cpu()
            inp = item.input.float().cpu()
            if inp.shape[-2:] != target.shape[-2:]:
                inp = torch.nn.functional.interpolate(inp, size=target.shape[-2:], mode="nearest")
            h, w = (min(SAMPLE_CROP, n) for n in target.shape[-2:])
            top, left = (target.shape[-2] - h) // 2, (target.shape[-1] - w) // 2
            crops = [x[..., top:top + h, left:left + w].clamp(0, 1) for x in (inp[0], output, target)]
            gap = torch.ones(target.shape[0], h, 4)
            rows.append(torch.cat([crops[0], gap, crops[1], gap, crops[2]], dim=-1))
        width = max(r.shape[-1] for r in rows)
        rows = [torch.nn.functional.pad(r, (0, width - r.shape[-1]), value=1.0) for r in rows]
        gap = torch.ones(rows[0].shape[0], 4, width)
        return torch.cat([part for r in rows for part in (r, gap)][:-1], dim=-2)

    def _save_samples(self) -> None:
        """``samples/step_NNNNNN.png`` (the run report shows them); a failed write is reported, not fatal."""
        from ..io import write_image

        sheet = self.sample_sheet()
        if sheet is None:
            return
        path = self.run_dir / SAMPLES_DIR / f"step_{self.step:06d}.png"
        try:
            write_image(path, sheet, overwrite=True)
        except RestoreKitError as exc:
            self.logger.message(f"step {self.step}: samples not saved: {exc}")

    def _log(self, row: dict[str, float | None], *, plot: bool) -> None:
        """A metrics.csv row (and TensorBoard scalars) when there is something to log; curves.png if asked."""
        if row:
            self.logger.log(self.step, self.step // self.steps_per_epoch, time=round(self.wall_time, 3), **row)
        if plot and self.cfg.train.plot:
            self.logger.plot()

    def _say_why_stopped(self, by_signal: bool) -> None:
        if by_signal:
            self.logger.message(f"stopped by signal at step {self.step}; resume with: "
                                f"restorekit train --resume {self.run_dir}")
        else:
            self.logger.message(f"time budget of {self.cfg.train.max_minutes:g} min reached at step {self.step} of "
                                f"{self.total_steps}: the run ends here (raise train.max_minutes to continue it)")

    # ----------------------------------------------------------------- state and checkpoints

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

    def _load_state(self, state: dict[str, Any]) -> None:
        self._load_weights_state(state)
        self.step = int(state["step"])
        self.best_psnr = float(state["best_psnr"])
        self.bad_steps = int(state["bad_steps"])
        self.wall_time = float(state["wall_time"])
        restore_rng(state["rng"])

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
        if not (self.run_dir / STATE_FILE).is_file():
            raise RestoreKitError(
                f"training stopped at step {self.step}: the weights became non-finite and no checkpoint has been "
                "saved yet to roll back to; lower optim.lr or set train.grad_clip"
            )
        state = read_state(self.run_dir)
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
        write_state(self.run_dir, self.state_dict())

    # ----------------------------------------------------------------- signals

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

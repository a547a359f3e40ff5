"""Typed, validated training configuration.

A config is a tree of dataclasses built from plain YAML/dict data. Every key is checked: an unknown
or misspelt one is a :class:`RestoreKitError` naming the nearest valid key, so a typo never silently
falls back to a default. ``--set key.sub=value`` overrides are applied to the plain data before
validation, with values parsed as YAML.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Union

import yaml

from ..data import DatasetConfig, DegradationConfig, PatchConfig
from ..errors import RestoreKitError
from ..registry import did_you_mean


@dataclass
class ModelConfig:
    """``name`` is a registered model; ``args`` go to its factory; ``init_from`` is a restorekit
    checkpoint (or a run folder: its ``best`` weights) whose weights start the run. ``identity_init``
    zeroes the layer that makes a residual model's residual (the model's ``output_layer``: DnCNN, the
    DuRNs), so that training starts from output = input instead of a random residual. With PyTorch's
    default init DuRN-U starts 11 dB below its input on motion blur and is still 2.8 dB below after
    300 steps. With Adam, pair it with a larger ``optim.eps`` (1e-5) where a ReLU feeds the zeroed
    layer: Adam's normalised steps otherwise kill that ReLU (DuRN-S-P's ``deconv2``; docs/training.md).
    ``train_only`` is a regular expression: only the parameters whose names it finds learn, the others
    stay frozen (``net\\.guide``: only ``resunet-color-opp``'s guide weights over a trained gray network)."""

    name: str = "dncnn-s"
    args: dict[str, Any] = field(default_factory=dict)
    init_from: str | None = None
    identity_init: bool = False
    train_only: str | None = None


@dataclass
class TaskConfig:
    """One task of a multi-task model (IPT): ``forward(x, task=name)`` on ``degradation``; steps
    cycle through the tasks. ``patch`` crops the target batch first (IPT's SR tasks take 48·scale)."""

    name: str = ""
    degradation: DegradationConfig | None = None
    patch: int | None = None


@dataclass
class DataConfig:
    train: DatasetConfig = field(default_factory=DatasetConfig)
    val: DatasetConfig | None = None
    tasks: list[TaskConfig] = field(default_factory=list)


@dataclass
class OptimConfig:
    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    weight_decay: float = 0.0
    momentum: float = 0.9
    nesterov: bool = False


@dataclass
class ScheduleConfig:
    """Learning-rate factor as a function of the epoch (or step, with ``unit: step``).

    constant; multistep (×gamma at each milestone); step (×gamma every step_size); cosine (to
    eta_min over ``length``, default the whole run); warmup-cosine (``warmup`` linear units, then
    cosine to eta_min). With ``unit: epoch`` the rate changes at epoch boundaries, as the papers'
    per-epoch schedulers do.
    """

    name: Literal["constant", "multistep", "step", "cosine", "warmup-cosine"] = "constant"
    unit: Literal["epoch", "step"] = "epoch"
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1
    step_size: int | None = None
    eta_min: float = 0.0
    warmup: int = 0
    length: int | None = None


@dataclass
class MixupConfig:
    """MPRNet's MixUp: pairs mixed with λ ~ Beta(alpha, alpha) from epoch ``start_epoch`` on."""

    start_epoch: int = 5
    alpha: float = 1.2


@dataclass
class LoopConfig:
    """The ``train:`` section: length, batch, precision and the loop's options.

    A *step* is one batch; ``locally_training_num`` optimiser updates are made on it (DuRN), each
    on a freshly degraded input. ``batch_size`` is global: each of N DDP processes gets 1/N.
    ``ema`` is the EMA decay (null: off). ``val_every`` counts ``val_unit``s; ``checkpoint_every``
    (steps) adds resumable checkpoints between validations. ``progress``, ``tensorboard`` and
    ``plot`` (``curves.png``) switch those outputs. ``max_minutes`` ends the run early, validated and
    saved as at its last step, once its training time (the step loop's wall clock, summed over
    resumes) reaches it; the schedule still spans ``steps``/``epochs``. ``precision: auto`` trains in
    bf16 where the device computes it natively (AMX / AVX512-BF16 CPUs, Ampere+ GPUs), fp32 elsewhere:
    emulated bf16 on an AVX2 CPU is an order of magnitude slower than fp32.
    """

    steps: int | None = None
    epochs: int | None = None
    max_minutes: float | None = None
    batch_size: int = 16
    precision: Literal["fp32", "bf16", "fp16", "auto"] = "fp32"
    channels_last: bool = False
    compile: bool = False
    ema: float | None = None
    grad_clip: float | None = None
    locally_training_num: int = 1
    mixup: MixupConfig | None = None
    clamp_outputs: bool = False
    val_every: int = 1
    val_unit: Literal["epoch", "step"] = "epoch"
    log_every: int = 10
    checkpoint_every: int | None = None
    seed: int = 0
    num_workers: int = 0
    device: str = "auto"
    on_nan: Literal["skip", "stop"] = "skip"
    max_bad_steps: int = 10
    sync_bn: bool = False
    deterministic: bool = False
    progress: bool = True
    tensorboard: bool = True
    plot: bool = True


@dataclass
class TrainConfig:
    """The whole run. ``loss`` is a :func:`restorekit.losses.build_loss` spec."""

    name: str = "run"
    description: str = ""
    run_dir: str | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: Any = "l1"
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: LoopConfig = field(default_factory=LoopConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)


# --------------------------------------------------------------------------- parsing


def _nearest(key: str, valid: list[str]) -> str:
    return did_you_mean(key, valid, n=1, cutoff=0.0)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """``value`` checked against (and lightly converted to) the annotation ``tp``."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None:
            if type(None) in options:
                return None
            raise RestoreKitError(f"{where}: a value is required")
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, where)
            except RestoreKitError as exc:
                errors.append(str(exc))
        raise RestoreKitError(errors[-1] if len(errors) == 1 else f"{where}: unexpected value {value!r}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            hint = _nearest(str(value), [str(c) for c in choices])
            raise RestoreKitError(f"{where}: {value!r} is not one of {', '.join(map(str, choices))}{hint}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin in (list, tuple):
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and item_tp in (str, float, int):
            value = [value]  # a single root / milestone is a list of one
        if not isinstance(value, (list, tuple)):
            raise RestoreKitError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise RestoreKitError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise RestoreKitError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise RestoreKitError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise RestoreKitError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, Path)):
            return str(value)
        raise RestoreKitError(f"{where}: expected a string, got {value!r}")
    raise TypeError(f"unsupported annotation {_type_name(tp)} at {where}")


def from_dict(cls: type, data: Any, where: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys with the nearest valid one."""
    if data is None:
        data = {}
    if isinstance(data, str) and cls is DegradationConfig:
        data = {"name": data}  # `degradation: gaussian-noise` is short for {name: …}
    if not isinstance(data, Mapping):
        raise RestoreKitError(f"{where or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in names:
            prefix = where + "." if where else ""
            hint = did_you_mean(prefix + str(key), [prefix + n for n in names], n=1, cutoff=0.0)
            raise RestoreKitError(f"unknown config key {path!r}{hint}")
        kwargs[key] = _coerce(value, hints[key], path)
    return cls(**kwargs)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b.c=value"`` → (["a", "b", "c"], value parsed as a YAML scalar or list)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise RestoreKitError(f"override {text!r} is not of the form key.sub=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise RestoreKitError(f"override {text!r}: cannot parse the value ({exc})") from None
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Apply ``key.sub=value`` strings to plain config data (a copy); numeric parts index lists."""
    import copy

    data = copy.deepcopy(data)
    for text in overrides:
        keys, value = parse_override(text)
        node: Any = data
        for i, key in enumerate(keys):
            last = i == len(keys) - 1
            if isinstance(node, list):
                if not key.isdigit() or int(key) >= len(node):
                    raise RestoreKitError(f"override {text!r}: {key!r} is not an index of {'.'.join(keys[:i])}")
                idx: Any = int(key)
            else:
                idx = key
                if not last and not isinstance(node.get(key), (dict, list)):
                    node[key] = {}  # e.g. data.val.root on a recipe without validation
            if last:
                node[idx] = value
            else:
                node = node[idx]
    return data


def load_config_data(source: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """Plain data of a YAML file (or a mapping), with recipe inheritance (``base:``) resolved."""
    from ..recipes import resolve_bases

    if isinstance(source, Mapping):
        data, base_dir = dict(source), None
    else:
        path = Path(source)
        if not path.is_file():
            raise RestoreKitError(f"{path}: no such config file")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise RestoreKitError(f"{path}: not valid YAML ({exc})") from None
        if not isinstance(data, dict):
            raise RestoreKitError(f"{path}: a config is a mapping of sections")
        base_dir = path.parent
    data = resolve_bases(data, base_dir=base_dir)
    data.pop("cpu", None)  # a recipe's CPU variant, inherited through base: (applied by `base: NAME-cpu`)
    return data


def validate(cfg: TrainConfig) -> TrainConfig:
    """Checks that span keys (a single key's type is checked on parsing)."""
    t = cfg.train
    if (t.steps is None) == (t.epochs is None):
        raise RestoreKitError("train: give exactly one of train.steps and train.epochs")
    for key in ("steps", "epochs", "batch_size", "locally_training_num", "val_every", "log_every", "max_bad_steps"):
        value = getattr(t, key)
        if value is not None and value < 1:
            raise RestoreKitError(f"train.{key} must be >= 1, got {value}")
    if cfg.model.identity_init and cfg.model.init_from:
        raise RestoreKitError("model: identity_init and init_from both set the starting weights; give one")
    if t.max_minutes is not None and not t.max_minutes > 0:
        raise RestoreKitError(f"train.max_minutes must be > 0, got {t.max_minutes}")
    if t.ema is not None and not 0.0 < t.ema < 1.0:
        raise RestoreKitError(f"train.ema is a decay in (0, 1), got {t.ema}")
    if not cfg.data.train.root:
        raise RestoreKitError("data.train.root: no training images given")
    for split, ds in (("train", cfg.data.train), ("val", cfg.data.val)):
        if ds is not None and ds.kind == "paired" and ds.degradation is not None:
            raise RestoreKitError(f"data.{split}: paired data comes degraded; remove its degradation or use kind: clean")
    patch = cfg.data.train.patch
    if patch.mode == "grid" and patch.size is None:
        raise RestoreKitError("data.train.patch: grid mode needs a size")
    if cfg.schedule.warmup and cfg.schedule.name != "warmup-cosine":
        # A warm-up that a schedule silently ignored once trained runs its recipe claimed had one.
        raise RestoreKitError(f"schedule.warmup is used by 'warmup-cosine' only, not {cfg.schedule.name!r}; "
                              "set schedule.name=warmup-cosine or remove warmup")
    if cfg.schedule.name == "step" and not cfg.schedule.step_size:
        raise RestoreKitError("schedule: name 'step' needs step_size")
    if len(cfg.optim.betas) != 2:
        raise RestoreKitError(f"optim.betas needs two values, got {cfg.optim.betas}")
    return cfg


def build_config(source: str | Path | Mapping[str, Any] | TrainConfig, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """A validated :class:`TrainConfig` from a YAML path, a mapping or a config, plus overrides."""
    data = source.to_dict() if isinstance(source, TrainConfig) else load_config_data(source)
    data = apply_overrides(data, overrides)
    return validate(from_dict(TrainConfig, data))


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}`` (lists are leaves)."""
    if isinstance(data, Mapping):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        if not data and prefix:
            out[prefix] = {}
        return out
    return {prefix: data}


def config_diff(old: TrainConfig, new: TrainConfig, ignore: tuple[str, ...] = ("run_dir",)) -> list[str]:
    """Human-readable ``key: old -> new`` lines for the keys that differ."""
    a, b = flatten(old.to_dict()), flatten(new.to_dict())
    lines = []
    for key in sorted(set(a) | set(b)):
        if key in ignore or key.split(".")[0] in ignore:
            continue
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            lines.append(f"{key}: {a.get(key, '<absent>')!r} -> {b.get(key, '<absent>')!r}")
    return lines


def resolve_paths(cfg: TrainConfig, cwd: Path | None = None) -> TrainConfig:
    """Data roots and ``init_from`` made absolute, so that the saved config (and a resume from another
    folder) points at the same files. A data root is an absolute path, a path relative to ``cwd``, or a
    named set found as ``restorekit eval`` finds one (:func:`data_root`); one that is none of these is
    a RestoreKitError naming where it was looked for."""
    cwd = cwd or Path.cwd()
    for split in ("train", "val"):
        ds = getattr(cfg.data, split)
        if ds is not None:
            ds.root = [data_root(r, f"data.{split}.root", cwd) for r in ds.root]
    if cfg.model.init_from:
        q = Path(cfg.model.init_from).expanduser()
        cfg.model.init_from = str(q if q.is_absolute() else (cwd / q).resolve())
    return cfg


def data_root(root: str, where: str, cwd: Path) -> str:
    """``root`` as an absolute path: as given when absolute; against ``cwd`` when it exists there; else a
    named set (``BSD400``, ``derain/rain-sample``) under the data roots of
    :func:`restorekit.eval.datasets.data_roots` ($RESTOREKIT_DATA, ../shared/data)."""
    from ..eval.datasets import data_roots, find_dataset

    path = Path(root).expanduser()
    if path.is_absolute():
        if path.exists():
            return str(path)  # not resolved: a resumed run's saved roots must compare equal
        raise RestoreKitError(f"{where}: {root} does not exist", hint=f"give overrides=['{where}=PATH']",
                              cli_hint=f"point it at your data with --set {where}=PATH")
    if (cwd / path).exists():
        return str((cwd / path).resolve())
    names = [path]
    parts = path.parts
    for i in range(len(parts) - 2):  # ../shared/data/denoise/BSD400, as configs written for the checkout say
        if parts[i:i + 2] == ("shared", "data"):
            names.append(Path(*parts[i + 2:]))
    for name in names:
        try:
            return str(find_dataset(name).resolve())
        except RestoreKitError:
            continue
    looked = ", ".join(str(r) for r in data_roots()) or "none found: RESTOREKIT_DATA is unset and there is no ../shared/data"
    raise RestoreKitError(
        f"{where}: {root} does not exist in {cwd}, nor is it a named set under the data roots ({looked})",
        hint=f"give overrides=['{where}=PATH'], or set RESTOREKIT_DATA to the folder that holds the named sets",
        cli_hint=f"point it at your data with --set {where}=PATH, or set RESTOREKIT_DATA to the folder that holds "
                 "the named sets",
    )


__all__ = [
    "DataConfig", "DatasetConfig", "DegradationConfig", "LoopConfig", "MixupConfig", "ModelConfig", "OptimConfig",
    "PatchConfig", "ScheduleConfig", "TaskConfig", "TrainConfig", "apply_overrides", "build_config", "config_diff",
    "data_root", "from_dict", "load_config_data", "parse_override", "resolve_paths", "validate",
]

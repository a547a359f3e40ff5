"""The prepared model: options, devices, and the wrapper that maps [0, 1] RGB to [0, 1] RGB.

Everything is read from ``model.info`` (:class:`~restorekit.models.ModelInfo`), so a newly registered
model gets it for free: input range and colour order, size multiple, output pick, BatchNorm folding,
precision and memory layout. Training uses the same conversions (:func:`to_model_input`).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import itertools
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import RestoreKitError
from ..models.fold import fold_batchnorm
from ..models.registry import ModelInfo

PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# "auto": the device's fast precision where it keeps the results (resolve_precision).
PRECISION_CHOICES = ("auto", *PRECISIONS)
# CPU flags of native bf16 arithmetic (oneDNN's fast bf16 kernels); without them bf16 is emulated, slower than fp32.
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
DEVICES = ("auto", "cpu", "cuda", "mps")
# Tiled-inference protocols: "chop" is IPT's reference forward_chop (inference/chop.py), "blend" the
# generic overlapping tiles with a smooth ramp (inference/tiling.py).
TILINGS = ("chop", "blend")
# How a gray model restores a colour image: "y" runs it on the luminance (BT.601 full-range YCbCr, as JPEG
# and PIL define it) and keeps the chroma; "per-channel" runs it on each of R, G and B.
COLOR_MODES = ("y", "per-channel")


@dataclass
class InferenceOptions:
    """How to run a model. ``tile=None`` runs whole images (IPT always tiles at its patch size).

    ``tiling`` picks how a fixed-size model (IPT) covers larger images: ``"chop"`` (the reference's
    ``forward_chop``, with which IPT's published numbers were measured) or ``"blend"`` (tiles of
    ``overlap`` blended with a ramp); None: the model's default (``ModelInfo.tiling``; IPT: chop).

    ``precision="auto"`` runs bf16 + channels_last on a CUDA GPU with native bf16 (compute capability 8+)
    and on a CPU with native bf16 (AMX or AVX512-BF16), fp32 elsewhere (:func:`resolve_precision`). It is
    the default of ``restorekit restore`` and :func:`~restorekit.inference.batch.restore_files`; these
    options stay fp32 by default (as ``rk.restore``, ``restorekit eval`` and ``benchmark`` do), so that
    evaluation, export checks and validation give the same numbers on every machine. bf16 and fp16
    always run channels_last on cpu and cuda; ``channels_last=True`` asks for it in fp32 too.
    ``progress``, when given, is called during :func:`~restorekit.inference.restore.restore_tensor` with
    (tiles done, tiles in all): first (0, total), then after each forward pass.
    """

    tile: int | None = None
    overlap: int | None = None
    tiling: str | None = None
    tile_batch: int | None = None  # None: as many tiles per pass as fill _PASS_PIXELS (see tiling.default_tile_batch)
    ensemble: bool = False
    precision: str = "fp32"
    channels_last: bool = False
    fold_bn: bool = True
    compile: bool = False
    device: str = "auto"
    task: str | None = None
    clamp: bool = True
    progress: Callable[[int, int], None] | None = None
    color: str = "y"  # a colour image through a gray model: see COLOR_MODES


# --------------------------------------------------------------------------------------------------
# devices and model metadata


def resolve_device(name: str) -> torch.device:
    """``auto`` → cuda, else mps, else cpu; ``cuda:N`` accepted. Unavailable devices are user errors."""
    if not isinstance(name, str):
        raise RestoreKitError(f"device must be a string ({', '.join(DEVICES)}), not {name!r}")
    key = name.strip().lower()
    if key == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind, _, index = key.partition(":")
    if kind not in DEVICES or (index and (kind != "cuda" or not index.isdigit())):
        raise RestoreKitError(f"unknown device {name!r}; valid: {', '.join(DEVICES)} (or cuda:N)")
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "mps":
        if not _mps_available():
            raise RestoreKitError("device 'mps' is not available on this machine; use 'cpu' or 'auto'")
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise RestoreKitError(f"device {name!r}: CUDA is not available on this machine; use 'cpu' or 'auto'")
    i = int(index) if index else torch.cuda.current_device()
    if i >= torch.cuda.device_count():
        raise RestoreKitError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) (cuda:0..)")
    return torch.device("cuda", i)


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def model_metadata(model: nn.Module) -> ModelInfo:
    """``model.info``, or neutral defaults (range 1, RGB, any size, channels unchecked) for a plain module."""
    info = getattr(model, "info", None)
    if isinstance(info, ModelInfo):
        return info
    return ModelInfo(name=type(model).__name__, family="", task="", channels=0)


@dataclass(frozen=True)
class ModelSpec:
    """What one call needs from a model: its metadata, the resolved task and its scale, the size
    multiple, and ``fixed`` (the one input size of fixed-size models such as IPT, else None)."""

    info: ModelInfo
    task: str | None
    scale: int
    multiple: int
    fixed: int | None


def model_spec(model: nn.Module, task: str | None) -> ModelSpec:
    """Resolve ``task`` against the model's tasks (user errors name the valid ones; none given: the model's
    main task where it is one of them) and read its sizes; ``scale`` is the whole call's, input transform
    (``ModelInfo.task_inputs``) included."""
    info = model_metadata(model)
    scale = info.scale
    if info.tasks:
        if task is None and info.task in info.tasks:
            task = info.task
        if task is None and len(info.tasks) > 1:
            raise RestoreKitError(f"model {info.name} has several tasks; pass task= one of {', '.join(info.tasks)}")
        if task is not None:
            index = getattr(model, "task_index", None)
            if callable(index):
                i = index(task)  # the model knows its aliases (ipt-denoise serves denoise-30/50)
            elif task in info.tasks:
                i = info.tasks.index(task)
            else:
                raise RestoreKitError(f"unknown task {task!r} for model {info.name}; valid: {', '.join(info.tasks)}")
        else:
            i = 0
        scale = info.scales[i] if info.scales else scale
        task_input(info, task)  # an unknown transform fails here, before any work
    elif task is not None and task != info.task:
        raise RestoreKitError(f"model {info.name} is single-task ({info.task or 'unnamed'}); it takes no task={task!r}")
    fixed = None
    multiple = max(1, int(info.size_multiple))
    if info.fixed_size:
        fixed = int(getattr(model, "patch_size", multiple))
        multiple = fixed
    return ModelSpec(info, task if info.tasks else None, int(scale), multiple, fixed)


@dataclass(frozen=True)
class BicubicUp:
    """MATLAB-bicubic ×``factor`` (:func:`~restorekit.degradations.sr.bicubic_upsample`), the input of
    pre-upsampling networks; ``radius``: the input pixels on each side that an output pixel reads."""

    factor: int
    radius: int = 2

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        from ..degradations.sr import bicubic_upsample

        return bicubic_upsample(x, self.factor)


def task_input(info: ModelInfo, task: str | None) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """How ``info.task_inputs`` says to prepare ``task``'s [0, 1] input before the model: None (as is) or
    MATLAB-bicubic upscaling (``"bicubic-up-N"``: :class:`BicubicUp`)."""
    name = info.task_inputs.get(task or "", "")
    if not name:
        return None
    kind, _, factor = name.rpartition("-")
    if kind == "bicubic-up" and factor.isdigit() and int(factor) >= 1:
        return BicubicUp(int(factor))
    raise RestoreKitError(f"model {info.name}: unknown input transform {name!r} for task {task!r}; "
                          "valid: '' (as is), 'bicubic-up-N'")


def check_image(x: Any, info: ModelInfo) -> None:
    if not isinstance(x, torch.Tensor):
        raise RestoreKitError(f"expected a torch.Tensor image batch, got {type(x).__name__}")
    if x.ndim != 4:
        raise RestoreKitError(f"expected an N×C×H×W image batch, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise RestoreKitError(f"expected float pixels in [0, 1], got dtype {x.dtype}; divide integer images by their maximum")
    n, c, h, w = x.shape
    if n == 0 or h == 0 or w == 0:
        raise RestoreKitError(f"empty image batch, shape {tuple(x.shape)}")
    want = info.channels
    if want and c != want:
        if want == 1 and c == 3:
            raise RestoreKitError(
                f"model {info.name} takes gray (1-channel) images and this image is RGB (3 channels); "
                "convert it to gray first (e.g. read_image(path, channels=1))"
            )
        if want == 3 and c == 1:
            raise RestoreKitError(
                f"model {info.name} takes RGB (3-channel) images and this image is gray; "
                "convert it to RGB first (e.g. read_image(path, channels=3))"
            )
        raise RestoreKitError(f"model {info.name} takes {want}-channel images, got {c} channels")


def check_options(options: InferenceOptions, device: torch.device | None = None, model: nn.Module | None = None) -> None:
    """Everything about ``options`` that can be checked before any work: precision on the device, tile,
    overlap and tile batch, and with a model its task and size multiple. Raises RestoreKitError saying
    what would be valid."""
    device = device if device is not None else resolve_device(options.device)
    if options.precision not in PRECISION_CHOICES:
        raise RestoreKitError(f"unknown precision {options.precision!r}; valid: {', '.join(PRECISIONS)}, or auto "
                              "(bf16 where the device has it natively, else fp32)")
    if options.precision == "fp16" and device.type != "cuda":
        raise RestoreKitError(f"precision fp16 needs a CUDA device (got {device.type}); use bf16 or fp32")
    if options.precision == "bf16" and device.type not in ("cpu", "cuda"):
        raise RestoreKitError(f"precision bf16 runs on cpu and cuda, not {device.type}; use fp32")
    if options.tile_batch is not None and (not isinstance(options.tile_batch, int) or options.tile_batch < 1):
        raise RestoreKitError(f"tile_batch must be a positive integer or None, not {options.tile_batch!r}")
    if options.tile is not None and (not isinstance(options.tile, int) or options.tile < 1):
        raise RestoreKitError(f"tile must be a positive integer (pixels) or None, not {options.tile!r}")
    if options.overlap is not None and (not isinstance(options.overlap, int) or options.overlap < 0):
        raise RestoreKitError(f"overlap must be a non-negative integer (pixels) or None, not {options.overlap!r}")
    if options.tiling is not None and options.tiling not in TILINGS:
        raise RestoreKitError(f"unknown tiling {options.tiling!r}; valid: {', '.join(TILINGS)}")
    if options.color not in COLOR_MODES:
        raise RestoreKitError(f"unknown color mode {options.color!r}; valid: {', '.join(COLOR_MODES)}")
    spec = model_spec(model, options.task) if model is not None else None
    if spec is not None and resolve_tiling(spec, options) == "chop":
        return  # the chop has its own fixed window arithmetic; tile and overlap do not apply
    check_tiling(spec.fixed if spec is not None and spec.fixed is not None else options.tile, options.overlap, spec)


def resolve_tiling(spec: ModelSpec, options: InferenceOptions) -> str:
    """The tiling in effect: ``options.tiling``, else the model's default; "chop" is checked to apply
    (a fixed-size model of at least 4 pixels, no overlap given)."""
    tiling = options.tiling or spec.info.tiling or "blend"
    if tiling not in TILINGS:
        raise RestoreKitError(f"unknown tiling {tiling!r}; valid: {', '.join(TILINGS)}")
    if tiling == "chop":
        name = spec.info.name
        if spec.fixed is None:
            raise RestoreKitError(f"tiling 'chop' (IPT's forward_chop) is for fixed-size models; model {name} takes "
                                  "any size: use tiling 'blend' (--tile/--overlap)")
        if spec.fixed < 4:
            raise RestoreKitError(f"tiling 'chop' needs windows of at least 4 pixels; model {name} takes {spec.fixed}")
        if options.overlap is not None:
            default = "" if options.tiling else f" (the default of model {name})"
            raise RestoreKitError(f"overlap {options.overlap} applies to tiling 'blend'; tiling 'chop'{default} slides "
                                  f"its {spec.fixed}-px windows by {spec.fixed // 4} px: drop the overlap or choose "
                                  "tiling 'blend' (--tiling blend)")
    return tiling


def check_tiling(tile: int | None, overlap: int | None, spec: ModelSpec | None = None) -> int | None:
    """The tile in effect (rounded down to the model's size multiple), or a RestoreKitError when the tile
    is smaller than the size multiple or than twice the overlap."""
    if tile is None:
        return None
    multiple = spec.multiple if spec is not None else 1
    name = spec.info.name if spec is not None else ""
    if tile < multiple:
        raise RestoreKitError(f"tile {tile} is smaller than model {name}'s size multiple {multiple}; "
                              f"use a tile >= {multiple}")
    effective = tile // multiple * multiple
    if overlap is not None and 2 * overlap > effective:
        rounded = "" if effective == tile else (
            f" (rounded down to {effective}, a multiple of model {name}'s size multiple {multiple})")
        raise RestoreKitError(f"tile {tile}{rounded} is smaller than twice the overlap {overlap}; "
                              f"use tile >= {-(-2 * overlap // multiple) * multiple} or overlap <= {effective // 2}")
    return effective


# --------------------------------------------------------------------------------------------------
# precision and layout


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (Linux); empty where there is none. torch's
    ``get_cpu_capability()`` says "AVX512" whether or not the CPU has bf16 arithmetic, so it cannot decide."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def auto_precision(device: torch.device) -> tuple[str, str]:
    """(precision, why) that ``precision="auto"`` runs on ``device``.

    bf16 where the device computes it natively: CUDA GPUs of compute capability 8.0+ (Ampere, Hopper;
    ROCm: as torch reports) and CPUs with AMX or AVX512-BF16. Elsewhere fp32: emulated bf16 is slower
    than fp32, fp16's range (65504) can overflow in networks without normalisation (``precision="fp16"``
    asks for it on older GPUs), and MPS runs fp32.
    """
    if device.type == "cuda":
        if torch.version.hip:
            native = torch.cuda.is_bf16_supported()
        else:
            native = torch.cuda.get_device_capability(device) >= (8, 0)
        name = torch.cuda.get_device_name(device)
        return ("bf16", f"{name} has native bf16") if native else ("fp32", f"{name} has no native bf16")
    if device.type == "cpu":
        have = [f for f in BF16_CPU_FLAGS if f in cpu_flags()]
        if have:
            return "bf16", f"this CPU has {'/'.join(have)}"
        return "fp32", "this CPU has no native bf16 (AMX or AVX512-BF16)"
    return "fp32", f"bf16 is not used on {device.type}"


def resolve_precision(options: InferenceOptions, device: torch.device) -> tuple[str, bool]:
    """(precision, channels_last) that ``options`` run with on ``device``: "auto" resolved by
    :func:`auto_precision`; bf16 and fp16 run channels_last on cpu and cuda, where the fast kernels for
    them (oneDNN's, cuDNN's) are NHWC: on CPU, bf16 convolutions are ~1.8× faster than in NCHW;
    ``options.channels_last`` adds it to fp32. Training resolves its ``precision: auto`` with
    :func:`auto_precision` too, and keeps its configured layout."""
    precision = options.precision
    if precision == "auto":
        precision = auto_precision(device)[0]
    low = precision in ("bf16", "fp16") and device.type in ("cpu", "cuda")
    return precision, bool(options.channels_last) or low


def describe_precision(options: InferenceOptions, device: torch.device) -> str:
    """What runs, in one phrase: "bf16 + channels_last (auto: this CPU has amx_bf16/avx512_bf16;
    --precision fp32 to opt out)"."""
    precision, channels_last = resolve_precision(options, device)
    ran = precision + (" + channels_last" if channels_last else "")
    auto, why = auto_precision(device)
    if options.precision == "auto":
        return f"{ran} (auto: {why}" + ("; --precision fp32 to opt out)" if precision != "fp32" else ")")
    if precision == "fp32" and auto != "fp32":
        return f"{ran} (--precision auto would run {auto} + channels_last: {why})"
    return f"{ran} (--precision {options.precision})"


def resolved_options(options: InferenceOptions, device: torch.device | None = None) -> InferenceOptions:
    """A copy of ``options`` with the precision that runs on ``device`` written out ("bf16", not "auto"):
    what results record, so that a rerun elsewhere repeats it."""
    device = device if device is not None else resolve_device(options.device)
    check_options(options, device)
    return dataclasses.replace(options, precision=resolve_precision(options, device)[0])


# --------------------------------------------------------------------------------------------------
# the prepared model


class RestoreModule(nn.Module):
    """Wraps a model so that it maps [0, 1] RGB to [0, 1] RGB (float32, unclamped).

    Prepares the task's input (``ModelInfo.task_inputs``), scales to the model's ``input_range`` and
    back, swaps RGB↔BGR, passes ``task``, picks the final output of multi-output models, and applies
    the autocast and memory-format policy. A ``borrowed``
    model (the caller's own, not a copy) is switched to eval mode only for the duration of a call.
    """

    def __init__(
        self,
        model: nn.Module,
        info: ModelInfo,
        *,
        task: str | None = None,
        autocast: torch.dtype | None = None,
        channels_last: bool = False,
        borrowed: bool = False,
    ) -> None:
        super().__init__()
        self.model = model
        self.info = info
        self.pass_task = bool(info.tasks) and not info.task_inputs  # task_inputs: one network, no task argument
        self.task = task
        self.prepare_input = task_input(info, task)
        self.input_radius = int(getattr(self.prepare_input, "radius", 0))  # added to the network's receptive field
        self.autocast = autocast
        self.channels_last = channels_last
        self.borrowed = borrowed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.prepare_input is not None:
            x = self.prepare_input(x)
        x = to_model_input(x, self.info, channels_last=self.channels_last)
        with contextlib.ExitStack() as stack:
            if self.borrowed:
                stack.enter_context(_eval_mode(self.model))
            if self.autocast is not None:
                stack.enter_context(torch.autocast(x.device.type, dtype=self.autocast))
            y = self.model(x, task=self.task) if self.pass_task else self.model(x)
        return from_model_output(y, self.info)


def to_model_input(x: torch.Tensor, info: ModelInfo, *, channels_last: bool = False) -> torch.Tensor:
    """[0, 1] RGB → what the model takes: its colour order, white at its ``input_range``, and the memory
    layout. Differentiable; training feeds its batches through it too."""
    if info.color_order.lower() == "bgr":
        x = x.flip(1)
    if info.input_range != 1:
        x = x * float(info.input_range)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def from_model_output(y: Any, info: ModelInfo, *, stages: bool = False) -> Any:
    """The model's output → float32 [0, 1]-scale RGB, unclamped: the final image of a multi-output model
    (``info.output_index``), or with ``stages`` all of its outputs, a list (training's losses see each)."""

    def convert(t: torch.Tensor) -> torch.Tensor:
        t = t.float()
        if info.input_range != 1:
            t = t / float(info.input_range)
        return t.flip(1) if info.color_order.lower() == "bgr" else t

    if not isinstance(y, (list, tuple)):
        return convert(y)
    return [convert(t) for t in y] if stages else convert(y[info.output_index or 0])


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


# Prepared copies, per original model (weakly: they go when the model goes) and per configuration;
# a copy is rebuilt when the original's weights change (tensor version counters).
_PREPARED: weakref.WeakKeyDictionary[nn.Module, dict[tuple, tuple[tuple, nn.Module]]] = weakref.WeakKeyDictionary()


def weights_fingerprint(model: nn.Module) -> tuple:
    return tuple((t.data_ptr(), t._version) for t in itertools.chain(model.parameters(), model.buffers()))


def has_foldable_batchnorm(model: nn.Module) -> bool:
    """Whether :func:`fold_batchnorm` would change anything (a Conv2d → BatchNorm2d pair in a Sequential)."""
    for module in model.modules():
        if isinstance(module, nn.Sequential):
            children = list(module)
            for a, b in itertools.pairwise(children):
                if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d) and b.track_running_stats:
                    return True
    return False


def uses_channels_last(options: InferenceOptions, device: torch.device) -> bool:
    return resolve_precision(options, device)[1]


# Convolutions of at most this many input channels read images (RGB, gray, RGBA) and run in fp32 under a low
# precision: bf16 would round the pixels to 8 significant bits (±0.5/255 near white), which cost the
# default colour model up to 0.01 dB of PSNR on Kodak24 (σ25); they are a small share of the work.
_IMAGE_CHANNELS = 4


def _run_in_fp32(module: nn.Module) -> None:
    """Make ``module`` (of a prepared copy) run in fp32 inside autocast regions; its structure is kept."""
    run = module.forward

    def forward(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return run(x.float())

    module.forward = forward  # type: ignore[method-assign]


def _inner_model(model: nn.Module, options: InferenceOptions, device: torch.device) -> tuple[nn.Module, bool]:
    """(module to run, borrowed?): the model itself when nothing needs changing, else a cached copy."""
    tensors = list(itertools.chain(model.parameters(), model.buffers()))
    fold = options.fold_bn and has_foldable_batchnorm(model)
    precision, channels_last = resolve_precision(options, device)
    moved = any(t.device != device for t in tensors)
    cast = any(t.is_floating_point() and t.dtype != torch.float32 for t in tensors)
    low = PRECISIONS[precision]
    if not (fold or channels_last or moved or cast or low or options.compile):
        return model, True
    key = (fold, str(device), channels_last, low, options.compile)
    fingerprint = weights_fingerprint(model)
    per_model = _PREPARED.setdefault(model, {})
    hit = per_model.get(key)
    if hit is not None and hit[0] == fingerprint:
        return hit[1], False
    inner = fold_batchnorm(model) if fold else copy.deepcopy(model)
    inner.eval().requires_grad_(False)
    inner.to(device=device, dtype=torch.float32)
    if channels_last:
        inner.to(memory_format=torch.channels_last)
    if low is not None:
        # Autocast casts convolution weights to ``low`` on every call anyway; casting them once gives the
        # same numbers without a copy of every weight per tile. Other layers keep fp32 weights and
        # autocast's own policy (normalisations stay fp32). Convolutions that read images stay fp32.
        for m in inner.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                if m.in_channels <= _IMAGE_CHANNELS:
                    _run_in_fp32(m)
                else:
                    m.to(low)
    if options.compile:
        inner = torch.compile(inner)  # type: ignore[assignment]
    per_model[key] = (fingerprint, inner)
    return inner, False


def prepare_model(model: nn.Module, options: InferenceOptions | None = None) -> RestoreModule:
    """The model ready to run as ``options`` say: [0, 1] RGB in and out (see :class:`RestoreModule`).

    Eval mode, BatchNorm folded, on the device, fp32 weights, channels_last, compiled — on a copy, cached
    per model and configuration, so repeated calls are cheap; the argument itself is never modified.
    """
    options = options or InferenceOptions()
    device = resolve_device(options.device)
    check_options(options, device)
    spec = model_spec(model, options.task)
    inner, borrowed = _inner_model(model, options, device)
    precision, channels_last = resolve_precision(options, device)
    return RestoreModule(
        inner, spec.info, task=spec.task, autocast=PRECISIONS[precision], channels_last=channels_last,
        borrowed=borrowed,
    )

"""One inference path for every model: range and colour order, padding, tiling, ensemble, precision.

Everything is read from ``model.info`` (:class:`~restorekit.models.ModelInfo`), so a newly registered
model gets all of it for free. Callers pass N×C×H×W float images in [0, 1], RGB (or gray), and get the
restored images back in the same convention, ``scale`` times larger for super-resolution models.

Tiling: overlapping tiles of ``tile`` input pixels, anchored so that the last one ends at the image's
far border (no tile is padded unless the image is smaller than a tile). Each tile's interior sides are
weighted by a window over the ``overlap``: the outer third is discarded (pixels that saw the tile's
artificial border) and the middle third is a raised-cosine cross-fade with the neighbour; weights are
normalised. With ``overlap`` ≥ 3 × the receptive-field radius the result equals whole-image inference;
the automatic overlap is exactly that for models whose receptive field is small.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import math
import warnings
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .errors import RestoreKitError
from .models.fold import fold_batchnorm
from .models.registry import ModelInfo

PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
DEVICES = ("auto", "cpu", "cuda", "mps")
# Families whose models take exactly ``model.patch_size``² inputs (a fixed-size fold in the body).
FIXED_SIZE_FAMILIES = frozenset({"ipt"})
# Receptive fields up to this radius are measured exactly; wider ones (and global pooling or
# normalisation, which make them unbounded) get an effective radius: gradient above 1e-3 of its peak.
_EXACT_PROBE = 64
_WIDE_PROBE = 128
_EFFECTIVE_THRESHOLD = 1e-3


@dataclass
class InferenceOptions:
    """How to run a model. ``tile=None`` runs whole images (IPT always tiles at its patch size)."""

    tile: int | None = None
    overlap: int | None = None
    tile_batch: int = 4
    ensemble: bool = False
    precision: str = "fp32"
    channels_last: bool = False
    fold_bn: bool = True
    compile: bool = False
    device: str = "auto"
    task: str | None = None
    clamp: bool = True


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
class _Spec:
    """What one call needs from the model: resolved task, its scale, and size constraints."""

    info: ModelInfo
    task: str | None
    scale: int
    multiple: int
    fixed: int | None


def _spec(model: nn.Module, task: str | None) -> _Spec:
    info = model_metadata(model)
    scale = info.scale
    if info.tasks:
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
    elif task is not None and task != info.task:
        raise RestoreKitError(f"model {info.name} is single-task ({info.task or 'unnamed'}); it takes no task={task!r}")
    fixed = None
    multiple = max(1, int(info.size_multiple))
    if info.family in FIXED_SIZE_FAMILIES:
        fixed = int(getattr(model, "patch_size", multiple))
        multiple = fixed
    return _Spec(info, task if info.tasks else None, int(scale), multiple, fixed)


def _check_image(x: Any, info: ModelInfo) -> None:
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


def _check_options(options: InferenceOptions, device: torch.device) -> None:
    if options.precision not in PRECISIONS:
        raise RestoreKitError(f"unknown precision {options.precision!r}; valid: {', '.join(PRECISIONS)}")
    if options.precision == "fp16" and device.type != "cuda":
        raise RestoreKitError(f"precision fp16 needs a CUDA device (got {device.type}); use bf16 or fp32")
    if options.precision == "bf16" and device.type not in ("cpu", "cuda"):
        raise RestoreKitError(f"precision bf16 runs on cpu and cuda, not {device.type}; use fp32")
    if not isinstance(options.tile_batch, int) or options.tile_batch < 1:
        raise RestoreKitError(f"tile_batch must be a positive integer, not {options.tile_batch!r}")
    if options.tile is not None and (not isinstance(options.tile, int) or options.tile < 1):
        raise RestoreKitError(f"tile must be a positive integer (pixels) or None, not {options.tile!r}")
    if options.overlap is not None and (not isinstance(options.overlap, int) or options.overlap < 0):
        raise RestoreKitError(f"overlap must be a non-negative integer (pixels) or None, not {options.overlap!r}")


# --------------------------------------------------------------------------------------------------
# the prepared model


class RestoreModule(nn.Module):
    """Wraps a model so that it maps [0, 1] RGB to [0, 1] RGB (float32, unclamped).

    Scales to the model's ``input_range`` and back, swaps RGB↔BGR, passes ``task``, picks the final
    output of multi-output models, and applies the autocast and memory-format policy. A ``borrowed``
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
        self.input_range = float(info.input_range)
        self.bgr = info.color_order.lower() == "bgr"
        self.output_index = info.output_index or 0
        self.pass_task = bool(info.tasks)
        self.task = task
        self.autocast = autocast
        self.channels_last = channels_last
        self.borrowed = borrowed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bgr:
            x = x.flip(1)
        if self.input_range != 1.0:
            x = x * self.input_range
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with contextlib.ExitStack() as stack:
            if self.borrowed:
                stack.enter_context(_eval_mode(self.model))
            if self.autocast is not None:
                stack.enter_context(torch.autocast(x.device.type, dtype=self.autocast))
            y = self.model(x, task=self.task) if self.pass_task else self.model(x)
        if isinstance(y, (list, tuple)):
            y = y[self.output_index]
        y = y.float()
        if self.input_range != 1.0:
            y = y / self.input_range
        if self.bgr:
            y = y.flip(1)
        return y


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
_PREPARED: "weakref.WeakKeyDictionary[nn.Module, dict[tuple, tuple[tuple, nn.Module]]]" = weakref.WeakKeyDictionary()


def _fingerprint(model: nn.Module) -> tuple:
    return tuple((t.data_ptr(), t._version) for t in itertools.chain(model.parameters(), model.buffers()))


def _has_foldable_bn(model: nn.Module) -> bool:
    for module in model.modules():
        if isinstance(module, nn.Sequential):
            children = list(module)
            for a, b in zip(children, children[1:]):
                if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d) and b.track_running_stats:
                    return True
    return False


def _uses_channels_last(options: InferenceOptions, device: torch.device) -> bool:
    # Measured on an AVX-512-BF16 EPYC: bf16 autocast convolutions are ~2× faster in channels_last
    # than NCHW (oneDNN's blocked bf16 kernels), so bf16 on CPU always uses it.
    return options.channels_last or (options.precision == "bf16" and device.type == "cpu")


def _inner_model(model: nn.Module, options: InferenceOptions, device: torch.device) -> tuple[nn.Module, bool]:
    """(module to run, borrowed?): the model itself when nothing needs changing, else a cached copy."""
    tensors = list(itertools.chain(model.parameters(), model.buffers()))
    fold = options.fold_bn and _has_foldable_bn(model)
    channels_last = _uses_channels_last(options, device)
    moved = any(t.device != device for t in tensors)
    cast = any(t.is_floating_point() and t.dtype != torch.float32 for t in tensors)
    if not (fold or channels_last or moved or cast or options.compile):
        return model, True
    key = (fold, str(device), channels_last, options.compile)
    fingerprint = _fingerprint(model)
    per_model = _PREPARED.setdefault(model, {})
    hit = per_model.get(key)
    if hit is not None and hit[0] == fingerprint:
        return hit[1], False
    inner = fold_batchnorm(model) if fold else copy.deepcopy(model)
    inner.eval().requires_grad_(False)
    inner.to(device=device, dtype=torch.float32)
    if channels_last:
        inner.to(memory_format=torch.channels_last)
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
    _check_options(options, device)
    spec = _spec(model, options.task)
    inner, borrowed = _inner_model(model, options, device)
    return RestoreModule(
        inner, spec.info, task=spec.task, autocast=PRECISIONS[options.precision],
        channels_last=_uses_channels_last(options, device), borrowed=borrowed,
    )


# --------------------------------------------------------------------------------------------------
# receptive field


_RADIUS: "weakref.WeakKeyDictionary[nn.Module, int]" = weakref.WeakKeyDictionary()


def receptive_radius(model: nn.Module, *, task: str | None = None) -> int:
    """Receptive-field radius in input pixels, measured by back-propagating from one output pixel.

    Exact (the gradient is exactly zero outside the field) when the field fits a 64-pixel probe; beyond
    that, and for models with global pooling or normalisation (unbounded fields), the effective radius
    on a 128-pixel probe: the farthest input whose gradient exceeds 1e-3 of the largest. Cached per model.
    """
    cached = _RADIUS.get(model)
    if cached is not None:
        return cached
    spec = _spec(model, task)
    if spec.fixed is not None:
        radius = spec.fixed // 12  # global within a patch; this gives IPT's reference shave of 12 px at 48
    else:
        wrapper = RestoreModule(model, spec.info, task=spec.task, borrowed=True)
        radius = _probe(wrapper, spec, _EXACT_PROBE, exact=True)
        if radius is None:
            radius = _probe(wrapper, spec, _WIDE_PROBE, exact=False)
    _RADIUS[model] = int(radius)  # type: ignore[arg-type]
    return int(radius)  # type: ignore[arg-type]


def _probe(wrapper: RestoreModule, spec: _Spec, size: int, *, exact: bool) -> int | None:
    size = _round_up(size, spec.multiple)
    channels = spec.info.channels or 3
    device = next(itertools.chain(wrapper.parameters(), wrapper.buffers()), torch.empty(0)).device
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, channels, size, size, generator=gen).to(device)
    with torch.inference_mode(False), torch.enable_grad():
        x.requires_grad_(True)
        y = wrapper(x)
        c = size // 2
        (grad,) = torch.autograd.grad(y[..., c * spec.scale, c * spec.scale].sum(), x)
    g = grad.detach().abs().sum((0, 1)).float().cpu()
    limit = size // 2 - 1
    if exact:
        support = g > 0
    else:
        support = g > _EFFECTIVE_THRESHOLD * g.max()
    idx = support.nonzero()
    radius = int((idx - c).abs().max()) if len(idx) else 0
    if exact and radius >= limit:
        return None
    return min(radius, limit)


# --------------------------------------------------------------------------------------------------
# tiling arithmetic


@dataclass(frozen=True)
class TilePlan:
    """Where the tiles go. Sizes in input pixels; every tile is ``tile_h``×``tile_w`` (multiples of the
    model's size multiple) and is padded only where the image is smaller than a tile."""

    height: int
    width: int
    tile_h: int
    tile_w: int
    ys: tuple[int, ...]
    xs: tuple[int, ...]
    margin: int
    ramp: int
    scale: int = 1

    @property
    def out_size(self) -> tuple[int, int]:
        return self.height * self.scale, self.width * self.scale

    @property
    def count(self) -> int:
        return len(self.ys) * len(self.xs)


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def tile_starts(length: int, tile: int, overlap: int) -> tuple[int, ...]:
    """Starts of ``tile``-long windows covering ``length`` with at least ``overlap`` overlap, the last
    one ending exactly at ``length`` (tiles never stick out unless ``length`` < ``tile``)."""
    if length <= tile:
        return (0,)
    stride = tile - overlap
    return tuple(range(0, length - tile, stride)) + (length - tile,)


def split_overlap(overlap: int) -> tuple[int, int]:
    """(discarded margin, cross-fade ramp) of an overlap: outer thirds discarded, middle third faded."""
    margin = overlap // 3
    return margin, overlap - 2 * margin


def plan_tiles(height: int, width: int, *, tile: int | None, overlap: int, multiple: int = 1, scale: int = 1) -> TilePlan:
    """Tile layout for an image; ``tile=None`` is one tile covering the image padded to ``multiple``."""
    if tile is None:
        th, tw = _round_up(height, multiple), _round_up(width, multiple)
        return TilePlan(height, width, th, tw, (0,), (0,), 0, 0, scale)
    tile = tile // multiple * multiple
    th = tile if height > tile else _round_up(height, multiple)
    tw = tile if width > tile else _round_up(width, multiple)
    margin, ramp = split_overlap(overlap)
    return TilePlan(height, width, th, tw, tile_starts(height, th, overlap), tile_starts(width, tw, overlap),
                    margin, ramp, scale)


def _window(length: int, lead: bool, trail: bool, margin: int, ramp: int) -> torch.Tensor:
    """1-D blending weights of a tile: zero over ``margin``, raised-cosine over ``ramp`` on interior sides."""
    w = torch.ones(length)
    k = torch.arange(1, ramp + 1, dtype=torch.float32)
    rise = torch.sin(math.pi / 2 * k / (ramp + 1)) ** 2  # rise[i] + rise[-1 - i] == 1: aligned tiles sum to 1
    if not lead:
        w[:margin] = 0
        w[margin:margin + ramp] *= rise
    if not trail:
        if margin:
            w[length - margin:] = 0
        w[length - margin - ramp:length - margin] *= rise.flip(0)
    return w


def _pad_to(t: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Pad bottom/right to h×w: reflection where the image is larger than the pad, else replication."""
    for dim, size in ((-2, h), (-1, w)):
        pad = size - t.shape[dim]
        if pad > 0:
            spec = (0, 0, 0, pad) if dim == -2 else (0, pad, 0, 0)
            t = F.pad(t, spec, mode="reflect" if pad < t.shape[dim] else "replicate")
    return t


# --------------------------------------------------------------------------------------------------
# ensemble


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th (0..7) of the 8 flips/rotations of the last two dimensions."""
    if k >= 4:
        x = x.flip(-1)
    return torch.rot90(x, k % 4, (-2, -1))


def dihedral_inverse(x: torch.Tensor, k: int) -> torch.Tensor:
    x = torch.rot90(x, -(k % 4), (-2, -1))
    return x.flip(-1) if k >= 4 else x


def _with_ensemble(run: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    def ensemble(x: torch.Tensor) -> torch.Tensor:
        acc = run(x)
        for k in range(1, 8):
            acc = acc + dihedral_inverse(run(dihedral(x, k)), k)
        return acc / 8

    return ensemble


# --------------------------------------------------------------------------------------------------
# the one entry point


def resolve_overlap(model: nn.Module, spec: _Spec, tile: int, overlap: int | None) -> int:
    """The user's overlap (validated against ``tile``) or the automatic one: 3 × receptive radius,
    at most half the tile (with a warning: such tiles are too small for exact results)."""
    if overlap is not None:
        if 2 * overlap > tile:
            raise RestoreKitError(
                f"tile {tile} is smaller than twice the overlap {overlap}; use tile >= {2 * overlap} or overlap <= {tile // 2}"
            )
        return overlap
    radius = receptive_radius(model, task=spec.task)
    auto = 3 * radius
    if 2 * auto > tile:
        warnings.warn(
            f"tile {tile} is small for model {spec.info.name} (receptive-field radius {radius}): overlap "
            f"limited to {tile // 2}; tiles of at least {_round_up(2 * auto, spec.multiple)} give seam-free results",
            stacklevel=3,
        )
        auto = tile // 2
    return auto


def restore_tensor(model: nn.Module, x: torch.Tensor, options: InferenceOptions | None = None) -> torch.Tensor:
    """Restore N×C×H×W images in [0, 1] (RGB or gray); returns N×C×(H·s)×(W·s) float32 on ``x``'s device.

    Pads to the model's size multiple (or tiles, when ``options.tile`` is set or the model takes a fixed
    size), runs as ``options`` say, crops back and clamps to [0, 1] unless ``options.clamp`` is False.
    """
    options = options or InferenceOptions()
    spec = _spec(model, options.task)
    _check_image(x, spec.info)
    device = resolve_device(options.device)
    _check_options(options, device)
    n, _, h, w = x.shape
    tile = spec.fixed if spec.fixed is not None else options.tile
    if tile is not None and tile < spec.multiple:
        raise RestoreKitError(
            f"tile {tile} is smaller than model {spec.info.name}'s size multiple {spec.multiple}; use a tile >= {spec.multiple}"
        )
    overlap = 0
    if tile is not None:
        tile = tile // spec.multiple * spec.multiple
        if h > tile or w > tile or options.overlap is not None:
            overlap = resolve_overlap(model, spec, tile, options.overlap)
    plan = plan_tiles(h, w, tile=tile, overlap=overlap, multiple=spec.multiple, scale=spec.scale)

    run: Callable[[torch.Tensor], torch.Tensor] = prepare_model(model, options)
    if options.ensemble:
        run = _with_ensemble(run)
    x = x.float()
    with torch.inference_mode():
        out = _run_tiles(run, x, plan, device, options.tile_batch)
        if options.clamp:
            out.clamp_(0.0, 1.0)
    return out


def _run_tiles(
    run: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, plan: TilePlan, device: torch.device, tile_batch: int
) -> torch.Tensor:
    n = x.shape[0]
    s = plan.scale
    oh, ow = plan.out_size
    jobs = [(i, y0, x0) for i in range(n) for y0 in plan.ys for x0 in plan.xs]
    if plan.count == 1:
        outs = []
        for start in range(0, n, tile_batch):
            batch = _pad_to(x[start:start + tile_batch].to(device), plan.tile_h, plan.tile_w)
            outs.append(run(batch)[..., :oh, :ow].to(x.device))
        return torch.cat(outs) if len(outs) > 1 else outs[0]

    wy = {y0: _window(plan.tile_h * s, j == 0, j == len(plan.ys) - 1, plan.margin * s, plan.ramp * s)
          for j, y0 in enumerate(plan.ys)}
    wx = {x0: _window(plan.tile_w * s, j == 0, j == len(plan.xs) - 1, plan.margin * s, plan.ramp * s)
          for j, x0 in enumerate(plan.xs)}
    out: torch.Tensor | None = None
    weight = torch.zeros(oh, ow, device=x.device)
    for start in range(0, len(jobs), tile_batch):
        batch = jobs[start:start + tile_batch]
        tiles = torch.cat([
            _pad_to(x[i:i + 1, :, y0:y0 + plan.tile_h, x0:x0 + plan.tile_w].to(device), plan.tile_h, plan.tile_w)
            for i, y0, x0 in batch
        ])
        y = run(tiles).to(x.device)
        if out is None:
            out = torch.zeros(n, y.shape[1], oh, ow, device=x.device)
        for (i, y0, x0), yt in zip(batch, y):
            ys, xs = y0 * s, x0 * s
            hh, ww = min(yt.shape[-2], oh - ys), min(yt.shape[-1], ow - xs)
            win = (wy[y0][:hh, None] * wx[x0][None, :ww]).to(x.device)
            out[i, :, ys:ys + hh, xs:xs + ww] += yt[:, :hh, :ww] * win
            if i == 0:
                weight[ys:ys + hh, xs:xs + ww] += win
    assert out is not None
    return out.div_(weight)

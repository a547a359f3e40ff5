"""Inference speed: megapixels/s, achieved GFLOP/s against this machine's measured peak, memory.

FLOPs are counted (``torch.utils.flop_counter``) on one real pass through the inference path, not
estimated; the peak is the best of large matrix products and convolutions timed in the same run and
precision (:func:`peak_kernels`), so "fraction of peak" compares like with like on the machine at
hand. Peak memory is the process's resident-set high-water mark (``VmHWM``, reset through ``/proc/self/clear_refs``) on CPU, and
``torch.cuda.max_memory_allocated`` on CUDA, both relative to before the model ran.

On CPU, ``precision="bf16"`` is autocast with channels_last activations and the convolution weights
cast to bf16 once. On a 2-core AVX-512-BF16 EPYC (no AMX), DnCNN-S 512×512: ~4× fp32 NCHW eager,
~1.8× bf16 autocast in NCHW, level with a fully bf16 model (which would also round the input and the
residual to bf16), ``torch.utils.mkldnn`` and ``torch.compile``; ``torch.jit.freeze`` was slower.
benchmarks/inference_speed.py measures them side by side.
"""

from __future__ import annotations

import ctypes
import gc
import json
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from ..errors import RestoreKitError
from .env import environment
from ..io.files import atomic_write_text
from ..inference import (
    InferenceOptions,
    check_options,
    resolve_device,
    restore_tensor,
    uses_channels_last,
)
from ..models import count_parameters, create_model, list_models, model_info

DEFAULT_MODELS = ("dncnn-s-folded", "durn-p", "mprnet-derain")
_MATMUL_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def peak_kernels(precision: str, device: str | torch.device = "cpu", n: int = 2048) -> dict[str, tuple[Callable[[], Any], int]]:
    """Dense kernels in ``precision`` to measure the machine's peak with: name → (call, FLOPs per call).

    An n×n×n ``torch.matmul`` and, on CPU, a 3×3 convolution of 256 channels (channels_last) on an image
    of n²/16 pixels: matmul goes to MKL, which on AMD processors runs fp32 at a fraction of the oneDNN
    kernels that convolutions use (59 vs 239 GFLOP/s on the 2-core EPYC this was written on), so matmul
    alone would understate the machine.
    """
    dev = torch.device(device)
    dtype = _MATMUL_DTYPES[precision]
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(dev, dtype)
    b = torch.randn(n, n, generator=gen).to(dev, dtype)
    kernels: dict[str, tuple[Callable[[], Any], int]] = {"matmul": (lambda: torch.matmul(a, b), 2 * n**3)}
    if dev.type == "cpu":
        side, c = max(8, n // 4), 256
        image = torch.randn(1, c, side, side, generator=gen).to(dtype).contiguous(memory_format=torch.channels_last)
        weight = torch.randn(c, c, 3, 3, generator=gen).to(dtype).contiguous(memory_format=torch.channels_last)
        kernels["conv3x3"] = (lambda: F.conv2d(image, weight, padding=1), 2 * c * c * 9 * side * side)
    return kernels


def matmul_peak(precision: str, device: str | torch.device = "cpu", *, n: int = 2048, repeats: int = 5) -> float:
    """Best GFLOP/s over ``repeats`` rounds of :func:`peak_kernels` (the faster kernel counts)."""
    dev = torch.device(device)
    kernels = peak_kernels(precision, dev, n)
    for fn, _ in kernels.values():
        fn()
    best = 0.0
    for _ in range(repeats):
        for fn, flops in kernels.values():
            _sync(dev)
            t0 = time.perf_counter()
            fn()
            _sync(dev)
            best = max(best, flops / (time.perf_counter() - t0) / 1e9)
    return best


def count_flops(model: torch.nn.Module, x: torch.Tensor, options: InferenceOptions) -> int:
    """FLOPs (2 per multiply-add) of matmuls and convolutions in one ``restore_tensor`` call."""
    with FlopCounterMode(display=False) as counter:
        restore_tensor(model, x, options)
    return int(counter.get_total_flops())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def proc_status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _release_free_heap() -> None:
    # glibc keeps freed blocks mapped; without trimming, a run that reuses them shows no peak at all.
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def reset_peak_rss() -> bool:
    _release_free_heap()
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # resets VmHWM to the current RSS (Linux ≥ 4.0)
        return True
    except OSError:
        return False


class _PeakMemory:
    """Peak memory of a block in MB above its start: RSS high-water mark on CPU, allocator peak on CUDA."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.mb: float | None = None

    def __enter__(self) -> _PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            self._ok = reset_peak_rss()
            self._base = proc_status_kb("VmRSS") or 0
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.mb = (torch.cuda.max_memory_allocated(self.device) - self._base) / 2**20
        elif self._ok:
            peak = proc_status_kb("VmHWM")
            self.mb = None if peak is None else max(0, peak - self._base) / 1024


def time_restore(model: torch.nn.Module, x: torch.Tensor, options: InferenceOptions, *, repeats: int = 3,
                 warmup: int = 1) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of each of ``repeats`` :func:`restore_tensor` calls after ``warmup`` untimed
    ones, the device synchronised around each (the one timing loop of ``restorekit bench`` and the
    experiment scripts)."""
    dev = resolve_device(options.device)
    for _ in range(warmup):
        restore_tensor(model, x, options)
    wall, cpu = [], []
    for _ in range(repeats):
        _sync(dev)
        t0, c0 = time.perf_counter(), time.process_time()
        restore_tensor(model, x, options)
        _sync(dev)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return wall, cpu


def run_bench(
    models: Sequence[str] | None = None,
    *,
    size: tuple[int, int] = (512, 512),
    precisions: Iterable[str] = ("fp32", "bf16"),
    channels_last_options: Iterable[bool] = (False, True),
    device: str = "cpu",
    repeats: int = 3,
    warmup: int = 1,
    peak_size: int = 2048,
    tile: int | None = None,
) -> list[dict[str, Any]]:
    """Time every model × precision × layout on a random ``size`` image through :func:`restore_tensor`.

    Combinations that run identically (bf16 on CPU always uses channels_last) are measured once. Each row:
    model, device, precision, channels_last, size, ms (best), ms_median, mpix_per_s, gflop (per image),
    gflops (achieved), peak_gflops (matmul, same precision), fraction_of_peak, peak_mem_mb, params.
    """
    names = list(models) if models else list(DEFAULT_MODELS)
    known = set(list_models())
    unknown = [n for n in names if n not in known]
    if unknown:
        raise RestoreKitError(f"unknown model(s) {', '.join(unknown)}; `restorekit models` lists them")
    precisions = list(precisions)
    if repeats < 1 or warmup < 0:
        raise RestoreKitError("repeats must be >= 1 and warmup >= 0")
    dev = resolve_device(device)
    for p in precisions:  # every combination is checked before any time is spent
        check_options(InferenceOptions(precision=p), dev)
    peaks = {p: matmul_peak(p, dev, n=peak_size) for p in precisions}
    h, w = size
    rows: list[dict[str, Any]] = []
    for name in names:
        info = model_info(name)
        torch.manual_seed(0)
        model = create_model(name)
        x = torch.rand(1, info.channels, h, w, generator=torch.Generator().manual_seed(0)).to(dev)
        task = info.tasks[0] if len(info.tasks) > 1 else None
        flops = count_flops(model, x, InferenceOptions(device=str(dev), task=task, tile=tile))
        seen: set[tuple[str, bool]] = set()
        for precision in precisions:
            for cl in channels_last_options:
                options = InferenceOptions(precision=precision, channels_last=cl, device=str(dev), task=task, tile=tile)
                layout = uses_channels_last(options, dev)
                if (precision, layout) in seen:
                    continue
                seen.add((precision, layout))
                with _PeakMemory(dev) as mem:
                    times, _ = time_restore(model, x, options, repeats=repeats, warmup=warmup)
                best = min(times)
                gflops = flops / best / 1e9
                rows.append({
                    "model": name, "device": str(dev), "precision": precision, "channels_last": layout,
                    "size": [h, w], "ms": best * 1e3, "ms_median": statistics.median(times) * 1e3,
                    "mpix_per_s": h * w / best / 1e6, "gflop": flops / 1e9, "gflops": gflops,
                    "peak_gflops": peaks[precision], "fraction_of_peak": gflops / peaks[precision],
                    "peak_mem_mb": mem.mb, "params": count_parameters(model), "threads": torch.get_num_threads(),
                })
    # Measured again at the end: on a shared machine either moment may be the quieter one.
    for p in precisions:
        peaks[p] = max(peaks[p], matmul_peak(p, dev, n=peak_size))
    for r in rows:
        r["peak_gflops"] = peaks[r["precision"]]
        r["fraction_of_peak"] = r["gflops"] / r["peak_gflops"]
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A fixed-width text table of :func:`run_bench` rows."""
    head = ("model", "device", "prec", "layout", "size", "ms", "MP/s", "GFLOP", "GFLOP/s", "peak", "%peak", "mem MB")
    lines = []
    for r in rows:
        mem = "n/a" if r.get("peak_mem_mb") is None else f"{r['peak_mem_mb']:.0f}"
        lines.append((
            r["model"], r["device"], r["precision"], "NHWC" if r["channels_last"] else "NCHW",
            f"{r['size'][0]}x{r['size'][1]}", f"{r['ms']:.1f}", f"{r['mpix_per_s']:.3f}", f"{r['gflop']:.1f}",
            f"{r['gflops']:.1f}", f"{r['peak_gflops']:.0f}", f"{100 * r['fraction_of_peak']:.0f}%", mem,
        ))
    widths = [max(len(str(c)) for c in col) for col in zip(head, *lines)]
    fmt = lambda cells: "  ".join(str(c).rjust(wd) if i >= 4 else str(c).ljust(wd)
                                  for i, (c, wd) in enumerate(zip(cells, widths)))
    return "\n".join([fmt(head), fmt(["-" * wd for wd in widths])] + [fmt(line) for line in lines])


def write_json(rows: Sequence[dict[str, Any]], path: str | Path, *, overwrite: bool = True) -> Path:
    """Rows plus the machine (:func:`~restorekit.eval.env.environment`), as JSON, written atomically."""
    text = json.dumps({"machine": environment(), "rows": list(rows)}, indent=2) + "\n"
    return atomic_write_text(path, text, overwrite=overwrite)

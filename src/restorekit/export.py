"""Export a model to ONNX or TorchScript, taking and giving [0, 1] RGB N×C×H×W, and verify the file.

The exported graph is :class:`~restorekit.inference.RestoreModule` around an eval copy of the model
(BatchNorm folded): input range, colour order, task and the final output of multi-output models are
inside it; padding, tiling and clamping are not (callers do those, as :func:`restore_tensor` does).

Height and width are dynamic where the model allows: any size for ``size_multiple`` 1, multiples of
``size_multiple`` otherwise (e.g. 4 for DuRN-U/US/S-P, 8 for MPRNet; pad first). IPT takes exactly
``patch_size``² (48×48) inputs, so its export is fixed-size; its fold needs ONNX opset ≥ 18 (Col2Im),
which is used for it whatever ``opset`` says.
"""

from __future__ import annotations

import copy
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .errors import RestoreKitError
from .io.files import atomic_write
from .inference import (
    RestoreModule,
    has_foldable_batchnorm,
    model_spec,
    pad_to_size,
    round_up,
)
from .models.fold import fold_batchnorm

FORMATS = ("onnx", "torchscript")
_COL2IM_OPSET = 18


def export_model(
    model: nn.Module,
    path: str | Path,
    *,
    format: str = "onnx",
    example: torch.Tensor | None = None,
    dynamic: bool = True,
    opset: int = 17,
    task: str | None = None,
    verify: bool = True,
    overwrite: bool = True,
) -> dict[str, Any]:
    """Write ``model`` to ``path`` (atomically) and compare the file's output with PyTorch's.

    ``example`` is a [0, 1] RGB (or gray) N×C×H×W image used to trace and to verify (synthetic if None;
    padded to the size multiple, or cropped to IPT's patch). With ``dynamic`` the file is also checked
    on a second size and batch. Returns ``{"path", "format", "max_abs_diff", "checked_sizes", "dynamic",
    "size_multiple", "opset"}`` (``max_abs_diff`` is None when ``verify`` is False). An existing file is
    replaced only with ``overwrite``.
    """
    if format not in FORMATS:
        raise RestoreKitError(f"unknown export format {format!r}; valid: {', '.join(FORMATS)}")
    if not overwrite and Path(path).exists():
        raise RestoreKitError(f"{path}: already exists", hint="overwrite=True replaces it", cli_hint="pass --overwrite to replace it")
    spec = model_spec(model, task)
    channels = spec.info.channels or 3
    if format == "onnx":
        _require_onnx(verify)
    wrapper = RestoreModule(_eval_copy(model), spec.info, task=spec.task).eval()
    x = _example(example, channels, spec.multiple, spec.fixed)
    dynamic = dynamic and spec.fixed is None
    if spec.fixed is not None:
        opset = max(opset, _COL2IM_OPSET)

    with warnings.catch_warnings():
        # The tracers warn about deprecation and about shape checks they freeze; both are expected here.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Constant folding")
        if format == "onnx":
            out = atomic_write(path, lambda tmp: _write_onnx(wrapper, x, tmp, dynamic, opset), overwrite=overwrite)
        else:
            out = atomic_write(path, lambda tmp: _write_torchscript(wrapper, x, tmp), overwrite=overwrite)

    result: dict[str, Any] = {
        "path": str(out), "format": format, "dynamic": dynamic, "size_multiple": spec.multiple,
        "opset": opset if format == "onnx" else None, "max_abs_diff": None, "checked_sizes": [],
    }
    if verify:
        inputs = [x]
        if dynamic:
            # A second, small size and batch: the file must not have frozen the example's shape.
            size = (round_up(37, spec.multiple), round_up(53, spec.multiple))
            if size == tuple(x.shape[-2:]):
                size = (size[0] + spec.multiple, size[1])
            inputs.append(_example(None, channels, spec.multiple, None, size=size, batch=2))
        run = _onnx_runner(out) if format == "onnx" else _torchscript_runner(out)
        diffs = []
        for inp in inputs:
            with torch.inference_mode():
                ref = wrapper(inp).numpy()
            diffs.append(float(np.abs(run(inp) - ref).max()))
            result["checked_sizes"].append(list(inp.shape))
        result["max_abs_diff"] = max(diffs)
    return result


def _require_onnx(verify: bool) -> None:
    missing = [m for m in (["onnx", "onnxruntime"] if verify else ["onnx"]) if not _importable(m)]
    if missing:
        hint = "" if not verify else " (or pass verify=False to skip checking the file with onnxruntime)"
        raise RestoreKitError(f"ONNX export needs {', '.join(missing)}: pip install 'restorekit[export]'{hint}")


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _eval_copy(model: nn.Module) -> nn.Module:
    inner = fold_batchnorm(model) if has_foldable_batchnorm(model) else copy.deepcopy(model)
    return inner.eval().requires_grad_(False).to(device="cpu", dtype=torch.float32)


def _example(
    example: torch.Tensor | None, channels: int, multiple: int, fixed: int | None,
    size: tuple[int, int] | None = None, batch: int = 1,
) -> torch.Tensor:
    if example is None:
        h, w = size or ((fixed, fixed) if fixed else (round_up(61, multiple), round_up(67, multiple)))
        yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
        base = 0.5 + 0.3 * torch.sin(6 * math.pi * xx * yy) + 0.1 * torch.cos(5 * math.pi * xx)
        noise = torch.randn(batch, channels, h, w, generator=torch.Generator().manual_seed(0))
        return (base + 0.05 * noise).clamp(0, 1)
    if not isinstance(example, torch.Tensor) or example.ndim != 4 or example.shape[1] != channels:
        shape = tuple(example.shape) if isinstance(example, torch.Tensor) else type(example).__name__
        raise RestoreKitError(f"example must be an N×{channels}×H×W tensor in [0, 1], got {shape}")
    x = example.detach().to(device="cpu", dtype=torch.float32)
    if fixed is not None:
        if x.shape[-2] < fixed or x.shape[-1] < fixed:
            x = pad_to_size(x, max(fixed, x.shape[-2]), max(fixed, x.shape[-1]))
        return x[..., :fixed, :fixed].contiguous()
    return pad_to_size(x, round_up(x.shape[-2], multiple), round_up(x.shape[-1], multiple))


def _write_onnx(wrapper: nn.Module, x: torch.Tensor, path: Path, dynamic: bool, opset: int) -> None:
    axes = {"input": {0: "batch", 2: "height", 3: "width"}, "output": {0: "batch", 2: "out_height", 3: "out_width"}}
    try:
        # The TorchScript-based exporter: it needs no onnxscript and keeps height/width symbolic.
        torch.onnx.export(
            wrapper, (x,), str(path), dynamo=False, opset_version=opset, input_names=["input"],
            output_names=["output"], dynamic_axes=axes if dynamic else {"input": {0: "batch"}, "output": {0: "batch"}},
            do_constant_folding=True,
        )
    except torch.onnx.errors.UnsupportedOperatorError as e:
        raise RestoreKitError(f"ONNX export failed at opset {opset}: {e}") from e


def _write_torchscript(wrapper: nn.Module, x: torch.Tensor, path: Path) -> None:
    with torch.no_grad():
        traced = torch.jit.trace(wrapper, x, check_trace=False)  # verified against PyTorch afterwards
    traced.save(str(path))


def _onnx_runner(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, torch.get_num_threads())
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"input": x.numpy()})[0]


def _torchscript_runner(path: Path) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        loaded = torch.jit.load(str(path), map_location="cpu")

    def run(x: torch.Tensor) -> np.ndarray:
        # Without the profiling executor's re-optimisation runs: one plain run is what is checked.
        with torch.inference_mode(), torch.jit.optimized_execution(False):
            return loaded(x).numpy()

    return run

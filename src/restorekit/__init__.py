"""restorekit: deep-learning image restoration — the published models, training, evaluation, inference.

    import restorekit as rk
    model = rk.create_model("dncnn-b")                 # architecture only
    model = rk.load("runs/dncnn-b/best.safetensors")   # weights: ours, official (.mat/.pth), or "default-gray"
    model = rk.create_model("dncnn-unshuffle-gray-wide", pretrained=True)  # built-in weights
    clean = rk.restore(noisy)                          # built-in default denoiser, any size
    rk.psnr(clean, target, protocol="dncnn")
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["create_model", "list_models", "model_info", "load", "restore", "psnr", "ssim", "RestoreKitError", "__version__"]

# Exported lazily: `import restorekit` stays cheap, and the CLI imports only what a command needs.
_EXPORTS = {
    "create_model": ("restorekit.api", "create_model"),
    "list_models": ("restorekit.models", "list_models"),
    "model_info": ("restorekit.models", "model_info"),
    "load": ("restorekit.api", "load"),
    "restore": ("restorekit.api", "restore"),
    "psnr": ("restorekit.metrics", "psnr"),
    "ssim": ("restorekit.metrics", "ssim"),
    "RestoreKitError": ("restorekit.errors", "RestoreKitError"),
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        module, attr = _EXPORTS[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'restorekit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_EXPORTS))

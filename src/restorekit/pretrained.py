"""Where weights come from: restorekit checkpoints, official files converted in memory, built-in defaults."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from .errors import RestoreKitError
from .registry import Registry

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

# Built-in default models shipped inside the package: name -> file in WEIGHTS_DIR.
BUILTIN: Registry[str] = Registry("built-in weights", {
    "default-gray": "default-gray.safetensors",
    "default-color": "default-color.safetensors",
})


def builtin_path(name: str) -> Path:
    path = WEIGHTS_DIR / BUILTIN.get(name)
    if not path.is_file():
        raise RestoreKitError(f"built-in weights {name!r} are not installed ({path} missing)")
    return path


def available_builtins() -> list[str]:
    return [n for n, f in BUILTIN.items() if (WEIGHTS_DIR / f).is_file()]


def default_for_channels(channels: int) -> str:
    return "default-gray" if channels == 1 else "default-color"


def weights_file(weights: str | Path) -> Path:
    """The file ``weights`` names: a built-in name's shipped file, a path, or an official release's
    downloaded conversion (a release not downloaded yet raises, saying how to get it)."""
    if str(weights) in BUILTIN:
        return builtin_path(str(weights))
    path = Path(weights)
    if path.is_file():
        return path
    from .download import cached_weights

    cached = cached_weights(str(weights))
    if cached is None:
        raise RestoreKitError(f"{path}: no such weights file (nor a built-in name)")
    return cached


def load_weights(weights: str | Path, model: str | None = None) -> nn.Module:
    """A model with weights from a restorekit checkpoint, an official checkpoint (converted in memory)
    or a built-in name. ``model`` names the architecture where the file does not say it."""
    from .checkpoints import load, load_state_dict_strict
    from .convert import convert_file
    from .models import create_model

    path = weights_file(weights)
    if path.suffix == ".safetensors":
        net = load(path)
        if model is not None and net.info.name != model:
            raise RestoreKitError(f"{path} holds {net.info.name}, not {model}")
        return net
    conv = convert_file(path)
    arch = conv.arch if model is None else model
    net = create_model(arch, **conv.args)
    load_state_dict_strict(net, conv.state_dict, source=str(path))
    net.checkpoint_meta = {"arch": arch, "args": conv.args, "source": {"file": path.name, "format": conv.source_format}}
    return net.eval()


def resolve_model(model: str | nn.Module | None = None, weights: str | Path | None = None, *,
                  channels: int | None = None) -> nn.Module:
    """The model to run: an nn.Module as given; weights (with an optional architecture name); a
    registered name with built-in weights; or the built-in default for the image's channel count."""
    from .checkpoints import load

    if isinstance(model, nn.Module):
        return model.eval()
    if weights is not None:
        return load_weights(weights, model)
    if model is None:
        name = default_for_channels(channels or 3)
        return load(builtin_path(name))
    if model in BUILTIN:
        return load(builtin_path(model))
    return pretrained_model(model)


def builtin_for(arch: str) -> str | None:
    """The built-in weights whose architecture is ``arch`` (read from the shipped files), or None."""
    from .checkpoints import checkpoint_metadata

    return next((b for b in available_builtins() if checkpoint_metadata(builtin_path(b))["arch"] == arch), None)


def pretrained_model(name: str) -> nn.Module:
    """Registered architecture ``name`` with its built-in weights; where there are none, an error that
    says where the official weights come from."""
    from .checkpoints import load
    from .models import model_info

    arch = model_info(name).name  # unknown names fail here with suggestions
    builtin = builtin_for(arch)
    if builtin is not None:
        return load(builtin_path(builtin))
    from .weights_catalog import where_from

    lib, cli = where_from(arch), where_from(arch, cli=True)
    raise RestoreKitError(f"model {name!r} has no built-in weights",
                          hint="give weights= (a restorekit or official checkpoint)" + (f"; {lib}" if lib else ""),
                          cli_hint="pass --weights FILE (a restorekit or official checkpoint)" + (f"; {cli}" if cli else ""))

"""Training recipes: one YAML per paper setting, shipped with the package.

A recipe may start with ``base: other-recipe`` (or a path to a YAML file) and state only what
differs; mappings are merged key by key, everything else (lists included) replaces the base's value.

A recipe's ``cpu:`` section is its CPU-sized variant, ``NAME-cpu``: the same model, data and loss with
a run that a 2-core CPU finishes in about an hour (fewer steps at a smaller batch, ``precision: auto``
+ channels_last, a step schedule), merged over the recipe as a ``base`` would be. The times were
measured in bf16 on a CPU with AMX; an AVX2 CPU trains in fp32 instead, about 2x slower a step
(resunet-gray: 1.33 against 0.59 s), where emulated bf16 would be ~18x slower. A recipe inherits its
base's ``cpu:`` section with everything else.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from ..errors import RestoreKitError
from ..registry import did_you_mean

RECIPE_DIR = Path(__file__).resolve().parent
CPU_SUFFIX = "-cpu"


def list_recipes() -> list[str]:
    """Names of the shipped recipes and of their CPU-sized variants (``NAME-cpu``), sorted."""
    names = [p.stem for p in RECIPE_DIR.glob("*.yaml")]
    return sorted(names + [n + CPU_SUFFIX for n in names if "cpu" in _resolved(RECIPE_DIR / f"{n}.yaml")])


def _split_variant(name: str) -> tuple[str, bool]:
    """(recipe, is the CPU variant): ``dncnn-s-25-cpu`` → (``dncnn-s-25``, True) unless a file of that name exists."""
    if name.endswith(CPU_SUFFIX) and not (RECIPE_DIR / f"{name}.yaml").is_file():
        return name[: -len(CPU_SUFFIX)], True
    return name, False


def find_recipe(name: str) -> Path:
    """Path of the recipe ``name`` (a shipped recipe's name, or a YAML file's path); a CPU variant's
    name gives its recipe's file."""
    path = RECIPE_DIR / f"{_split_variant(name)[0]}.yaml"
    if path.is_file():
        return path
    as_file = Path(name)
    if as_file.suffix in (".yaml", ".yml") and as_file.is_file():
        return as_file
    hint = did_you_mean(name, list_recipes()) or f" (known: {', '.join(list_recipes())})"
    raise RestoreKitError(f"unknown recipe {name!r}{hint}")


def _merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def resolve_bases(data: dict[str, Any], base_dir: Path | None = None, _seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """``data`` merged over its ``base:`` chain (the key itself removed). A base may be a CPU variant
    (``base: dncnn-s-25-cpu``)."""
    data = dict(data)
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise RestoreKitError(f"base: expected a recipe name or a YAML path, got {base!r}")
    candidate = (base_dir / base) if base_dir is not None else Path(base)
    is_file = candidate.suffix in (".yaml", ".yml") and candidate.is_file()
    path = candidate if is_file else find_recipe(base)
    if str(path) in _seen:
        raise RestoreKitError(f"recipe bases form a cycle: {' -> '.join(_seen + (str(path),))}")
    parent = _read(path)
    parent = resolve_bases(parent, path.parent, _seen + (str(path),))
    if not is_file and _split_variant(base)[1]:
        parent = _cpu_variant(parent, path.stem)
    return _merge(parent, data)


def _read(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise RestoreKitError(f"{path}: a recipe is a mapping of sections, got {type(data).__name__}")
    return data


def _resolved(path: Path) -> dict[str, Any]:
    return resolve_bases(_read(path), path.parent)


def _cpu_variant(data: dict[str, Any], recipe: str) -> dict[str, Any]:
    """The recipe's data with its ``cpu:`` section merged over it (and removed)."""
    data = dict(data)
    cpu = data.pop("cpu", None)
    if not isinstance(cpu, dict):
        raise RestoreKitError(f"recipe {recipe!r} has no CPU-sized variant (no cpu: section)")
    out = _merge(data, cpu)
    out["name"] = recipe + CPU_SUFFIX
    if "description" not in cpu:
        out["description"] = f"{data.get('description', recipe)} (CPU-sized)"
    return out


def load_recipe(name: str) -> dict[str, Any]:
    """Plain data of recipe ``name`` (or of its CPU variant, ``NAME-cpu``) with its bases resolved
    (not yet validated)."""
    path = find_recipe(name)
    data = _resolved(path)
    if path.parent == RECIPE_DIR and _split_variant(name)[1]:
        data = _cpu_variant(data, path.stem)
    data.pop("cpu", None)
    data.setdefault("name", path.stem)
    return data


__all__ = ["CPU_SUFFIX", "RECIPE_DIR", "find_recipe", "list_recipes", "load_recipe", "resolve_bases"]


def describe_recipes() -> str:
    """One line per shipped recipe: name, model and description."""
    lines = []
    for name in list_recipes():
        data = load_recipe(name)
        model = (data.get("model") or {}).get("name", "?")
        lines.append(f"{name:<28} {model:<16} {data.get('description', '')}")
    return "\n".join(lines)

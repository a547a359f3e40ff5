"""Training recipes: one YAML per paper setting, shipped with the package.

A recipe may start with ``base: other-recipe`` (or a path to a YAML file) and state only what
differs; mappings are merged key by key, everything else (lists included) replaces the base's value.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from ..errors import RestoreKitError
from ..registry import did_you_mean

RECIPE_DIR = Path(__file__).resolve().parent


def list_recipes() -> list[str]:
    """Names of the shipped recipes, sorted."""
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))


def find_recipe(name: str) -> Path:
    """Path of the recipe ``name`` (a shipped recipe's name, or a YAML file's path)."""
    path = RECIPE_DIR / f"{name}.yaml"
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
    """``data`` merged over its ``base:`` chain (the key itself removed)."""
    data = dict(data)
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise RestoreKitError(f"base: expected a recipe name or a YAML path, got {base!r}")
    candidate = (base_dir / base) if base_dir is not None else Path(base)
    path = candidate if candidate.suffix in (".yaml", ".yml") and candidate.is_file() else find_recipe(base)
    if str(path) in _seen:
        raise RestoreKitError(f"recipe bases form a cycle: {' -> '.join(_seen + (str(path),))}")
    parent = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    parent = resolve_bases(parent, path.parent, _seen + (str(path),))
    return _merge(parent, data)


def load_recipe(name: str) -> dict[str, Any]:
    """Plain data of recipe ``name`` with its bases resolved (not yet validated)."""
    path = find_recipe(name)
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    data = resolve_bases(data, path.parent)
    data.setdefault("name", path.stem)
    return data


__all__ = ["RECIPE_DIR", "find_recipe", "list_recipes", "load_recipe", "resolve_bases"]


def describe_recipes() -> str:
    """One line per shipped recipe: name, model and description."""
    lines = []
    for name in list_recipes():
        data = load_recipe(name)
        model = (data.get("model") or {}).get("name", "?")
        lines.append(f"{name:<28} {model:<16} {data.get('description', '')}")
    return "\n".join(lines)

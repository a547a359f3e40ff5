"""The built-in defaults say how they were made and carry no path of the machine that trained them."""

from __future__ import annotations

import json

import pytest

from restorekit.checkpoints import checkpoint_metadata, load
from restorekit.pretrained import available_builtins, builtin_path


def _strings(value):
    if isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


@pytest.mark.parametrize("name", ["default-gray", "default-color"])
def test_builtin_metadata_is_portable_and_complete(name: str) -> None:
    assert name in available_builtins()
    meta = checkpoint_metadata(builtin_path(name))
    absolute = [s for s in _strings(meta) if s.startswith("/") or ":\\" in s]
    assert not absolute, f"machine paths in {name}'s metadata: {absolute[:3]}"
    assert "run_dir" not in json.dumps(meta)
    for key in ("step", "patches_seen", "patch_size", "training_hours", "cpu_core_hours", "hardware", "config"):
        assert meta.get(key) not in (None, "", {}), key
    last_stage = meta["step"] * meta["config"]["train"]["batch_size"] * meta.get("world_size", 1)
    stages = meta.get("stages", [{"steps": meta["step"], "patches": last_stage, "hours": meta["training_hours"]}])
    assert stages[-1]["patches"] == last_stage, "the last stage is the run that wrote the weights"
    assert meta["patches_seen"] == sum(st["patches"] for st in stages), "every stage the run continued from counts"
    assert meta["training_hours"] == pytest.approx(sum(st["hours"] for st in stages), abs=2e-3)
    assert all(root.startswith("shared/data/") for root in meta["config"]["data"]["train"]["root"])
    model = load(builtin_path(name))
    assert model.info.name == meta["arch"]

"""Make a training run's EMA weights a built-in default: restorekit's checkpoint format, metadata with
what a reader needs to judge the weights (steps, patches seen, training hours, hardware, the config)
and no path of the machine that trained them (data roots become paths under ``shared/``, the run
folder is dropped).

    PYTHONPATH=src python scripts/ship_default.py runs/gray-7/last.safetensors default-gray

Also used to rewrite the metadata of weights already shipped (same tensors, same file name).
``--arch NAME`` ships the weights as another registered variant with the same tensors (a run trained as
``dncnn-unshuffle-color`` with ``channels: 1`` is shipped as ``dncnn-unshuffle-gray-wide``); the weights
must load strictly into it.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from restorekit.checkpoints import load_state_dict_strict, read_checkpoint, save_checkpoint, training_stages
from restorekit.errors import RestoreKitError
from restorekit.models import create_model
from restorekit.pretrained import BUILTIN, WEIGHTS_DIR


def portable(value: Any) -> Any:
    """``value`` with every absolute path made machine-independent: from ``shared/`` on when it lies in
    the shared data folder, otherwise only its file or folder name."""
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items() if k != "run_dir"}
    if isinstance(value, list):
        return [portable(v) for v in value]
    if isinstance(value, str) and value.startswith("/"):
        match = re.search(r"/(shared/.*)$", value)
        return match.group(1) if match else Path(value).name
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="the run's EMA weights (last.safetensors)")
    parser.add_argument("name", choices=sorted(BUILTIN), help="the built-in default to replace")
    parser.add_argument("--arch", help="ship as this registered variant (same tensors) instead of the run's")
    parser.add_argument("--half", action="store_true",
                        help="store the tensors as float16 (half the package size; they load into float32)")
    args = parser.parse_args()

    state, meta = read_checkpoint(args.checkpoint)
    if args.arch and args.arch != meta["arch"]:
        load_state_dict_strict(create_model(args.arch), state, source=str(args.checkpoint))
        meta = {**meta, "arch": args.arch, "args": {}, "trained_as": {"arch": meta["arch"], "args": meta["args"]}}
    try:
        stages = training_stages(meta)
    except RestoreKitError as exc:
        raise SystemExit(str(exc)) from None
    cores = int(meta.get("hardware", {}).get("cpu_count", 1))
    extra = {k: v for k, v in meta.items() if k not in ("format_version", "arch", "args", "aliases")}
    wall = sum(st["hours"] for st in stages) * 3600
    extra.update(
        total_steps=sum(st["steps"] for st in stages),
        patches_seen=sum(st["patches"] for st in stages),
        patch_size=(meta.get("config") or {}).get("data", {}).get("train", {}).get("patch", {}).get("size"),
        training_hours=round(wall / 3600, 3),
        cpu_core_hours=round(wall * cores / 3600, 3),
        stages=stages,
    )
    if args.half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        extra["stored_dtype"] = "float16"
    extra = portable(extra)
    out = save_checkpoint(WEIGHTS_DIR / BUILTIN[args.name], state, arch=meta["arch"], args=meta["args"], metadata=extra)
    print(f"{out.name}: {meta['arch']}, {extra['total_steps']:,} steps in {len(stages)} stage(s), "
          f"{extra['patches_seen']:,} patches, {extra['training_hours']} h on {cores} cores")


if __name__ == "__main__":
    main()

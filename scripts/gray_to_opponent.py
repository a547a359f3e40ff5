"""Turn gray ``resunet-gray`` weights into ``resunet-color-opp`` weights (``OpponentColor.from_gray``:
the same U-Net, run on each opponent-colour plane, its guide weights zero). The metadata is the gray
run's, so that ``scripts/ship_default.py`` and a training run started from the file count its training,
with the architecture renamed and the conversion recorded.

    PYTHONPATH=src python scripts/gray_to_opponent.py runs/gray-7/last.safetensors OUT.safetensors
"""

from __future__ import annotations

import argparse
from pathlib import Path

from restorekit.checkpoints import load_state_dict_strict, read_checkpoint, save_checkpoint
from restorekit.models import create_model
from restorekit.models.resunet import OpponentColor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("gray", type=Path, help="a resunet-gray checkpoint")
    parser.add_argument("out", type=Path, help="the resunet-color-opp checkpoint to write")
    args = parser.parse_args()
    state, meta = read_checkpoint(args.gray)
    if meta.get("arch") != "resunet-gray":
        raise SystemExit(f"{args.gray}: a {meta.get('arch')} checkpoint; this takes resunet-gray weights")
    gray = create_model("resunet-gray")
    load_state_dict_strict(gray, state, source=str(args.gray))
    extra = {k: v for k, v in meta.items() if k not in ("format_version", "arch", "args", "aliases")}
    extra["converted_from"] = {"arch": "resunet-gray", "how": "OpponentColor.from_gray"}
    out = save_checkpoint(args.out, OpponentColor.from_gray(gray).state_dict(), arch="resunet-color-opp", args={},
                          metadata=extra)
    print(f"{out}: resunet-color-opp from {args.gray}")


if __name__ == "__main__":
    main()

"""Learning curve of a built-in default's training run: validation PSNR against training hours on
this machine (and patches seen), with the target model (DnCNN-B / CDnCNN-B, official weights) and
the previously shipped default measured on the same validation images as lines.

The validation set is the run's own (its config's data.val: BSD68 centre crops at σ 25 for the gray
default), degraded exactly as the trainer degrades it, so the run's curve and the lines compare alike.

    OMP_NUM_THREADS=2 PYTHONPATH=src python scripts/experiments/default_curves.py \
        --run training-state/default-gray --target ../shared/weights/dncnn-matconvnet/GD_Gray_Blind.mat \
        --previous src/restorekit/weights/default-gray.safetensors --out reports/experiments/default_gray
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import common as C


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="the training run folder")
    parser.add_argument("--target", type=Path, required=True, help="official weights of the model to reach")
    parser.add_argument("--previous", type=Path, help="the weights shipped before, for comparison")
    parser.add_argument("--out", type=Path, required=True, help="folder for curves.png and curves.json")
    args = parser.parse_args()

    from restorekit.data import build_val_set
    from restorekit.pretrained import load_weights
    from restorekit.train.config import build_config

    cfg = build_config(args.run / "config.yaml")
    items = build_val_set(cfg.data.val, cfg.data.val.channels)
    rows = [r for r in C.metrics_rows(args.run) if r.get("val_psnr") is not None]
    if not rows:
        raise SystemExit(f"{args.run}: no validation rows in metrics.csv yet")
    lines = {"target": C.evaluate_items(load_weights(args.target), items, protocol="dncnn")["mean"]["psnr"]}
    if args.previous:
        lines["previous"] = C.evaluate_items(load_weights(args.previous), items, protocol="dncnn")["mean"]["psnr"]

    batch = cfg.train.batch_size
    hours = [float(r["time"]) / 3600 for r in rows]
    psnrs = [float(r["val_psnr"]) for r in rows]
    fig, axes = C.new_figure(7.5, 4.5)
    ax = axes[0][0]
    ax.plot(hours, psnrs, marker=".", label=f"{cfg.model.name} (EMA), batch {batch} of {cfg.data.train.patch.size}²")
    ax.axhline(lines["target"], color="k", ls="--", label=f"{args.target.stem} (official) {lines['target']:.2f} dB")
    ax.axhline(lines["target"] - 0.1, color="k", ls=":", lw=0.8, label="target − 0.1 dB")
    if "previous" in lines:
        ax.axhline(lines["previous"], color="tab:red", ls="-.", label=f"previous default {lines['previous']:.2f} dB")
    ax.set_xlabel(f"training wall-clock hours on this machine ({C.environment().get('cpu', 'CPU')}, 2 cores)")
    ax.set_ylabel(f"validation PSNR (dB), {len(items)} images")
    ax.set_ylim(max(min(psnrs), lines["target"] - 3), lines["target"] + 0.5)
    top = ax.secondary_xaxis("top", functions=(lambda h: h, lambda h: h))
    step_at = {round(h, 6): int(r["step"]) for h, r in zip(hours, rows)}
    top.set_xticks(hours[:: max(1, len(hours) // 5)])
    top.set_xticklabels([f"{step_at[round(h, 6)] * batch / 1000:.0f}k" for h in hours[:: max(1, len(hours) // 5)]])
    top.set_xlabel("patches seen")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    args.out.mkdir(parents=True, exist_ok=True)
    C.save_figure(fig, args.out / "curves.png")
    data = {"run": C.shown(args.run), "lines": lines, "batch": batch,
            "rows": [{"step": int(r["step"]), "hours": h, "val_psnr": p} for r, h, p in zip(rows, hours, psnrs)]}
    (args.out / "curves.json").write_text(json.dumps(data, indent=1) + "\n")
    print(f"last: step {data['rows'][-1]['step']}, {hours[-1]:.2f} h, {psnrs[-1]:.3f} dB; "
          + ", ".join(f"{k} {v:.3f} dB" for k, v in lines.items()))


if __name__ == "__main__":
    main()

"""Learning curve of a built-in default's training run: validation PSNR against training hours on
this machine (and patches seen), with the target model (DnCNN-B / CDnCNN-B, official weights) and
the previously shipped default measured on the same validation images as lines.

A run started from an earlier run's weights (``model.init_from``) is drawn after the runs it continues,
each stage in its own colour, hours and patches counted from the first stage's start.

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
    parser.add_argument("--run", type=Path, required=True, help="the training run folder (its last stage)")
    parser.add_argument("--target", type=Path, required=True, help="official weights of the model to reach")
    parser.add_argument("--previous", type=Path, help="the weights shipped before, for comparison")
    parser.add_argument("--out", type=Path, required=True, help="folder for curves.png and curves.json")
    args = parser.parse_args()

    from restorekit.data import build_val_set
    from restorekit.pretrained import load_weights
    from restorekit.train.config import build_config

    cfg = build_config(args.run / "config.yaml")
    items = build_val_set(cfg.data.val, cfg.data.val.channels)
    stages = run_chain(args.run)
    lines = {"target": C.evaluate_items(load_weights(args.target), items, protocol="dncnn")["mean"]["psnr"]}
    if args.previous:
        lines["previous"] = C.evaluate_items(load_weights(args.previous), items, protocol="dncnn")["mean"]["psnr"]

    batch = cfg.train.batch_size
    fig, axes = C.new_figure(7.5, 4.5)
    ax = axes[0][0]
    hours, psnrs, steps, rows_out = [], [], [], []
    hour0 = step0 = 0.0
    for i, (run, rows) in enumerate(stages):
        run_batch = build_config(run / "config.yaml").train.batch_size
        h = [hour0 + float(r["time"]) / 3600 for r in rows if r.get("val_psnr") is not None]
        p = [float(r["val_psnr"]) for r in rows if r.get("val_psnr") is not None]
        st = [step0 + int(r["step"]) * run_batch / batch for r in rows if r.get("val_psnr") is not None]
        lr = next((float(r["lr"]) for r in rows if r.get("lr") is not None), None)
        label = f"stage {i + 1}: {run.name}" + (f" (lr from {lr:.0e})" if lr else "")
        ax.plot(h, p, marker=".", label=label)
        hours += h
        psnrs += p
        steps += st
        rows_out += [{"stage": run.name, "step": int(s_), "hours": a, "val_psnr": b} for s_, a, b in zip(st, h, p)]
        hour0 = hour0 + float(rows[-1]["time"]) / 3600
        step0 = step0 + int(rows[-1]["step"]) * run_batch / batch
    if not psnrs:
        raise SystemExit(f"{args.run}: no validation rows in metrics.csv yet")
    ax.set_title(f"{cfg.model.name} (EMA), batch {batch} of {cfg.data.train.patch.size}²", fontsize=9)
    ax.axhline(lines["target"], color="k", ls="--", label=f"{args.target.stem} (official) {lines['target']:.2f} dB")
    ax.axhline(lines["target"] - 0.1, color="k", ls=":", lw=0.8, label="target − 0.1 dB")
    if "previous" in lines:
        ax.axhline(lines["previous"], color="tab:red", ls="-.", label=f"previous default {lines['previous']:.2f} dB")
    ax.set_xlabel(f"training wall-clock hours on this machine ({C.environment().get('cpu', 'CPU')}, 2 cores)")
    ax.set_ylabel(f"validation PSNR (dB), {len(items)} images")
    ax.set_ylim(max(min(psnrs), lines["target"] - 3), lines["target"] + 0.5)
    top = ax.secondary_xaxis("top", functions=(lambda h: h, lambda h: h))
    step_at = {round(h, 6): n for h, n in zip(hours, steps)}
    top.set_xticks(hours[:: max(1, len(hours) // 5)])
    top.set_xticklabels([f"{step_at[round(h, 6)] * batch / 1000:.0f}k" for h in hours[:: max(1, len(hours) // 5)]])
    top.set_xlabel("patches seen")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    args.out.mkdir(parents=True, exist_ok=True)
    C.save_figure(fig, args.out / "curves.png")
    data = {"run": C.shown(args.run), "stages": [C.shown(r) for r, _ in stages], "lines": lines, "batch": batch,
            "rows": rows_out}
    (args.out / "curves.json").write_text(json.dumps(data, indent=1) + "\n")
    print(f"last: step {data['rows'][-1]['step']}, {hours[-1]:.2f} h, {psnrs[-1]:.3f} dB; "
          + ", ".join(f"{k} {v:.3f} dB" for k, v in lines.items()))


def run_chain(run: Path) -> list[tuple[Path, list[dict]]]:
    """(run folder, metrics rows) of ``run`` and of the runs whose weights it started from, oldest first."""
    import yaml

    chain = []
    seen = set()
    while run is not None and run.resolve() not in seen:
        seen.add(run.resolve())
        chain.append((run, C.metrics_rows(run)))
        config = yaml.safe_load((run / "config.yaml").read_text()) or {}
        parent = (config.get("model") or {}).get("init_from")
        parent_dir = Path(parent) if parent else None
        if parent_dir is not None and parent_dir.suffix == ".safetensors":
            parent_dir = parent_dir.parent
        run = parent_dir if parent_dir is not None and (parent_dir / "metrics.csv").is_file() else None
    return [(r, rows) for r, rows in reversed(chain) if rows]


if __name__ == "__main__":
    main()

"""Learning curve of a built-in default's training run: validation PSNR against training hours on
this machine (and patches seen), with the target model (DnCNN-B / CDnCNN-B, official weights) and
the previously shipped default measured on the same validation images as lines.

``--compare`` draws other candidates' runs (another architecture, say) on the same axes, against hours
and against patches seen, so that their learning per CPU-hour and per patch can be read off together.

A run started from an earlier run's weights (``model.init_from``) is drawn after the runs it continues,
each stage in its own colour, hours and patches counted from the first stage's start.

The validation set is the run's own (its config's data.val: BSD68 centre crops at σ 25 for the gray
default), degraded exactly as the trainer degrades it, so the run's curve and the lines compare alike.

    OMP_NUM_THREADS=2 PYTHONPATH=src python scripts/experiments/default_curves.py \
        --run runs/gray-7 --target ../shared/weights/dncnn-matconvnet/GD_Gray_Blind.mat \
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
    parser.add_argument("--shipped", type=Path,
                        help="the weights shipped now, where they are not the run's last (the colour default)")
    parser.add_argument("--out", type=Path, required=True, help="folder for curves.png and curves.json")
    parser.add_argument("--compare", type=Path, nargs="*", default=[],
                        help="other candidates' runs (their last stage), drawn in grey on the same axes")
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
    if args.shipped:
        lines["shipped"] = C.evaluate_items(load_weights(args.shipped), items, protocol="dncnn")["mean"]["psnr"]

    batch = cfg.train.batch_size
    fig, axes = C.new_figure(12, 4.8, cols=2)
    by_hours, by_patches = axes[0]
    rows_out, psnrs = [], []
    prior = _prior_training(stages[0][0])
    for i, (name, h, n, p, lr) in enumerate(lineage(args.run)):
        label = f"stage {i + 1}: {name}" + (f" (lr from {lr:.2g})" if lr else "")
        if i == 0 and prior[0]:
            label += f", from weights trained {prior[0]:.1f} h before"
        by_hours.plot(h, p, marker=".", label=label)
        by_patches.plot(n, p, marker=".", label=label)
        psnrs += p
        rows_out += [{"stage": name, "patches": a, "hours": b, "val_psnr": c} for a, b, c in zip(n, h, p)]
    if not psnrs:
        raise SystemExit(f"{args.run}: no validation rows in metrics.csv yet")
    compared = {}
    for other, colour in zip(args.compare, ("0.45", "0.65", "0.8")):
        stages = lineage(other)
        arch = build_config(other / "config.yaml").model
        label = f"{_layout(arch)}: {' + '.join(s[0] for s in stages)}"
        for ax, k in ((by_hours, 1), (by_patches, 2)):
            ax.plot(sum((s[k] for s in stages), []), sum((s[3] for s in stages), []), color=colour, ls="--",
                    marker=".", ms=3, label=label)
        compared[C.shown(other)] = [{"stage": s[0], "patches": n, "hours": h, "val_psnr": v}
                                    for s in stages for h, n, v in zip(s[1], s[2], s[3])]
    fig.suptitle(f"{_layout(cfg.model)} (EMA weights), batch {batch} of {cfg.data.train.patch.size}², "
                 f"validation: {len(items)} images, σ 25", fontsize=10)
    for ax in (by_hours, by_patches):
        ax.axhline(lines["target"], color="k", ls="--", label=f"{args.target.stem} (official) {lines['target']:.2f} dB")
        ax.axhline(lines["target"] - 0.1, color="k", ls=":", lw=0.8, label="target − 0.1 dB")
        if "previous" in lines:
            ax.axhline(lines["previous"], color="tab:red", ls="-.", label=f"previous default {lines['previous']:.2f} dB")
        if "shipped" in lines:
            ax.axhline(lines["shipped"], color="tab:green", ls="-", label=f"shipped default {lines['shipped']:.2f} dB")
        shown = psnrs + [r["val_psnr"] for rows in compared.values() for r in rows] + list(lines.values())
        ax.set_ylim(max(min(shown) - 0.05, lines["target"] - 2), lines["target"] + 0.4)
        ax.set_ylabel("validation PSNR (dB)")
        ax.grid(alpha=0.3)
    by_hours.set_xlabel(f"training wall-clock hours ({C.environment().get('cpu', 'CPU')}, 2 cores)")
    by_patches.set_xlabel("patches seen (millions)")
    by_patches.legend(loc="lower right", fontsize=7)
    args.out.mkdir(parents=True, exist_ok=True)
    C.save_figure(fig, args.out / "curves.png")
    data = {"run": C.shown(args.run), "stages": [C.shown(r) for r, _ in run_chain(args.run)], "lines": lines,
            "batch": batch, "rows": rows_out, "compared": compared}
    (args.out / "curves.json").write_text(json.dumps(data, indent=1) + "\n")
    last = rows_out[-1]
    print(f"last: {last['patches']:.3f} M patches, {last['hours']:.2f} h, {last['val_psnr']:.3f} dB; "
          + ", ".join(f"{k} {v:.3f} dB" for k, v in lines.items()))


def _layout(model_cfg) -> str:  # type: ignore[no-untyped-def]
    from restorekit.models import count_parameters, create_model
    from restorekit.models.dncnn_unshuffle import UnshuffleDnCNN

    net = create_model(model_cfg.name, **model_cfg.args)
    channels = model_cfg.args.get('channels', net.info.channels)
    if not isinstance(net, UnshuffleDnCNN):  # depth x width only describes a plain conv stack
        return f"{model_cfg.name} ({count_parameters(net) / 1e6:.2f} M parameters, {channels} ch)"
    convs = [m for m in net.modules() if type(m).__name__ == "Conv2d"]
    return f"{model_cfg.name} ({len(convs)} × {convs[0].out_channels}, {channels} ch)"


def lineage(run: Path) -> list[tuple[str, list[float], list[float], list[float], float | None]]:
    """Per stage of ``run``'s chain: (name, hours, millions of patches, validation PSNR, first lr), hours
    and patches counted from the first stage's start."""
    from restorekit.train.config import build_config

    out = []
    chain = run_chain(run)
    hour0, patches0 = _prior_training(chain[0][0]) if chain else (0.0, 0.0)
    for stage, rows in chain:
        batch = build_config(stage / "config.yaml").train.batch_size
        val = [r for r in rows if r.get("val_psnr") is not None]
        lr = next((float(r["lr"]) for r in rows if r.get("lr") is not None), None)
        out.append((stage.name, [hour0 + float(r["time"]) / 3600 for r in val],
                    [patches0 + int(r["step"]) * batch / 1e6 for r in val], [float(r["val_psnr"]) for r in val], lr))
        hour0 += float(rows[-1]["time"]) / 3600
        patches0 += int(rows[-1]["step"]) * batch / 1e6
    return out


def _prior_training(stage: Path) -> tuple[float, float]:
    """(hours, millions of patches) behind the weights ``stage`` started from when they are not a run
    drawn here (a converted checkpoint: the colour default starts from the gray default's weights)."""
    import yaml

    from restorekit.checkpoints import checkpoint_metadata, training_stages

    parent = ((yaml.safe_load((stage / "config.yaml").read_text()) or {}).get("model") or {}).get("init_from")
    if not parent:
        return 0.0, 0.0
    before = training_stages(checkpoint_metadata(parent))
    return sum(st["hours"] for st in before), sum(st["patches"] for st in before) / 1e6


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

"""DuRN on each of its tasks, CPU-sized: a short training run per task with the task's recipe (small
crops, small batch, a few hundred steps), then PSNR/SSIM of the degraded input and of the output on
held-out images with the task's DuRN protocol, and on the real samples where ../shared has some.

| task       | model          | recipe              | trains on                          | held out                          | real samples       | protocol  |
|------------|----------------|---------------------|------------------------------------|-----------------------------------|--------------------|-----------|
| gaussian   | durn-p         | durn-p-gaussian     | BSD400 gray, σ ∈ {30, 50, 70}      | BSD68 crops at σ 30, 50 and 70    | —                  | durn-gray |
| real-noise | durn-p-nonorm  | durn-p-real         | PolyU pairs, first 80 by name      | PolyU pairs, last 20 by name      | CC15               | durn-rgb  |
| blur       | durn-u         | durn-u-blur         | CSun_Hays80 + CSet14, motion blur  | Kodak24 crops, motion blur        | deblur/gopro-sample| durn-rgb  |
| haze       | durn-us        | durn-us-haze        | CSun_Hays80 + CSet14, haze         | Kodak24 crops, haze               | —                  | durn-rgb  |
| rain       | durn-s         | durn-s-rain         | CSun_Hays80 + CSet14, rain streaks | Kodak24 crops, rain streaks       | derain/rain-sample | durn-y    |
| raindrop   | durn-s-p       | durn-s-p-raindrop   | CSun_Hays80 + CSet14, raindrops    | Kodak24 crops, raindrops          | —                  | durn-y    |

Synthetic held-out images are degraded once with a generator seeded by the file name (restorekit's
validation data path), so every run scores the same inputs. Each recipe keeps its loss, optimiser,
schedule and DuRN-P's 10 updates per batch; the overrides are the data roots, crop, batch and length.

    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/experiments/durn_tasks.py                 # all tasks
    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/experiments/durn_tasks.py --tasks rain blur --steps 500
    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/experiments/durn_tasks.py --quick

Running the same command again resumes unfinished runs and reuses finished ones; a larger --steps
continues a finished run (the schedules of these recipes count epochs, which short runs never reach,
except durn-s-rain's cosine, which then stretches over the new length).
"""

from __future__ import annotations

import math
from pathlib import Path

import common as C

NAME = "durn_tasks"
COLOUR_TRAIN = ["CSun_Hays80", "CSet14"]
TASKS = {
    "gaussian": {"model": "durn-p", "recipe": "durn-p-gaussian", "channels": 1, "protocol": "durn-gray", "train": ["BSD400"],
                     "heldout": "BSD68", "heldout_degradations": [{"name": "gaussian-noise", "params": {"sigma": s}}
                                                            for s in (30, 50, 70)],
                     "published": "BSD gray test set: σ30 28.49 / 0.8158, σ50 26.36 / 0.7355, σ70 25.06 / 0.6761"},
    "real-noise": {"model": "durn-p-nonorm", "recipe": "durn-p-real", "channels": 3, "protocol": "durn-rgb", "train": ["PolyU"],
                       "heldout": "PolyU", "real": ("CC15", "*_real.png", "*_mean.png", None),
                       "published": "RealNoiseHKPoly: 36.83 / 0.9636"},
    "blur": {"model": "durn-u", "recipe": "durn-u-blur", "channels": 3, "protocol": "durn-rgb", "train": COLOUR_TRAIN,
                 "heldout": "Kodak24",
                 "real": ("gopro-sample", "*_blur1.png", "*_sharp1.png", [640, 360]), "published": "GoPro: 29.90 / 0.9101"},
    "haze": {"model": "durn-us", "recipe": "durn-us-haze", "channels": 3, "protocol": "durn-rgb", "train": COLOUR_TRAIN,
                 "heldout": "Kodak24",
                 "published": "RESIDE: 32.12 / 0.9803; DCPDN data: 32.60 / 0.9828"},
    "rain": {"model": "durn-s", "recipe": "durn-s-rain", "channels": 3, "protocol": "durn-y", "train": COLOUR_TRAIN,
                 "heldout": "Kodak24",
                 "real": ("rain-sample", "input/*", "target/*", None),
                 "published": "DID-MDN data: 33.21 / 0.9251; DDN data: 31.30 / 0.9194"},
    "raindrop": {"model": "durn-s-p", "recipe": "durn-s-p-raindrop", "channels": 3, "protocol": "durn-y", "train": COLOUR_TRAIN,
                     "heldout": "Kodak24",
                     "published": "RainDrop test_a: 31.24 / 0.9259; test_b: 25.32 / 0.8174"},
}
POLYU_TRAIN = 80  # PolyU's 100 pairs sorted by name: the first 80 train, the last 20 are held out


def parse_args():
    p = C.base_parser(NAME, __doc__.split("\n\n")[0])
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS), help="tasks to run (default: all)")
    p.add_argument("--steps", type=int, default=300, help="training steps per task (DuRN-P: 10 updates per step)")
    p.add_argument("--crop", type=int, default=64, help="training crop size")
    p.add_argument("--batch", type=int, default=8, help="batch size")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="training precision (bf16 autocast; evaluation stays fp32)")
    p.add_argument("--set", dest="task_overrides", action="append", default=[], metavar="TASK:KEY=VALUE",
                   help="a config override for one task's run, e.g. blur:optim.lr=3e-4 or blur:train.steps=1200 "
                        "(that task's length instead of --steps); repeatable")
    p.add_argument("--eval-images", type=int, default=24, help="held-out images per task (first K by name)")
    p.add_argument("--eval-crop", type=int, default=256, help="centre crop of the synthetic held-out images (0: whole)")
    p.add_argument("--real-crop", type=int, default=0,
                   help="centre crop of the real samples and PolyU held-out pairs (0: whole images; GoPro is resized "
                        "to 640×360 first, as the recipe does)")
    p.add_argument("--real-images", type=int, default=0, help="first K pairs of each real set (0: all)")
    args = C.finish_args(p.parse_args(), NAME)
    # --set, parsed once: each task's overrides as given (args.task_sets), and its length apart (args.task_steps)
    args.task_sets, args.task_steps = {}, {}
    for item in args.task_overrides:
        task, sep, override = (s.strip() for s in item.partition(":"))
        key, eq, value = override.partition("=")
        if not sep or task not in TASKS or not eq:
            p.error(f"--set {item}: expected TASK:KEY=VALUE with TASK one of {', '.join(TASKS)}")
        if key == "train.steps" and not value.strip().isdigit():
            p.error(f"--set {item}: train.steps takes a whole number")
        args.task_sets.setdefault(task, []).append(override)
        if key == "train.steps":
            args.task_steps[task] = int(value)
    if args.quick:
        args.steps, args.crop, args.batch = min(args.steps, 3), min(args.crop, 32), min(args.batch, 2)
        args.eval_images, args.eval_crop, args.real_crop, args.real_images = min(args.eval_images, 2), 64, 64, 2
        args.task_steps = {t: min(n, 3) for t, n in args.task_steps.items()}
    return args


def train_overrides(args, task: str, spec: dict, data: dict) -> list[str]:
    roots = [str(data[n]) for n in spec["train"]]
    ov = [f"data.train.root={C.yaml_value(roots)}", f"data.train.patch.size={args.crop}",
          f"train.batch_size={args.batch}", f"train.seed={args.seed}", f"train.precision={args.precision}",
          "train.checkpoint_every=50",
          f"train.log_every={1 if args.quick else 10}"]
    if task == "real-noise":
        ov.append(f"data.train.max_images={POLYU_TRAIN}")
    return ov + task_overrides(args, task)


def task_overrides(args, task: str) -> list[str]:
    """The task's --set overrides, its length (train.steps: args.task_steps) aside."""
    return [o for o in args.task_sets.get(task, []) if not o.startswith("train.steps=")]


def training_degradation(args, task: str, spec: dict, data: dict) -> dict:
    """The degradation the task's run trains with: its recipe's, with any parameters its --set gives."""
    from restorekit.recipes import load_recipe
    from restorekit.train import build_config

    deg = build_config(load_recipe(spec["recipe"]), train_overrides(args, task, spec, data)).data.train.degradation
    return {"name": deg.name, "params": dict(deg.params)}


def heldout_sets(args, task: str, spec: dict, data: dict) -> list[tuple[str, str, list]]:
    """(set label, kind, items): synthetic/split held-out sets, then the real samples."""
    k = args.eval_images
    crop = args.eval_crop or None
    real_crop = args.real_crop or None
    sets = []
    if task == "real-noise":
        items = C.paired_heldout(data["PolyU"], input="*_real.JPG", target="*_mean.JPG", channels=3, crop=real_crop,
                                 select=slice(POLYU_TRAIN, POLYU_TRAIN + k))
        sets.append((f"PolyU held-out ({len(items)} pairs)", "held-out", items))
    else:
        # Gaussian noise is held out at fixed σs; the other tasks at the degradation they train with
        for deg in spec.get("heldout_degradations") or [training_degradation(args, task, spec, data)]:
            items = C.clean_heldout(data[spec["heldout"]], deg, channels=spec["channels"], crop=crop, max_images=k)
            what = deg["name"] + "".join(f" {key} {v}" for key, v in deg["params"].items())
            sets.append((f"{spec['heldout']} {what} ({len(items)}, crop {crop or 'none'})", "held-out", items))
    if spec.get("real"):
        name, inp, tgt, resize = spec["real"]
        items = C.paired_heldout(data[name], input=inp, target=tgt, channels=3, crop=real_crop, resize=resize,
                                 select=slice(0, args.real_images or None))
        size = "×".join(map(str, items[0].target.shape[-2:][::-1])) if items else "—"
        sets.append((f"{name} ({len(items)} real pairs, {size}{', resized to 640×360 first' if resize and real_crop else ''})",
                     "real", items))
    return sets


def plot_gains(rows: list[dict], path: Path) -> Path:
    fig, axes = C.new_figure(max(7, 1.1 * len(rows) + 2), 4.5)
    ax = axes[0][0]
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [r["input_psnr"] for r in rows], 0.4, label="degraded input", color="0.7")
    ax.bar([x + 0.2 for x in xs], [r["psnr"] for r in rows], 0.4, label="DuRN output", color="C0")
    for x, r in zip(xs, rows):
        ax.annotate(f"{r['gain']:+.2f}", (x + 0.2, r["psnr"]), xytext=(0, 2), textcoords="offset points",
                    ha="center", fontsize=7)
    ax.set_xticks(list(xs), [f"{r['task']}\n{r['set'].split(' (')[0]}" for r in rows], fontsize=7, rotation=30, ha="right")
    ax.set(ylabel="PSNR (dB), task's DuRN protocol", title="input vs output PSNR per task and test set")
    lo = min(min(r["input_psnr"], r["psnr"]) for r in rows)
    ax.set_ylim(max(0, lo - 3), None)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    return C.save_figure(fig, path)


def plot_task_losses(runs: dict[str, Path], path: Path) -> Path | None:
    cols = min(3, len(runs))
    rows_n = math.ceil(len(runs) / cols)
    fig, axes = C.new_figure(4.2 * cols, 3.2 * rows_n, rows_n, cols)
    drawn = False
    for ax, (task, run_dir) in zip(axes.flat, runs.items()):
        rows = [r for r in C.metrics_rows(run_dir) if r.get("loss") is not None and math.isfinite(r["loss"])]
        ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], lw=1)
        ax.set(title=f"{task} ({TASKS[task]['model']})", xlabel="step", ylabel="training loss")
        ax.grid(alpha=0.3)
        drawn = drawn or bool(rows)
    for ax in list(axes.flat)[len(runs):]:
        ax.set_visible(False)
    return C.save_figure(fig, path) if drawn else None


def main() -> None:
    args = parse_args()
    needed = sorted({n for t in args.tasks for n in TASKS[t]["train"]} | {TASKS[t]["heldout"] for t in args.tasks}
                    | {TASKS[t]["real"][0] for t in args.tasks if TASKS[t].get("real")})
    data = C.require_data(*needed)

    results, runs = [], {}
    for task in args.tasks:
        spec = TASKS[task]
        run_dir = args.runs / task
        status = C.run_training(spec["recipe"], train_overrides(args, task, spec, data), run_dir,
                                steps=args.task_steps.get(task, args.steps),
                                label=f"{task} ({spec['model']})")
        runs[task] = run_dir
        net = C.load_run(run_dir)
        for set_label, kind, items in heldout_sets(args, task, spec, data):
            ev = C.evaluate_items(net, items, protocol=spec["protocol"])
            m = ev["mean"]
            results.append({"task": task, "model": spec["model"], "recipe": spec["recipe"], "params": C.count_params(net),
                            "steps": status.step, "train_seconds": round(status.wall_time, 1),
                            "s_per_step": status.wall_time / max(1, status.step), "set": set_label, "kind": kind,
                            "protocol": spec["protocol"], **m, "eval_seconds": ev["eval_seconds"],
                            "published": spec["published"], "run_dir": str(run_dir), "per_image": ev["per_image"]})
            C.log(f"{task}: {set_label}: input {m['input_psnr']:.2f} dB / {m['input_ssim']:.4f} -> output "
                  f"{m['psnr']:.2f} dB / {m['ssim']:.4f} ({m['gain']:+.2f} dB)")

    head = ["task", "model", "params", "steps", "train min", "s/step", "test set", "protocol", "input PSNR / SSIM",
            "output PSNR / SSIM", "gain (dB)"]
    def table(kind: str) -> str:
        rows = [[r["task"], r["model"], C.fmt_params(r["params"]), r["steps"], C.fmt(r["train_seconds"] / 60, 1),
                 C.fmt(r["s_per_step"], 2), r["set"], r["protocol"],
                 f"{r['input_psnr']:.2f} / {r['input_ssim']:.4f}", f"{r['psnr']:.2f} / {r['ssim']:.4f}",
                 f"{r['gain']:+.2f}"] for r in results if r["kind"] == kind]
        return C.md_table(head, rows, numeric={3, 4, 5, 10}) if rows else "_none for the selected tasks_"

    published = C.md_table(["task", "model", "published (full training, the paper's data; PSNR / SSIM)"],
                           [[t, TASKS[t]["model"], TASKS[t]["published"]] for t in args.tasks])
    per_task = "".join(f"; {t}: " + ", ".join(f"`{o}`" for o in args.task_sets[t]) for t in args.tasks if t in args.task_sets)
    settings = (f"- Each task: its recipe with `data.val=null` and the overrides: {args.steps} steps, batch {args.batch}, "
                f"{args.crop}×{args.crop} random crops, {args.precision}, seed {args.seed}{per_task}; colour tasks train on "
                f"{' + '.join(COLOUR_TRAIN)}, Gaussian on BSD400 (gray), real noise on the first {POLYU_TRAIN} PolyU pairs "
                f"by name. Run folders under `{C.shown(args.runs)}`; {args.threads} thread(s).\n"
                f"- Held-out: the first {args.eval_images} images by name, synthetic ones centre-cropped to "
                f"{args.eval_crop or 'whole'} and degraded with a generator seeded by the file name (degradation "
                f"parameters: the recipe's, plus those a task's `--set` gives its training data); real pairs {'cropped to ' + str(args.real_crop) if args.real_crop else 'whole'}. "
                "Last weights, run through `restorekit.inference.restore_tensor` (fp32).\n"
                "- Protocols (restorekit.metrics.PROTOCOLS): `durn-gray` (uint8 by truncation, gray, skimage SSIM), "
                "`durn-rgb` (the same on RGB), `durn-y` (OpenCV full-range Y). Input PSNR/SSIM: the degraded image "
                "against the clean one with the same protocol.")
    figures = []
    if results:
        plot_gains(results, args.out / "psnr.png")
        figures.append(("psnr.png", "PSNR of the degraded input and of the DuRN output, per task and test set"))
    if plot_task_losses(runs, args.out / "loss.png"):
        figures.append(("loss.png", "training loss of each task's run (each recipe's own loss)"))
    C.write_report(
        args.out, title="DuRN tasks: short CPU training runs",
        intro="Each DuRN variant trained briefly on this CPU with its task's recipe, then measured on held-out "
              "images and on the real samples in ../shared: does it improve on its degraded input, and by how much?",
        sections=[("Held-out (synthetic degradations, PolyU split)", table("held-out")),
                  ("Real samples", table("real")),
                  ("Published numbers (for scale only)", published + "\n\nFull training (thousands of epochs) on the "
                   "papers' data sets, which ../shared does not have (except PolyU-like real noise); not comparable to a "
                   "short run on synthetic degradations."),
                  ("Settings", settings)],
        data={"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "tasks": {t: {k: v for k, v in TASKS[t].items()} for t in args.tasks}, "results": results},
        figures=figures, quick=args.quick)


if __name__ == "__main__":
    main()

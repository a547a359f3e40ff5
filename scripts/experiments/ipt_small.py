"""A small IPT on this CPU: pre-trained on a few synthetic tasks at once (one shared transformer body,
a head and tail per task, L1 + 0.1 × IPT's patch contrastive loss), then fine-tuned on one task with L1;
the loss curves of both stages, and held-out PSNR (CSet5 and Kodak24 crops, `ipt` protocol) of the
pre-trained and the fine-tuned model against the trivial baseline — the noisy input for denoising,
bicubic up-sampling for super-resolution, the rainy input for deraining — all through restorekit's
tiled inference (`inference.restore_tensor` with task=..., tiles of the model's patch size).

The size is the `ipt-pretrain` architecture with small arguments (default patch 24, 32 features,
4 heads, 2 layers: about 5 M parameters instead of 119 M); the training recipes are `ipt-pretrain`
and `ipt-finetune-<task>` with CPU-sized overrides (CSun_Hays80 + CSet14 instead of ImageNet, crops of
the patch size, small batch, a few hundred steps, and higher learning rates than the papers' 5e-5 /
2e-5, which are for 300 + 30 epochs on ImageNet).

    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/experiments/ipt_small.py
    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/experiments/ipt_small.py --finetune-task sr-x2
    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/experiments/ipt_small.py --quick

Running the same command again resumes unfinished runs and reuses finished ones.
"""

from __future__ import annotations

from pathlib import Path

import common as C

NAME = "ipt_small"
COLOUR_TRAIN = ["CSun_Hays80", "CSet14"]
HELDOUT = ["CSet5", "Kodak24"]
TASK_DEGRADATIONS = {
    "sr-x2": {"name": "bicubic-down", "params": {"factor": 2}},
    "sr-x3": {"name": "bicubic-down", "params": {"factor": 3}},
    "sr-x4": {"name": "bicubic-down", "params": {"factor": 4}},
    "derain": {"name": "rain-streaks", "params": {}},
    "denoise-30": {"name": "gaussian-noise", "params": {"sigma": 30}},
    "denoise-50": {"name": "gaussian-noise", "params": {"sigma": 50}},
}
SCALE = {"sr-x2": 2, "sr-x3": 3, "sr-x4": 4}
BASELINE = {"sr": "bicubic up-sampling", "derain": "rainy input", "denoise": "noisy input"}


def parse_args():
    p = C.base_parser(NAME, __doc__.split("\n\n")[0])
    p.add_argument("--pretrain-tasks", nargs="+", default=["sr-x2", "derain", "denoise-30"],
                   choices=list(TASK_DEGRADATIONS), help="tasks of the pre-training (cycled one per step)")
    p.add_argument("--finetune-task", default="denoise-30", choices=["denoise-30", "denoise-50", "sr-x2", "derain"],
                   help="the task to fine-tune on (must be one of the pre-training tasks)")
    p.add_argument("--pretrain-steps", type=int, default=2400, help="pre-training steps (one task per step)")
    p.add_argument("--finetune-steps", type=int, default=600, help="fine-tuning steps")
    p.add_argument("--batch", type=int, default=16, help="batch size (the contrastive loss needs >= 2)")
    p.add_argument("--lr", type=float, default=2e-4, help="pre-training learning rate (paper: 5e-5)")
    p.add_argument("--ft-lr", type=float, default=1e-4, help="fine-tuning learning rate (paper: 2e-5)")
    p.add_argument("--patch-size", type=int, default=24, help="IPT input size (a multiple of 3): the tile size")
    p.add_argument("--n-feats", type=int, default=32, help="features (token size = n_feats × 9)")
    p.add_argument("--heads", type=int, default=4, help="attention heads")
    p.add_argument("--layers", type=int, default=2, help="encoder and decoder layers")
    p.add_argument("--eval-images", type=int, default=24, help="held-out images per set (first K by name)")
    p.add_argument("--eval-crop", type=int, default=192, help="centre crop of the held-out images (0: whole)")
    args = C.finish_args(p.parse_args(), NAME)
    if args.finetune_task not in args.pretrain_tasks:
        p.error(f"--finetune-task {args.finetune_task} is not among --pretrain-tasks {' '.join(args.pretrain_tasks)}")
    if args.patch_size % 3:
        p.error("--patch-size must be a multiple of 3 (IPT's patch_dim)")
    if args.quick:
        args.pretrain_steps, args.finetune_steps = min(args.pretrain_steps, 3), min(args.finetune_steps, 2)
        args.batch, args.n_feats, args.heads, args.layers = min(args.batch, 4), min(args.n_feats, 16), 2, 1
        args.eval_images, args.eval_crop = min(args.eval_images, 2), 48
    return args


def model_args(args) -> dict:
    return {"patch_size": args.patch_size, "n_feats": args.n_feats, "num_heads": args.heads, "num_layers": args.layers}


def task_entry(args, task: str) -> dict:
    return {"name": task, "patch": args.patch_size * SCALE.get(task, 1), "degradation": TASK_DEGRADATIONS[task]}


def common_overrides(args, data) -> list[str]:
    roots = [str(data[n]) for n in COLOUR_TRAIN]
    return [f"model.args={C.yaml_value(model_args(args))}", f"data.train.root={C.yaml_value(roots)}",
            f"train.batch_size={args.batch}", f"train.seed={args.seed}", "train.checkpoint_every=50",
            f"train.log_every={1 if args.quick else 10}", "data.train.patch.per_image=16"]


def pretrain(args, data) -> tuple[Path, C.RunStatus]:
    tasks = [task_entry(args, t) for t in args.pretrain_tasks]
    largest = max(t["patch"] for t in tasks)
    run_dir = args.runs / f"pretrain-{'+'.join(args.pretrain_tasks)}-s{args.pretrain_steps}"
    ov = [*common_overrides(args, data), f"data.tasks={C.yaml_value(tasks)}", f"data.train.patch.size={largest}",
          f"optim.lr={args.lr}", "schedule.name=constant"]
    return run_dir, C.run_training("ipt-pretrain", ov, run_dir, steps=args.pretrain_steps, label="IPT pre-training")


def finetune(args, data, pre_dir: Path) -> tuple[Path, C.RunStatus]:
    task = task_entry(args, args.finetune_task)
    run_dir = args.runs / f"finetune-{args.finetune_task}-s{args.finetune_steps}-from-{pre_dir.name}"
    ov = [*common_overrides(args, data), f"model.init_from={pre_dir}", f"data.tasks={C.yaml_value([task])}",
          f"data.train.patch.size={task['patch']}", f"optim.lr={args.ft_lr}", "schedule.name=constant"]
    return run_dir, C.run_training(f"ipt-finetune-{args.finetune_task}", ov, run_dir, steps=args.finetune_steps,
                                   label=f"IPT fine-tuning ({args.finetune_task})")


def heldout(args, data, task: str, set_name: str) -> list:
    scale = SCALE.get(task, 1)
    crop = args.eval_crop // (scale * 2) * (scale * 2) if args.eval_crop else None  # aligned LR / HR pairs
    return C.clean_heldout(data[set_name], TASK_DEGRADATIONS[task], channels=3, crop=crop, max_images=args.eval_images)


def evaluate(net, items, task: str) -> dict:
    from restorekit.degradations.sr import bicubic_upsample

    scale = SCALE.get(task, 1)
    baseline = (lambda x: bicubic_upsample(x, scale)) if scale > 1 else None
    return C.evaluate_items(net, items, protocol="ipt", task=task, crop_border=scale if scale > 1 else 0, baseline=baseline)


def main() -> None:
    args = parse_args()
    data = C.require_data(*COLOUR_TRAIN, *HELDOUT)
    pre_dir, pre_status = pretrain(args, data)
    ft_dir, ft_status = finetune(args, data, pre_dir)

    pre_net, ft_net = C.load_run(pre_dir), C.load_run(ft_dir)
    C.log(f"evaluating on {', '.join(HELDOUT)} (first {args.eval_images}, crop {args.eval_crop or 'whole'}), tiles of "
          f"{args.patch_size} px")
    results = []
    for task in args.pretrain_tasks:
        for set_name in HELDOUT:
            items = heldout(args, data, task, set_name)
            stages = [("pre-trained", pre_net, pre_status)]
            if task == args.finetune_task:
                stages.append(("fine-tuned", ft_net, ft_status))
            for stage, net, status in stages:
                ev = evaluate(net, items, task)
                m = ev["mean"]
                kind = task.split("-")[0]
                results.append({"task": task, "set": set_name, "images": len(items), "size": ev["first_size"],
                                "stage": stage, "steps": status.step, "baseline": BASELINE[kind], **m,
                                "eval_seconds": ev["eval_seconds"], "per_image": ev["per_image"]})
                C.log(f"{stage} {task} on {set_name}: {BASELINE[kind]} {m['input_psnr']:.2f} dB -> IPT {m['psnr']:.2f} dB "
                      f"({m['gain']:+.2f})")

    params = C.count_params(ft_net)
    table = C.md_table(
        ["task", "held-out set", "images", "model", "steps", "baseline", "baseline PSNR / SSIM", "IPT PSNR / SSIM",
         "gain (dB)"],
        [[r["task"], r["set"], f"{r['images']} × {r['size'][0]}×{r['size'][1]}", r["stage"], r["steps"], r["baseline"],
          f"{r['input_psnr']:.2f} / {r['input_ssim']:.4f}", f"{r['psnr']:.2f} / {r['ssim']:.4f}", f"{r['gain']:+.2f}"]
         for r in results], numeric={4, 8})
    verdict_rows = [r for r in results if r["stage"] == "fine-tuned"]
    verdict = "; ".join(f"on {r['set']} {r['psnr']:.2f} dB against the {r['baseline']}'s {r['input_psnr']:.2f} dB "
                        f"({r['gain']:+.2f} dB: {'better' if r['gain'] > 0 else 'NOT better'})" for r in verdict_rows)
    runs_table = C.md_table(
        ["stage", "recipe", "tasks", "steps", "train min", "s/step", "lr", "run folder"],
        [["pre-training", "ipt-pretrain", ", ".join(args.pretrain_tasks), pre_status.step,
          C.fmt(pre_status.wall_time / 60, 1), C.fmt(C.per_step_seconds(pre_status), 3), f"{args.lr:g}", f"`{C.shown(pre_dir)}`"],
         ["fine-tuning", f"ipt-finetune-{args.finetune_task}", args.finetune_task, ft_status.step,
          C.fmt(ft_status.wall_time / 60, 1), C.fmt(C.per_step_seconds(ft_status), 3), f"{args.ft_lr:g}", f"`{C.shown(ft_dir)}`"]],
        numeric={3, 4, 5})
    settings = (f"- Model: `ipt-pretrain` with {C.yaml_value(model_args(args))} ({params:,} parameters; the full model "
                "has 118,892,394); six heads/tails exist, only the pre-training tasks' are trained.\n"
                f"- Data: random crops of {' + '.join(COLOUR_TRAIN)} with the 8 flips/rotations; each step trains one "
                f"task (cycled), its input {args.patch_size}×{args.patch_size} (SR targets {args.patch_size}·scale). "
                f"Batch {args.batch}, Adam, constant learning rate; pre-training loss L1 + 0.1 × contrastive (τ 0.1) on "
                "the body's patch features, fine-tuning L1 (the recipes' losses). "
                f"Seed {args.seed}, {args.threads} thread(s).\n"
                f"- Held-out: the first {args.eval_images} images of each set, centre crops of {args.eval_crop or 'whole'} "
                "(SR: a multiple of 2·scale), degraded with a generator seeded by the file name. Inference through "
                f"`restore_tensor(model, x, InferenceOptions(task=...))`: {args.patch_size}×{args.patch_size} tiles with "
                "the automatic overlap (capped at half a tile: IPT's attention sees the whole tile). Protocol `ipt` "
                "(uint8 round, EDSR's Y); SR crops `scale` pixels per side. Baselines: the noisy / rainy input, "
                "MATLAB-bicubic up-sampling (`restorekit.degradations.sr.bicubic_upsample`).")
    figures = []
    if C.plot_losses({"pre-training (L1 + 0.1·contrastive)": pre_dir, f"fine-tuning {args.finetune_task} (L1)": ft_dir},
                     args.out / "loss.png", title="small IPT: training loss",
                     offsets={f"fine-tuning {args.finetune_task} (L1)": pre_status.step}):
        figures.append(("loss.png", "training loss: pre-training, then fine-tuning (steps continue)"))
    fig, axes = C.new_figure(8, 4)
    ax = axes[0][0]
    labels = [f"{r['task']}\n{r['set']}\n{r['stage']}" for r in results]
    xs = range(len(results))
    ax.bar([x - 0.2 for x in xs], [r["input_psnr"] for r in results], 0.4, color="0.7", label="baseline")
    ax.bar([x + 0.2 for x in xs], [r["psnr"] for r in results], 0.4, color="C0", label="small IPT")
    ax.set_xticks(list(xs), labels, fontsize=6)
    lo = min(min(r["input_psnr"], r["psnr"]) for r in results)
    ax.set_ylim(max(0, lo - 3), None)
    ax.set(ylabel="PSNR (dB), ipt protocol", title="held-out PSNR: baseline vs small IPT")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    C.save_figure(fig, args.out / "psnr.png")
    figures.append(("psnr.png", "held-out PSNR of the baseline and of the small IPT per task, set and stage"))
    C.write_report(
        args.out, title=f"A small IPT, pre-trained on {', '.join(args.pretrain_tasks)} and fine-tuned on {args.finetune_task}",
        intro="Can IPT's recipe — multi-task pre-training with a contrastive term, then fine-tuning on one task — "
              "be run end to end at CPU scale, and does the fine-tuned small model beat the trivial baseline on "
              f"held-out images? Fine-tuned {args.finetune_task}: {verdict}.",
        sections=[("Held-out PSNR", table), ("Runs", runs_table), ("Settings", settings)],
        data={"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "params": params, "pretrain_run": str(pre_dir), "finetune_run": str(ft_dir), "results": results},
        figures=figures, quick=args.quick)


if __name__ == "__main__":
    main()

"""xUnit vs DnCNN on this CPU: DnCNN-S (17 layers), DnCNN with 9 layers (dncnn-9) and xDnCNN (9 layers,
xdncnn-gray) trained on the same data (BSD400, Gaussian σ) with the same settings, once for the same
number of steps and once for the same training wall-clock budget each; BSD68 PSNR against parameters
and against inference time per megapixel (fp32, same threads, same process), beside the published
figures (xUnit paper: xDnCNN 303K parameters 29.21 dB vs DnCNN-S 555K 29.22 dB at σ 25; 26.26 vs 26.23
at σ 50).

All three models train with the `xdncnn` recipe (kligvasser/xUnit's settings: L1, Adam 2e-4 with
betas (0.9, 0.99), random crops with the 8 flips/rotations) and a constant learning rate, so that a
run's first N steps do not depend on its length: the equal-time arm trains in chunks until each
model's own training wall time reaches --minutes (see common.train_for_minutes).

    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/experiments/xunit_vs_dncnn.py            # full length
    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/experiments/xunit_vs_dncnn.py --quick    # end-to-end check

Running the same command again resumes unfinished runs (Ctrl-C saves a resumable checkpoint) and
reuses finished ones; the report is rewritten from the runs' weights.
"""

from __future__ import annotations

import math
from pathlib import Path

import common as C

NAME = "xunit_vs_dncnn"
MODELS = [  # registry name, label, conv layers
    ("dncnn-s", "DnCNN-S", 17),
    ("dncnn-9", "DnCNN-9", 9),
    ("xdncnn-gray", "xDnCNN", 9),
]
# Kligvasser et al., CVPR 2018, Table 1 (BSD68, gray): parameters and PSNR by σ.
PUBLISHED = {
    "DnCNN-S": {"params": 555_000, 25: 29.22, 50: 26.23},
    "xDnCNN": {"params": 303_000, 25: 29.21, 50: 26.26},
}


def parse_args():
    p = C.base_parser(NAME, __doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=1500, help="equal-steps arm: training steps per model (0: skip the arm)")
    p.add_argument("--minutes", type=float, default=30.0,
                   help="equal-time arm: training wall-clock minutes per model (0: skip the arm)")
    p.add_argument("--batch", type=int, default=16, help="batch size (the reference code's 16)")
    p.add_argument("--patch", type=int, default=50, help="training crop size (the reference code's 50)")
    p.add_argument("--lr", type=float, default=2e-4, help="constant learning rate (Adam, betas 0.9/0.99)")
    p.add_argument("--sigma", type=float, default=25.0, help="noise level, 0-255 scale (published: 25 and 50)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="training precision (same for all)")
    p.add_argument("--eval-images", type=int, default=68, help="first K images of BSD68 (sorted by name)")
    p.add_argument("--time-size", type=int, default=512, help="inference timing on a SIZE×SIZE gray image")
    p.add_argument("--time-repeats", type=int, default=5, help="timed inference runs per model (min reported)")
    p.add_argument("--models", nargs="+", default=[m[0] for m in MODELS], choices=[m[0] for m in MODELS])
    args = C.finish_args(p.parse_args(), NAME)
    if args.quick:
        args.steps, args.minutes = min(args.steps, 3) if args.steps else 0, min(args.minutes, 0.1) if args.minutes else 0
        args.batch, args.patch = min(args.batch, 4), min(args.patch, 32)
        args.eval_images, args.time_size, args.time_repeats = min(args.eval_images, 2), min(args.time_size, 128), 1
    return args


def overrides(args, model: str, bsd400: Path) -> list[str]:
    return [f"model.name={model}", f"data.train.root={C.yaml_value([str(bsd400)])}",
            f"data.train.patch.size={args.patch}", f"train.batch_size={args.batch}",
            f"data.train.degradation.params={C.yaml_value({'sigma': args.sigma})}",
            f"optim.lr={args.lr}", "schedule.name=constant", f"train.precision={args.precision}",
            f"train.seed={args.seed}", "train.checkpoint_every=100", f"train.log_every={1 if args.quick else 25}"]


def bsd68_items(folder: Path, k: int, sigma: float) -> list:
    """The first k BSD68 images with noise seeded by name, exactly as `restorekit eval --data BSD68`."""
    from restorekit.data import ValItem
    from restorekit.eval.datasets import discover_samples
    from restorekit.eval.evaluate import load_pair

    items = []
    for s in discover_samples(folder, paired=False)[:k]:
        noisy, clean = load_pair(s, 1, sigma=sigma)
        items.append(ValItem(s.name, noisy, clean))
    return items


def plot(results: list[dict], sigma: float, path: Path) -> Path:
    fig, axes = C.new_figure(11, 4.2, 1, 2)
    ax_p, ax_t = axes[0]
    colours = {label: f"C{i}" for i, (_, label, _) in enumerate(MODELS)}
    markers = {"equal steps": "o", "equal time": "s"}
    for r in results:
        kw = {"color": colours[r["label"]], "marker": markers[r["arm"]], "s": 45, "zorder": 3}
        ax_p.scatter([r["params"] / 1e3], [r["psnr"]], **kw)
        ax_t.scatter([r["s_per_mp"]], [r["psnr"]], **kw)
        for ax, x in ((ax_p, r["params"] / 1e3), (ax_t, r["s_per_mp"])):
            ax.annotate(f"{r['label']} ({r['arm']})", (x, r["psnr"]), xytext=(4, 3), textcoords="offset points", fontsize=7)
    key = int(sigma) if float(sigma).is_integer() else sigma
    for label, pub in PUBLISHED.items():
        if key in pub:
            ax_p.scatter([pub["params"] / 1e3], [pub[key]], color=colours[label], marker="*", s=110, zorder=3,
                         edgecolors="black", linewidths=0.5)
            ax_p.annotate(f"{label} (published)", (pub["params"] / 1e3, pub[key]), xytext=(4, -10),
                          textcoords="offset points", fontsize=7)
    ax_p.set(xlabel="parameters (K)", ylabel="BSD68 PSNR (dB)", title=f"PSNR vs parameters (σ {sigma:g})")
    ax_t.set(xlabel="inference time (s per megapixel, fp32, this CPU)", ylabel="BSD68 PSNR (dB)",
             title="PSNR vs inference time")
    for ax in (ax_p, ax_t):
        ax.grid(alpha=0.3)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color="0.3", marker=m, ls="", label=a) for a, m in markers.items()]
    handles.append(Line2D([], [], color="0.3", marker="*", ls="", markersize=10, label="published (full training)"))
    ax_p.legend(handles=handles, fontsize=7, loc="best")
    return C.save_figure(fig, path)


def main() -> None:
    args = parse_args()
    data = C.require_data("BSD400", "BSD68")
    arms = []
    if args.steps:
        arms.append(("equal steps", args.runs / f"equal-steps-{args.steps}"))
    if args.minutes:
        arms.append(("equal time", args.runs / f"equal-time-{args.minutes:g}min"))
    if not arms:
        raise SystemExit("nothing to do: give --steps and/or --minutes above 0")
    labels = {m: (label, layers) for m, label, layers in MODELS}

    runs = []
    for arm, folder in arms:
        for model in args.models:
            ov = overrides(args, model, data["BSD400"])
            run_dir = folder / model
            if arm == "equal steps":
                status = C.run_training("xdncnn", ov, run_dir, steps=args.steps, label=f"{model} ({arm})")
            else:
                probe = 2 if args.quick else 20
                status = C.train_for_minutes("xdncnn", ov, run_dir, minutes=args.minutes, probe_steps=probe,
                                             label=f"{model} ({arm})")
            runs.append((arm, model, run_dir, status))

    C.log(f"evaluating on {args.eval_images} BSD68 image(s) at σ {args.sigma:g}, timing at {args.time_size}² "
          f"with {args.threads} thread(s)")
    items = bsd68_items(data["BSD68"], args.eval_images, args.sigma)
    timings = {}
    results = []
    for arm, model, run_dir, status in runs:
        net = C.load_run(run_dir)
        ev = C.evaluate_items(net, items, protocol="dncnn")
        if model not in timings:  # the architecture's speed: once per model, same process and threads
            timings[model] = C.time_inference(net, (1, 1, args.time_size, args.time_size), repeats=args.time_repeats)
        label, layers = labels[model]
        results.append({"arm": arm, "model": model, "label": label, "layers": layers, "params": C.count_params(net),
                        "steps": status.step, "train_seconds": round(status.wall_time, 1),
                        "s_per_step": status.wall_time / max(1, status.step), "psnr": ev["mean"]["psnr"],
                        "ssim": ev["mean"]["ssim"], "input_psnr": ev["mean"]["input_psnr"],
                        "s_per_mp": timings[model]["s_per_mp"], "s_per_mp_median": timings[model]["s_per_mp_median"],
                        "cpu_s_per_mp": timings[model]["cpu_s_per_mp"],
                        "run_dir": str(run_dir), "per_image": ev["per_image"]})
        C.log(f"{label} ({arm}): {status.step} steps, BSD68 PSNR {ev['mean']['psnr']:.3f} dB "
              f"(noisy {ev['mean']['input_psnr']:.2f}), {timings[model]['s_per_mp']:.3f} s/MP")

    key = int(args.sigma) if float(args.sigma).is_integer() else args.sigma
    rows = []
    for r in results:
        pub = PUBLISHED.get(r["label"], {})
        rows.append([r["label"], r["layers"], f"{r['params']:,}", r["arm"], r["steps"], C.fmt(r["train_seconds"] / 60, 1),
                     C.fmt(r["s_per_step"], 3), C.fmt(r["psnr"], 3), C.fmt(r["ssim"], 4), C.fmt(r["s_per_mp"], 3),
                     C.fmt(r["cpu_s_per_mp"], 3), C.fmt(pub.get(key)) + (f" ({C.fmt_params(pub['params'])})" if pub.get(key) else "")])
    table = C.md_table(["model", "layers", "parameters", "arm", "steps", "train min", "s/step", "BSD68 PSNR",
                        "SSIM", "s/MP", "CPU s/MP", "published PSNR (params)"], rows,
                       numeric={1, 2, 4, 5, 6, 7, 8, 9, 10})
    noisy = results[0]["input_psnr"] if results else math.nan
    settings = (f"- Training: BSD400, σ {args.sigma:g} (fresh noise per crop), {args.patch}×{args.patch} random crops with "
                f"the 8 flips/rotations, batch {args.batch}, L1, Adam {args.lr:g} (betas 0.9/0.99) constant, "
                f"{args.precision}, seed {args.seed}, {args.threads} thread(s). Recipe `xdncnn` with overrides; "
                "run folders under `" + C.shown(args.runs) + "`.\n"
                f"- Equal steps: {args.steps or '—'} steps per model. Equal time: {args.minutes or '—'} minutes of the "
                "engine's training wall time per model (the step loop; data loading before it not counted).\n"
                f"- Evaluation: the first {len(items)} BSD68 images, noise seeded by image name (the same noisy images as "
                f"`restorekit eval --data BSD68 --sigma {args.sigma:g}`), last weights, protocol `dncnn` "
                f"(float, clamped, gray); the noisy input scores {C.fmt(noisy, 3)} dB.\n"
                f"- Inference time: `restore_tensor` in fp32 (BatchNorm folded) on a {args.time_size}×{args.time_size} "
                f"gray image, best of {args.time_repeats} runs after a warm-up, {args.threads} thread(s), in this process "
                f"(s/MP: wall clock; CPU s/MP: the process's CPU time, which other load on the machine does not inflate; "
                f"with one thread the two agree on an idle machine).\n"
                "- Published: Kligvasser et al. (CVPR 2018) after full training (the paper's schedule, about "
                "10⁵ steps and more); this run is far shorter, so compare the models with each other, and the gap "
                "to the published numbers as what more training buys.")
    C.plot_losses({f"{r['label']} ({r['arm']})": Path(r["run_dir"]) for r in results}, args.out / "loss.png",
                  title="training loss (L1)")
    plot(results, args.sigma, args.out / "psnr.png")
    C.write_report(
        args.out, title=f"xUnit vs DnCNN on this CPU (BSD68, σ {args.sigma:g})",
        intro="Does the xUnit activation let a 9-layer DnCNN match the 17-layer DnCNN-S with about half the "
              "parameters, as the xUnit paper reports, when all three are trained the same way on this CPU? "
              "And what does each cost at inference?",
        sections=[("Results", table), ("Settings", settings)],
        data={"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "published": {k: {str(kk): vv for kk, vv in v.items()} for k, v in PUBLISHED.items()},
              "timings": timings, "results": results},
        figures=[("psnr.png", "BSD68 PSNR against parameters (published points: stars) and against inference time"),
                 ("loss.png", "training loss of each run")],
        quick=args.quick)


if __name__ == "__main__":
    main()

"""MPRNet on this CPU: a short `mprnet-derain` run on synthetic rain streaks, evaluated with the
`mprnet-derain` protocol on held-out synthetic images (Kodak24 crops) and on the real
../shared/data/derain/rain-sample pairs; a short `mprnet-denoise` run on PolyU's real-noise pairs
(first 80 by name train, last 20 held out; `mprnet-sidd` protocol); and the inference time and peak
memory (resident-set high-water mark, each variant in its own subprocess) of mprnet-deblur,
mprnet-denoise and mprnet-derain on a 512×512 image.

The runs use the shipped recipes with CPU-sized overrides: small crops and batch, a few hundred steps,
and the warm-up + cosine schedule counted in steps (10 % warm-up) instead of epochs (the recipes' 3
warm-up epochs would outlast a short run).

    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/experiments/mprnet_runs.py
    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/experiments/mprnet_runs.py --quick

Running the same command again resumes unfinished runs and reuses finished ones.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import common as C

NAME = "mprnet_runs"
VARIANTS = ("mprnet-deblur", "mprnet-denoise", "mprnet-derain")
POLYU_TRAIN = 80
COLOUR_TRAIN = ["CSun_Hays80", "CSet14"]


def parse_args():
    p = C.base_parser(NAME, __doc__.split("\n\n")[0])
    p.add_argument("--train", nargs="*", default=["derain", "denoise"], choices=["derain", "denoise"],
                   help="which short runs to make (default both; none: timing only)")
    p.add_argument("--steps", type=int, default=300, help="training steps of each run")
    p.add_argument("--denoise-steps", type=int, default=None,
                   help="training steps of the denoising run (default --steps; its model is 4× the deraining one)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="training precision of both runs (bf16 autocast; evaluation and timing stay fp32)")
    p.add_argument("--crop", type=int, default=64, help="training crop (a multiple of 8)")
    p.add_argument("--batch", type=int, default=4, help="batch size")
    p.add_argument("--eval-images", type=int, default=24, help="held-out images: Kodak24 crops / PolyU pairs (first K)")
    p.add_argument("--eval-crop", type=int, default=256, help="centre crop of the held-out images (0: whole)")
    p.add_argument("--real-crop", type=int, default=0, help="centre crop of the rain-sample pairs (0: whole)")
    p.add_argument("--size", type=int, default=512, help="timing and memory: a SIZE×SIZE RGB image")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per variant after a warm-up (min reported)")
    p.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=VARIANTS,
                   help="variants to time (default all three; none: no timing)")
    p.add_argument("--measure", help=argparse.SUPPRESS, default=None)  # internal: one variant, JSON on stdout
    args = C.finish_args(p.parse_args(), NAME)
    if args.quick:
        args.steps, args.crop, args.batch = min(args.steps, 3), min(args.crop, 32), min(args.batch, 2)
        args.eval_images, args.eval_crop, args.real_crop = min(args.eval_images, 2), 64, 64
        args.size, args.repeats = min(args.size, 128), 1
        args.denoise_steps = min(args.denoise_steps or 3, 3)
    args.denoise_steps = args.denoise_steps or args.steps
    return args


# --------------------------------------------------------------------------- timing + memory (subprocess)


def _status_kb(field: str) -> int | None:
    from restorekit.eval.speed import proc_status_kb

    return proc_status_kb(field)


def measure_variant(name: str, size: int, repeats: int) -> dict:
    """Run in a fresh process: build ``name`` (random weights: speed and memory do not depend on them),
    reset the RSS high-water mark, restore one size×size image, and report the peak; then time it."""
    import torch

    from restorekit.inference import InferenceOptions, restore_tensor
    from restorekit.models import create_model

    torch.manual_seed(0)
    model = create_model(name).eval()
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    options = InferenceOptions(device="cpu", precision="fp32")
    base_kb = _status_kb("VmRSS") or 0
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # reset VmHWM to the current RSS (Linux >= 4.0)
        reset = True
    except OSError:
        reset = False
    t0, c0 = time.perf_counter(), time.process_time()
    restore_tensor(model, x, options)
    first, first_cpu = time.perf_counter() - t0, time.process_time() - c0
    peak_kb = _status_kb("VmHWM") or 0
    times, cpu = [first], [first_cpu]
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        restore_tensor(model, x, options)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    timed = times[1:] or times
    timed_cpu = cpu[1:] or cpu
    mp = size * size / 1e6
    return {"variant": name, "size": size, "params": sum(p.numel() for p in model.parameters()),
            "seconds": min(timed), "cpu_seconds": min(timed_cpu), "first_seconds": first,
            "s_per_mp": min(timed) / mp, "repeats": len(timed), "threads": torch.get_num_threads(),
            "rss_before_mb": base_kb / 1024, "peak_rss_mb": peak_kb / 1024,
            "peak_increase_mb": (peak_kb - base_kb) / 1024 if reset else None, "hwm_reset": reset}


def measure_all(args) -> list[dict]:
    rows = []
    for name in args.variants:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--measure", name, "--size", str(args.size),
               "--repeats", str(args.repeats), "--threads", str(args.threads)]
        C.log(f"timing {name} at {args.size}×{args.size} in a subprocess ({args.threads} thread(s))")
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            rows.append({"variant": name, "error": (proc.stderr.strip().splitlines() or ["failed"])[-1]})
            C.log(f"{name}: measurement failed: {rows[-1]['error']}")
            continue
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(row)
        C.log(f"{name}: {row['seconds']:.2f} s per image ({row['cpu_seconds']:.2f} s CPU), peak RSS "
              f"{row['peak_rss_mb']:.0f} MB (+{row['peak_increase_mb'] or 0:.0f} MB over the loaded model)")
    return rows


# --------------------------------------------------------------------------- runs


def common_overrides(args, steps: int) -> list[str]:
    warm = max(1, steps // 10)
    return [f"data.train.patch.size={args.crop}", f"train.batch_size={args.batch}", f"train.seed={args.seed}",
            f"train.precision={args.precision}",
            "schedule.unit=step", f"schedule.warmup={warm}", "train.checkpoint_every=50",
            f"train.log_every={1 if args.quick else 10}"]


def run_derain(args, data) -> tuple[Path, list]:
    roots = [str(data[n]) for n in COLOUR_TRAIN]
    run_dir = args.runs / "mprnet-derain"
    status = C.run_training("mprnet-derain", [f"data.train.root={C.yaml_value(roots)}", *common_overrides(args, args.steps)],
                            run_dir, steps=args.steps, label="mprnet-derain")
    sets = [("Kodak24 synthetic rain streaks", "held-out",
             C.clean_heldout(data["Kodak24"], {"name": "rain-streaks", "params": {}}, channels=3,
                             crop=args.eval_crop or None, max_images=args.eval_images)),
            ("derain/rain-sample (real)", "real",
             C.paired_heldout(data["rain-sample"], input="input/*", target="target/*", channels=3,
                              crop=args.real_crop or None)[: (2 if args.quick else None)])]
    return run_dir, [(status, label, kind, items, "mprnet-derain") for label, kind, items in sets]


def run_denoise(args, data) -> tuple[Path, list]:
    run_dir = args.runs / "mprnet-denoise"
    status = C.run_training("mprnet-denoise", [f"data.train.root={C.yaml_value([str(data['PolyU'])])}",
                                               f"data.train.max_images={POLYU_TRAIN}",
                                               *common_overrides(args, args.denoise_steps)],
                            run_dir, steps=args.denoise_steps, label="mprnet-denoise")
    items = C.paired_heldout(data["PolyU"], input="*_real.JPG", target="*_mean.JPG", channels=3,
                             crop=args.eval_crop or None, select=slice(POLYU_TRAIN, POLYU_TRAIN + args.eval_images))
    return run_dir, [(status, f"PolyU held-out (last {len(items)} by name)", "held-out", items, "mprnet-sidd")]


def main() -> None:
    args = parse_args()
    if args.measure:
        print(json.dumps(measure_variant(args.measure, args.size, args.repeats)), flush=True)
        return
    needed = set()
    if "derain" in args.train:
        needed |= {*COLOUR_TRAIN, "Kodak24", "rain-sample"}
    if "denoise" in args.train:
        needed |= {"PolyU"}
    data = C.require_data(*sorted(needed)) if needed else {}

    evaluations, runs = [], {}
    for which, fn in (("derain", run_derain), ("denoise", run_denoise)):
        if which not in args.train:
            continue
        run_dir, sets = fn(args, data)
        runs[f"mprnet-{which}"] = run_dir
        net = C.load_run(run_dir)
        for status, label, kind, items, protocol in sets:
            ev = C.evaluate_items(net, items, protocol=protocol)
            m = ev["mean"]
            evaluations.append({"model": f"mprnet-{which}", "params": C.count_params(net), "steps": status.step,
                                "train_seconds": round(status.wall_time, 1),
                                "s_per_step": status.wall_time / max(1, status.step), "set": label, "kind": kind,
                                "images": len(items), "size": ev["first_size"], "protocol": protocol, **m,
                                "eval_seconds": ev["eval_seconds"], "run_dir": str(run_dir), "per_image": ev["per_image"]})
            C.log(f"mprnet-{which}: {label}: input {m['input_psnr']:.2f} dB / {m['input_ssim']:.4f} -> output "
                  f"{m['psnr']:.2f} dB / {m['ssim']:.4f} ({m['gain']:+.2f} dB)")

    timings = measure_all(args) if args.variants else []

    eval_table = C.md_table(
        ["model", "params", "steps", "train min", "s/step", "test set", "images", "protocol", "input PSNR / SSIM",
         "output PSNR / SSIM", "gain (dB)"],
        [[e["model"], C.fmt_params(e["params"]), e["steps"], C.fmt(e["train_seconds"] / 60, 1), C.fmt(e["s_per_step"], 2),
          e["set"], f"{e['images']} × {e['size'][0]}×{e['size'][1]}", e["protocol"],
          f"{e['input_psnr']:.2f} / {e['input_ssim']:.4f}", f"{e['psnr']:.2f} / {e['ssim']:.4f}", f"{e['gain']:+.2f}"]
         for e in evaluations], numeric={2, 3, 4, 10}) if evaluations else "_no runs selected_"
    time_table = C.md_table(
        ["variant", "params", "s / image", "CPU s / image", "s / MP", "peak RSS (MB)", "peak − loaded model (MB)"],
        [[t["variant"], C.fmt_params(t.get("params")), C.fmt(t.get("seconds")), C.fmt(t.get("cpu_seconds")),
          C.fmt(t.get("s_per_mp")), C.fmt(t.get("peak_rss_mb"), 0), C.fmt(t.get("peak_increase_mb"), 0)]
         if "error" not in t else [t["variant"], "—", "failed: " + t["error"], "", "", "", ""] for t in timings],
        numeric={1, 2, 3, 4, 5, 6}) if timings else "_no variants timed_"
    settings = (f"- Runs: the `mprnet-derain` recipe on {' + '.join(COLOUR_TRAIN)} with synthetic rain streaks, the "
                f"`mprnet-denoise` recipe on the first {POLYU_TRAIN} PolyU pairs by name; {args.steps} and "
                f"{args.denoise_steps} steps, batch {args.batch}, {args.crop}×{args.crop} crops, {args.precision} "
                "training, warm-up + cosine over the steps (10 % warm-up), "
                f"seed {args.seed}, {args.threads} thread(s); the recipes' "
                "losses (Charbonnier + 0.05·edge summed over the 3 stages; Charbonnier on clamped outputs for "
                "denoising). MixUp starts at epoch 5 in mprnet-denoise: a short run does not reach it. Run folders "
                f"under `{C.shown(args.runs)}`.\n"
                f"- Held-out: Kodak24 centre crops ({args.eval_crop or 'whole'}) with rain streaks seeded by file name; "
                f"the rain-sample pairs {'cropped to ' + str(args.real_crop) if args.real_crop else 'whole'}; the last "
                f"PolyU pairs by name, cropped to {args.eval_crop or 'whole'}. Last weights through "
                "`restore_tensor` (fp32), the final stage's output. Protocols: `mprnet-derain` (Y of MATLAB "
                "rgb2ycbcr on uint8), `mprnet-sidd` (float RGB, MATLAB-style SSIM).\n"
                f"- Timing and memory: each variant in a fresh subprocess, random weights, one {args.size}×{args.size} "
                f"RGB image through `restore_tensor` in fp32, {args.threads} thread(s); peak = the process's resident-set "
                "high-water mark (VmHWM, reset after the model and image are built) during the first pass; time = best "
                f"of {args.repeats} later passes (CPU s: the process's CPU time, which other load does not inflate).")
    figures = []
    if runs and C.plot_losses(runs, args.out / "loss.png", title="training loss (Charbonnier + edge, 3 stages)",
                              logy=True):
        figures.append(("loss.png", "training loss of the two short runs"))
    good = [t for t in timings if "error" not in t]
    if good:
        fig, axes = C.new_figure(9, 3.6, 1, 2)
        names = [t["variant"] for t in good]
        axes[0][0].bar(names, [t["seconds"] for t in good], color="C0")
        axes[0][0].set(ylabel="seconds per image", title=f"{args.size}×{args.size}, fp32, {args.threads} thread(s)")
        axes[0][1].bar(names, [t["peak_rss_mb"] for t in good], color="C1")
        axes[0][1].set(ylabel="peak RSS (MB)", title="resident-set high-water mark")
        for ax in axes[0]:
            ax.grid(alpha=0.3, axis="y")
            ax.tick_params(axis="x", labelsize=8)
        C.save_figure(fig, args.out / "speed_memory.png")
        figures.append(("speed_memory.png", "inference time and peak memory of each MPRNet variant"))
    C.write_report(
        args.out, title="MPRNet: short CPU runs, speed and memory",
        intro="Short CPU-sized training runs of MPRNet's deraining and real-noise variants, measured on held-out "
              "and real images, and what each MPRNet variant costs at inference on this CPU.",
        sections=[("Held-out and real images", eval_table), ("Inference time and memory", time_table),
                  ("Settings", settings)],
        data={"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "evaluations": evaluations, "timings": timings},
        figures=figures, quick=args.quick)


if __name__ == "__main__":
    main()

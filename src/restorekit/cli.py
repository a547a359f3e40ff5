"""The ``restorekit`` command: argument parsing and printing only; the work happens in the modules."""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import signal
import sys
import threading
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn, Sequence

from .errors import RestoreKitError

EXAMPLES = {
    "models": """examples:
  restorekit models                  # every model, and where its weights come from
  restorekit models --task derain
  restorekit models mprnet-derain    # its official weights: paper, page, file, sha256, convert command
  restorekit models --json > models.json""",
    "download": """examples:
  restorekit download --list
  restorekit download dncnn-s25-mat  # the authors' sigma=25.mat, checked and converted, into $RESTOREKIT_HOME
  restorekit restore noisy.png -o out/ --weights dncnn-s25-mat""",
    "restore": """examples:
  restorekit restore photo.jpg -o photo-clean.png             # built-in default denoiser
  restorekit restore scans/ -o out/ --recursive --tile 512
  restorekit restore noisy.png -o out/ --weights dncnn-s25-mat  # after `restorekit download dncnn-s25-mat`
  restorekit restore noisy.png -o out/ --weights sigma=25.mat   # an official file, converted in memory
  restorekit restore rainy.png -o out/ --weights model_deraining.pth --precision bf16  # official weights: restorekit models mprnet-derain""",
    "eval": """examples:
  restorekit eval --weights dncnn-s25-mat --data BSD68 --sigma 25   # after `restorekit download dncnn-s25-mat`
  restorekit eval --weights runs/dncnn-s-25/last.safetensors --data Set12 --sigma 25 --out results.json  # after `restorekit train --recipe dncnn-s-25`
  restorekit eval --weights DuRN_P_no_norm_model.pt --data PolyU --protocol durn-rgb  # official weights: restorekit models durn-p-nonorm""",
    "convert": """examples:
  restorekit convert sigma=25.mat dncnn-s25.safetensors             # official file: restorekit models dncnn-s-folded
  restorekit convert net.pth dncnn-s25-saoyan.safetensors           # SaoYan's logs/DnCNN-S-25/net.pth: restorekit models dncnn-s
  restorekit convert model_deraining.pth mprnet-derain.safetensors --format mprnet  # restorekit models mprnet-derain""",
    "info": """examples:
  restorekit info dncnn-s25.safetensors   # written by `restorekit convert` or `restorekit download`""",
    "train": """examples:
  restorekit train --recipe dncnn-s-25
  restorekit train my.yaml --set train.batch_size=64 --set optim.lr=5e-4
  restorekit train --resume runs/dncnn-s-25
  torchrun --nproc_per_node 2 -m restorekit train --recipe dncnn-b""",
    "bench": """examples:
  restorekit bench --models dncnn-s --size 512 512
  restorekit bench --json bench.json""",
    "export": """examples:
  restorekit export dncnn-s-folded --weights dncnn-s25-mat --format onnx -o dncnn.onnx  # after `restorekit download dncnn-s25-mat`
  restorekit export --weights model_deraining.pth --format torchscript -o mprnet.pt      # official weights: restorekit models mprnet-derain""",
    "benchmark": """examples:
  restorekit benchmark --models sigma=25.mat default-gray --sets Set12 BSD68 --sigmas 25 --out report/  # sigma=25.mat: restorekit models dncnn-s-folded
  restorekit benchmark --models durn=DuRN_P_no_norm_model.pt --sets PolyU CC15 --out real-noise/          # restorekit models durn-p-nonorm""",
    "compare": """examples:
  restorekit compare a.png b.png --ref gt.png -o side-by-side.png
  restorekit compare noisy.png restored.png -o slider.html""",
    "report": """examples:
  restorekit report runs/dncnn-s-25       # training curves and samples
  restorekit report report/               # redraw a benchmark's report""",
    "recipes": """examples:
  restorekit recipes""",
}


class _UsageError(Exception):
    """A command line argparse refuses; main() prints it as one line and returns 2."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line on stderr (not the whole usage) and main() returns 2."""

    def error(self, message: str) -> NoReturn:
        import re

        from .registry import did_you_mean

        bad = re.match(r"argument .*: invalid choice: '([^']*)' \(choose from (.*)\)$", message)
        if bad:
            choices = re.findall(r"'([^']*)'", bad.group(2)) or [c.strip() for c in bad.group(2).split(",")]
            message += did_you_mean(bad.group(1), choices, n=1)
        raise _UsageError(self.prog, message)


def _add_max_pixels(p: argparse.ArgumentParser) -> None:
    from .io import DEFAULT_MAX_PIXELS

    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                   help="refuse images of more than N pixels, from their header, before decoding them (guards "
                        f"against decompression bombs; default {DEFAULT_MAX_PIXELS:,}; 0: no limit)")


def _max_pixels(args: argparse.Namespace) -> int | None:
    if args.max_pixels < 0:
        raise RestoreKitError(f"--max-pixels must be a positive number of pixels, or 0 for no limit; not {args.max_pixels}")
    return args.max_pixels or None


def _check_sigma(sigma: float | None) -> None:
    if sigma is not None and not 0 <= sigma <= 255:
        raise RestoreKitError(f"--sigma {sigma:g} is outside 0..255 (the noise level on the 0-255 scale, e.g. 15, 25, 50)")


def _add_inference_args(p: argparse.ArgumentParser, *, precision: str = "auto") -> None:
    g = p.add_argument_group("inference")
    g.add_argument("--tile", type=int, help="process in tiles of this size (bounded memory for large images)")
    g.add_argument("--overlap", type=int, help="tile overlap in pixels (default: from the model's receptive field)")
    g.add_argument("--tiling", choices=["chop", "blend"], default=None,
                   help="how fixed-size models (IPT) cover larger images: chop (the reference's forward_chop, "
                        "which IPT's published numbers use; IPT's default) or blend (tiles of --overlap, ramp-blended)")
    g.add_argument("--tile-batch", type=int, default=None,
                   help="tiles per forward pass (default: 512² pixels' worth on a CPU, 4× that on a GPU)")
    g.add_argument("--ensemble", action="store_true", help="x8 flip/rotation self-ensemble")
    auto = ("bf16 + channels_last on a CUDA GPU with native bf16 (compute capability 8+) and on a CPU with native "
            "bf16 (AMX or AVX512-BF16, from /proc/cpuinfo), fp32 elsewhere")
    default = (f"auto (default): {auto}; fp32 opts out" if precision == "auto" else
               f"fp32 (default: the precision the published numbers were measured in), or auto: {auto}")
    g.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default=precision,
                   help=f"{default}. The one that ran is printed with the results")
    g.add_argument("--channels-last", action="store_true",
                   help="channels_last memory layout in fp32 too (bf16 and fp16 always use it)")
    g.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, cuda:1, mps")
    g.add_argument("--task", help="task of a multi-task model (e.g. sr-x2 for IPT or DnCNN-3, jpeg for DnCNN-3)")
    g.add_argument("--color", choices=["y", "per-channel"], default="y",
                   help="a colour image through a gray model: restore its luminance, chroma kept (y, default), "
                        "or each of R, G, B (per-channel)")


def _inference_options(args: argparse.Namespace) -> Any:
    from .inference import InferenceOptions

    return InferenceOptions(tile=args.tile, overlap=args.overlap, tiling=args.tiling, tile_batch=args.tile_batch,
                            ensemble=args.ensemble, precision=args.precision, channels_last=args.channels_last,
                            device=args.device, task=args.task, color=args.color)


def _add_model_args(p: argparse.ArgumentParser, *, required: bool = False) -> None:
    p.add_argument("--model", help="registered architecture name (optional when the weights name it)")
    p.add_argument("--weights", required=required,
                   help="restorekit .safetensors, an official checkpoint (.mat/.pth, converted in memory) or a built-in name")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="restorekit",
        description="Deep-learning image restoration: denoising, deblurring, deraining, dehazing, super-resolution.",
        epilog="Run `restorekit COMMAND --help` for a command's options and examples.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"restorekit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, help_: str, fn: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_, epilog=EXAMPLES.get(name),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=fn)
        return p

    p = add("models", "list the registered models with their metadata and where their weights come from", cmd_models)
    p.add_argument("name", nargs="?", metavar="NAME",
                   help="one model (or official release): its details, its official weights and how to get and convert them")
    p.add_argument("--task", help="only models for this task")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = add("restore", "restore images (files, folders or glob patterns)", cmd_restore)
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    p.add_argument("-o", "--output", required=True,
                   help="output file (one input) or folder. In a folder, names are kept, but JPEG and WebP inputs "
                        "are written as <stem>.png (lossless, the input's bit depth: never a second JPEG generation); "
                        "an output file named .jpg is written at JPEG quality 95 (4:4:4 chroma)")
    _add_model_args(p)
    p.add_argument("--sigma", type=float, help="noise level on the 0-255 scale; ignored, with a warning: every restorekit denoiser is blind")
    p.add_argument("--recursive", action="store_true", help="descend into sub-folders")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--skip-existing", action="store_true", help="skip inputs whose output exists (continue a batch)")
    p.add_argument("--bit-depth", type=int, choices=[8, 16], help="output bit depth (default: the input's)")
    _add_max_pixels(p)
    _add_inference_args(p)

    p = add("eval", "evaluate a model on a test set (PSNR/SSIM per image and mean)", cmd_eval)
    _add_model_args(p)
    p.add_argument("--data", required=True, help="folder, or a named set: Set12, BSD68, CBSD68, Kodak24, McMaster, PolyU, CC15, …; "
                   "a slice of it by name order: 'PolyU[80:]'")
    p.add_argument("--sigma", type=float, help="add Gaussian noise of this level (0-255 scale) to clean images")
    p.add_argument("--jpeg", type=int, metavar="QUALITY", help="JPEG-compress clean images at this quality (1-100), "
                   "e.g. --task jpeg --jpeg 10 for DnCNN-3; a super-resolution task (--task sr-x3) downscales clean "
                   "images with MATLAB's bicubic by its factor, no option needed")
    p.add_argument("--protocol", help="metric convention (default: the model's paper's, else its task's); see restorekit.metrics.PROTOCOLS")
    p.add_argument("--crop-border", type=int, help="pixels cropped from each side before measuring (default: the "
                   "scale for super-resolution, else 0)")
    p.add_argument("--seed", type=int, default=0, help="base seed of the noise (per image, from its name)")
    p.add_argument("--repeats", type=int, default=1, help="noise draws per image, metrics averaged")
    p.add_argument("--clip-noise", action="store_true", help="clip the noisy image to [0, 1]")
    p.add_argument("--out", help="write results to .json or .csv")
    p.add_argument("--overwrite", action="store_true")
    _add_max_pixels(p)
    _add_inference_args(p, precision="fp32")

    p = add("convert", "convert an official checkpoint (.mat, .pth) to restorekit's format", cmd_convert)
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--format", dest="fmt", help="force a converter (default: detected)")
    p.add_argument("--overwrite", action="store_true")

    p = add("download", "download official weights (checked by sha256) and convert them to restorekit's format",
            cmd_download)
    p.add_argument("name", nargs="?", metavar="NAME", help="an official release (see --list, or `restorekit models MODEL`)")
    p.add_argument("--list", action="store_true", help="list the releases that can be downloaded, and which are cached")
    p.add_argument("--force", action="store_true", help="fetch and convert again, even when cached")

    p = add("info", "print a checkpoint's metadata", cmd_info)
    p.add_argument("checkpoint")

    p = add("train", "train a model from a YAML config or a shipped recipe", cmd_train)
    p.add_argument("config", nargs="?", help="YAML config file")
    p.add_argument("--recipe", help="a shipped recipe name (see `restorekit recipes`) or a path")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (repeatable)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
    p.add_argument("--allow-config-change", action="store_true", help="resume even if the config differs")

    add("recipes", "list the shipped training recipes", cmd_recipes)

    p = add("bench", "measure inference speed, FLOP/s against this machine's peak, and memory", cmd_bench)
    p.add_argument("--models", nargs="*", help="models to measure (default: a representative set)")
    p.add_argument("--size", nargs=2, type=int, default=[512, 512], metavar=("H", "W"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", help="also write the rows to this JSON file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file")

    p = add("benchmark", "evaluate models on standard test sets against the published numbers; HTML/Markdown report",
            cmd_benchmark)
    p.add_argument("--models", nargs="*", default=[], metavar="SPEC",
                   help="weights (.safetensors, official .mat/.pth, or a built-in name), optionally LABEL=WEIGHTS")
    p.add_argument("--sets", nargs="*", default=[], help="folders or named sets (default: those found); 'PolyU[80:]' takes a slice of a set (by name order)")
    p.add_argument("--sigmas", nargs="*", type=float, help="noise levels for clean sets (default 15 25 50)")
    p.add_argument("--out", required=True, help="output folder (results are resumable)")
    p.add_argument("--protocol", help="metric protocol for every model (default: each model's own, flagged in the report where they differ)")
    p.add_argument("--no-resume", action="store_true", help="recompute finished cells")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--clip-noise", action="store_true")
    p.add_argument("--crop-border", type=int, default=0)
    _add_inference_args(p, precision="fp32")

    p = add("compare", "side-by-side image (or HTML slider) of two images with metrics", cmd_compare)
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--ref", help="ground truth: shown as a third panel (in the slider: below, and switchable to the "
                                 "right side), with PSNR/SSIM of A and B against it")
    p.add_argument("-o", "--output", required=True, help=".png side by side, or .html slider")
    p.add_argument("--labels", nargs=2)
    p.add_argument("--overwrite", action="store_true")

    p = add("report", "report of a training run folder or a benchmark folder", cmd_report)
    p.add_argument("path")
    p.add_argument("-o", "--output")

    p = add("export", "export a model to ONNX or TorchScript, checked against PyTorch", cmd_export)
    p.add_argument("model", nargs="?", help="architecture name (optional when the weights name it)")
    p.add_argument("--weights")
    p.add_argument("--format", choices=["onnx", "torchscript"], default="onnx")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--image", help="real image to compare the exported model with PyTorch on")
    p.add_argument("--overwrite", action="store_true")
    return parser


def cmd_models(args: argparse.Namespace) -> int:
    import torch

    from .checkpoints import checkpoint_metadata
    from .models import count_parameters, create_model, list_models, model_info
    from .pretrained import available_builtins, builtin_path
    from .weights_catalog import RELEASES, releases_for, weights_summary

    builtins: dict[str, list[str]] = {}  # architecture -> its built-in weights, read from the shipped files
    for b in available_builtins():
        meta = checkpoint_metadata(builtin_path(b))
        extra = ", ".join(f"{k}={v}" for k, v in meta["args"].items())
        builtins.setdefault(meta["arch"], []).append(f"{b} ({extra})" if extra else b)
    if args.name is not None:
        return _print_model_details(args.name, builtins, as_json=args.json)
    if args.task is not None and not list_models(task=args.task):
        from .registry import did_you_mean

        from .models.registry import all_tasks

        tasks = all_tasks()
        raise RestoreKitError(f"no model for task {args.task!r}{did_you_mean(args.task, tasks, n=1)} "
                              f"(tasks: {', '.join(tasks)})")
    rows = []
    for name in list_models(task=args.task):
        info = model_info(name)
        if info.params is None:
            with torch.device("meta"):  # counts without allocating or initialising weights
                params = count_parameters(create_model(name))
        weights = {"summary": weights_summary(name, builtins.get(name, ())), "builtin": builtins.get(name, []),
                   "official": [r.to_dict() for r in releases_for(name)]}
        rows.append({"name": name, "task": info.task, "channels": info.channels, "params": info.params or params,
                     "input_range": info.input_range, "size_multiple": info.size_multiple, "scale": info.scale,
                     "description": info.description, "weights": weights})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len("weights"), *(len(r["weights"]["summary"]) for r in rows))
    print(f"{'name':<18} {'task':<12} {'ch':>2} {'params':>12} {'range':>6} {'mult':>4}  {'weights':<{width}}  description")
    for r in rows:
        params = f"{r['params']:,}" if r["params"] else "-"
        print(f"{r['name']:<18} {r['task']:<12} {r['channels']:>2} {params:>12} {r['input_range']:>6g} {r['size_multiple']:>4}  "
              f"{r['weights']['summary']:<{width}}  {r['description']}")
    n = sum(1 for r in RELEASES.values() if r.downloadable)
    print(f"\nweights: built-in ships with restorekit; download: `restorekit download NAME` fetches it ({n} releases); "
          "official: the authors' file, to download from their page; `restorekit models NAME` shows a model's "
          "releases, checksums and convert commands")
    return 0


def _print_model_details(name: str, builtins: dict[str, list[str]], *, as_json: bool) -> int:
    """``restorekit models NAME``: one model, or one official release, with where its weights come from."""
    from .models import list_models, model_info
    from .registry import did_you_mean
    from .weights_catalog import RELEASES, Release, releases_for

    models = list_models()
    if name.lower() in models:
        info = model_info(name)
        releases = releases_for(info.name)
    elif name in RELEASES:
        info, releases = None, [RELEASES.get(name)]
    else:
        hint = did_you_mean(name, models + RELEASES.names())
        raise RestoreKitError(f"unknown model {name!r}{hint or '; `restorekit models` lists them'}")
    own = builtins.get(info.name, []) if info else []
    if as_json:
        out: dict[str, Any] = {"official": [r.to_dict() for r in releases]}
        if info is not None:
            out = {"name": info.name, "task": info.task, "channels": info.channels, "params": info.params,
                   "paper": info.paper, "description": info.description, "builtin": own, **out}
        print(json.dumps(out, indent=2))
        return 0

    def show(r: Release) -> None:
        size = f" ({r.size:,} bytes)" if r.size else ""
        print(f"  {r.name}: {r.description}")
        rows = [("loads into", ", ".join(r.variants)), ("paper", r.paper), ("file", r.file + size),
                ("sha256", r.sha256 or "unknown (restorekit has not checked this file)"), ("page", r.page),
                ("source", r.source), ("licence", r.license), ("note", r.note)]
        if r.downloadable:
            rows.append(("get", f"restorekit download {r.name}   (then --weights {r.name})"))
        else:
            rows.append(("get", f"download {r.file} from the page" + (f" ({r.url})" if r.url else "")))
        rows.append(("convert", r.convert_command() + "   (or pass the file itself with --weights)"))
        for key, value in rows:
            if value:
                print(f"    {key + ':':<11} {value}")

    if info is not None:
        print(f"{info.name}: {info.description}")
        params = f"{info.params:,} parameters, " if info.params else ""
        print(f"  task {info.task}, {info.channels} channel(s), {params}input range {info.input_range:g}")
        if info.paper:
            print(f"  paper: {info.paper}")
        print("weights:")
        for b in own:
            print(f"  built-in: {b}   (--weights {b.split()[0]})")
        if not own and not releases:
            print("  none built in, and no official release: train it (`restorekit recipes`) or pass --weights FILE")
    for r in releases:
        show(r)
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from .inference import BatchInterrupted, check_options, plan_outputs, restore_files

    # arguments first: a bad one fails before any file is listed, read or written
    _check_sigma(args.sigma)
    if args.sigma is not None:
        warnings.warn(f"--sigma {args.sigma:g} is ignored: restorekit's denoisers are blind (they estimate the "
                      "noise level themselves); the output is the same without it")
    max_pixels = _max_pixels(args)
    options = _inference_options(args)
    check_options(options)
    jobs = plan_outputs(args.inputs, args.output, recursive=args.recursive, overwrite=args.overwrite,
                        skip_existing=args.skip_existing)
    try:
        report = restore_files(jobs, model=args.model, weights=args.weights, options=options,
                               bit_depth=args.bit_depth, overwrite=args.overwrite, max_pixels=max_pixels)
    except BatchInterrupted as exc:
        r = exc.report
        print(r.summary())
        print(f"restorekit restore: interrupted after {len(r.done)} of {exc.total} images ({len(r.failed)} failed); "
              "the finished outputs are kept and no partial files are left; to continue, run the same command "
              "with --skip-existing", file=sys.stderr)
        return 130
    print(report.summary())
    return 0 if not report.failed else 1


def cmd_eval(args: argparse.Namespace) -> int:
    from .eval.evaluate import EvalSettings, check_synthesis, default_protocol, evaluate, format_table
    from .io import pixel_limit
    from .pretrained import resolve_model
    from .inference import check_options, describe_precision, model_spec, resolve_device, resolved_options

    if args.out and Path(args.out).exists() and not args.overwrite:
        raise RestoreKitError(f"{args.out}: exists; pass --overwrite to replace it")
    if args.out and Path(args.out).suffix.lower() not in (".json", ".csv"):
        raise RestoreKitError(f"{args.out}: results are written as .json or .csv")
    _check_sigma(args.sigma)
    check_synthesis(args.sigma, args.jpeg, 1)
    max_pixels = _max_pixels(args)
    options = _inference_options(args)
    check_options(options)
    model = resolve_model(args.model, args.weights, channels=None if args.weights or args.model else 1)
    check_options(options, model=model)
    scale = model_spec(model, args.task).scale
    check_synthesis(args.sigma, args.jpeg, scale)
    ran = describe_precision(options, resolve_device(options.device))
    options = resolved_options(options)  # results record what ran: "bf16", not "auto"
    settings = EvalSettings(data=args.data, sigma=args.sigma, seed=args.seed, repeats=args.repeats,
                            clip_noise=args.clip_noise, jpeg=args.jpeg, scale=scale,
                            protocol=args.protocol or default_protocol(model.info),
                            crop_border=(scale if scale > 1 else 0) if args.crop_border is None else args.crop_border,
                            model=model.info.name, weights=str(args.weights or ""),
                            inference={"tile": args.tile, "ensemble": args.ensemble, "precision": options.precision})
    with pixel_limit(max_pixels):
        result = evaluate(model, settings, options)
    print(format_table(result))
    print(f"precision: {ran}")
    if args.out:
        print(f"wrote {result.write(args.out, overwrite=args.overwrite)}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from .convert import convert_checkpoint

    conv = convert_checkpoint(args.src, args.dst, fmt=args.fmt, overwrite=args.overwrite)
    n = sum(v.numel() for v in conv.state_dict.values() if v.is_floating_point())
    print(f"{args.src}: {conv.source_format} -> {conv.arch} {conv.args or ''} ({n:,} values) -> {args.dst}")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from .download import cache_home, converted_path, download
    from .weights_catalog import RELEASES

    if args.list:
        rows = [r for r in RELEASES.values() if r.downloadable]
        print(f"{'name':<18} {'loads into':<16} {'size':>9}  {'cached':<6}  source")
        for r in rows:
            size = f"{r.size / 2**20:.1f} MiB" if r.size else "-"
            cached = "yes" if converted_path(r.name).is_file() else "-"
            print(f"{r.name:<18} {', '.join(r.variants):<16} {size:>9}  {cached:<6}  {r.source}")
        print(f"\ncache: {cache_home()} (set $RESTOREKIT_HOME to move it); {len(RELEASES) - len(rows)} more official "
              "releases have no direct URL: `restorekit models` says where they are")
        return 0
    if args.name is None:
        raise RestoreKitError("name the official weights to download; `restorekit download --list` lists them")
    path = download(args.name, force=args.force)
    print(f"{args.name}: {path}")
    print(f"use it with --weights {args.name}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .checkpoints import checkpoint_metadata

    print(json.dumps(checkpoint_metadata(args.checkpoint), indent=2))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .train import Interrupted, train

    if not (args.config or args.recipe or args.resume):
        raise RestoreKitError("give a CONFIG.yaml, --recipe NAME or --resume RUN_DIR")
    try:
        run_dir = train(args.config, recipe=args.recipe, overrides=args.overrides, resume=args.resume,
                        allow_config_change=args.allow_config_change)
    except Interrupted as exc:  # saved: the shell's 128 + signal number says how it ended (130 for Ctrl-C)
        print(f"run folder: {exc.run_dir} (stopped at step {exc.step}; resume with: "
              f"restorekit train --resume {shlex.quote(str(exc.run_dir))})", file=sys.stderr)
        return 128 + exc.signum
    print(f"run folder: {run_dir}")
    return 0


def cmd_recipes(args: argparse.Namespace) -> int:
    from .recipes import describe_recipes

    print(describe_recipes())
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .eval.speed import format_table, run_bench, write_json

    if args.json and Path(args.json).exists() and not args.overwrite:
        raise RestoreKitError(f"{args.json}: exists; pass --overwrite to replace it")
    rows = run_bench(args.models or None, size=tuple(args.size), device=args.device)
    print(format_table(rows))
    if args.json:
        write_json(rows, args.json, overwrite=args.overwrite)
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    from .eval.benchmark import run_benchmark
    from .eval.results import format_summary
    from .report import write_report

    results = run_benchmark(args.models, args.sets, args.sigmas, args.out, protocol=args.protocol,
                            options=_inference_options(args), resume=not args.no_resume, seed=args.seed,
                            repeats=args.repeats, clip_noise=args.clip_noise, crop_border=args.crop_border,
                            command="restorekit " + shlex.join(args.argv))
    write_report(results)
    print(format_summary(results))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .report.compare import compare_images

    result = compare_images(args.a, args.b, ref=args.ref, out=args.output,
                            labels=tuple(args.labels) if args.labels else None, overwrite=args.overwrite)
    print(result.summary())
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import report_folder

    print(f"wrote {report_folder(args.path, args.output)}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_model
    from .io import image_to_tensor, read_image
    from .pretrained import resolve_model

    if Path(args.output).exists() and not args.overwrite:
        raise RestoreKitError(f"{args.output}: exists; pass --overwrite to replace it")
    if args.weights is None:
        from .models import create_model

        if not args.model:
            raise RestoreKitError("give a model name or --weights")
        model = create_model(args.model)
        warnings.warn(f"exporting {args.model} with untrained weights (no --weights given)")
    else:
        model = resolve_model(args.model, args.weights)
    example = image_to_tensor(read_image(args.image, channels=model.info.channels).pixels) if args.image else None
    result = export_model(model, args.output, format=args.format, example=example, overwrite=args.overwrite)
    print(f"exported {model.info.name} to {result['path']} ({args.format}); max abs difference vs PyTorch: {result['max_abs_diff']:.3g}")
    return 0


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt, as Ctrl-C does, so that a command stopped by ``kill`` cleans
    up the same way (temporary files removed, finished outputs kept). Training installs its own."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        print(f"{exc.prog}: error: {exc}; see `{exc.prog} --help`", file=sys.stderr)
        return 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded by commands that write reports
    warnings.formatwarning = lambda msg, cat, *a, **k: f"warning: {msg}\n"
    try:
        with _sigterm_interrupts():
            return args.func(args)
    except RestoreKitError as exc:
        print(f"restorekit {args.command}: error: {exc.for_cli()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"restorekit {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `restorekit models --json | head`: the reader has what it wanted
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 0

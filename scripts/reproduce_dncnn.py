"""Reproduce the DnCNN table of ../shared/README.md with the official weights, and the xUnit
authors' released xDnCNN (xdncnn-2018) on BSD68: the same thing as
`restorekit eval --weights W --data SET --sigma S` for each cell, printed as one Markdown table.

    python scripts/reproduce_dncnn.py [--out results/]      # about an hour on a 2-core CPU
"""

from __future__ import annotations

import argparse
from pathlib import Path

from restorekit.eval.datasets import data_roots
from restorekit.eval.evaluate import EvalSettings, evaluate
from restorekit.pretrained import load_weights

_MCN = "dncnn-matconvnet"
# (folder under the weights dir, weights file, set, sigma, reference value from ../shared/README.md)
CELLS = [
    *[(_MCN, f"sigma={s}.mat", d, s, ref) for s, d, ref in [
        (15, "Set12", 32.864), (15, "BSD68", 31.731), (25, "Set12", 30.445), (25, "BSD68", 29.224),
        (50, "Set12", 27.193), (50, "BSD68", 26.223)]],
    *[(_MCN, "GD_Gray_Blind.mat", d, s, ref) for s, d, ref in [
        (15, "Set12", 32.688), (15, "BSD68", 31.613), (25, "Set12", 30.368), (25, "BSD68", 29.159),
        (50, "Set12", 27.207), (50, "BSD68", 26.215)]],
    (_MCN, "GD_Color_Blind.mat", "CBSD68", 25, 31.22),
    # the xUnit authors' released xDnCNN (converted as xdncnn-2018); paper: 29.21 / 26.26
    ("xunit-2018", "xdncnn_res_f64k3k9_s25.pkl", "BSD68", 25, 29.225),
    ("xunit-2018", "xdncnn_res_f64k3k9_s50.pkl", "BSD68", 50, 26.265),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights-dir", default=None,
                    help="folder holding dncnn-matconvnet/ and xunit-2018/ (default ../shared/weights)")
    ap.add_argument("--out", default=None, help="also write each cell's JSON here")
    args = ap.parse_args()
    roots = data_roots()
    wdir = Path(args.weights_dir) if args.weights_dir else (roots[0].parent / "weights" if roots else None)
    if wdir is None or not (wdir / _MCN).is_dir():
        raise SystemExit(f"skipped: ../shared/weights/{_MCN} not found (pass --weights-dir)")
    print("| weights | set | σ | PSNR (restorekit) | reference | difference | SSIM |")
    print("|---|---|---|---|---|---|---|")
    for folder, fname, data, sigma, ref in CELLS:
        if not (wdir / folder / fname).is_file():
            print(f"| {fname} | {data} | {sigma} | skipped: {wdir / folder / fname} not found | {ref:.3f} | | |", flush=True)
            continue
        model = load_weights(wdir / folder / fname)
        result = evaluate(model, EvalSettings(data=data, sigma=sigma, model=model.info.name, weights=fname))
        m = result.mean
        if args.out:
            result.write(Path(args.out) / f"{Path(fname).stem}_{data}_{sigma}.json", overwrite=True)
        print(f"| {fname} | {data} | {sigma} | {m['psnr']:.3f} | {ref:.3f} | {m['psnr'] - ref:+.3f} | {m['ssim']:.4f} |", flush=True)


if __name__ == "__main__":
    main()

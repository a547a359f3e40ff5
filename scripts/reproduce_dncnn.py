"""Reproduce the DnCNN table of ../shared/README.md with the official weights: the same thing as
`restorekit eval --weights W --data SET --sigma S` for each cell, printed as one Markdown table.

    python scripts/reproduce_dncnn.py [--out results/]      # about an hour on a 2-core CPU
"""

from __future__ import annotations

import argparse
from pathlib import Path

from restorekit.eval.datasets import data_roots
from restorekit.eval.evaluate import EvalSettings, evaluate
from restorekit.pretrained import load_weights

# (weights file, set, sigma, reference value from ../shared/README.md)
CELLS = [
    *[(f"sigma={s}.mat", d, s, ref) for s, d, ref in [
        (15, "Set12", 32.864), (15, "BSD68", 31.731), (25, "Set12", 30.445), (25, "BSD68", 29.224),
        (50, "Set12", 27.193), (50, "BSD68", 26.223)]],
    *[("GD_Gray_Blind.mat", d, s, ref) for s, d, ref in [
        (15, "Set12", 32.688), (15, "BSD68", 31.613), (25, "Set12", 30.368), (25, "BSD68", 29.159),
        (50, "Set12", 27.207), (50, "BSD68", 26.215)]],
    ("GD_Color_Blind.mat", "CBSD68", 25, 31.22),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights-dir", default=None, help="folder of the MatConvNet files (default ../shared/weights/dncnn-matconvnet)")
    ap.add_argument("--out", default=None, help="also write each cell's JSON here")
    args = ap.parse_args()
    roots = data_roots()
    wdir = Path(args.weights_dir) if args.weights_dir else (roots[0].parent / "weights" / "dncnn-matconvnet" if roots else None)
    if wdir is None or not wdir.is_dir():
        raise SystemExit("skipped: ../shared/weights/dncnn-matconvnet not found (pass --weights-dir)")
    print("| weights | set | σ | PSNR (restorekit) | reference | difference | SSIM |")
    print("|---|---|---|---|---|---|---|")
    for fname, data, sigma, ref in CELLS:
        model = load_weights(wdir / fname)
        result = evaluate(model, EvalSettings(data=data, sigma=sigma, model=model.info.name, weights=fname))
        m = result.mean
        if args.out:
            result.write(Path(args.out) / f"{Path(fname).stem}_{data}_{sigma}.json", overwrite=True)
        print(f"| {fname} | {data} | {sigma} | {m['psnr']:.3f} | {ref:.3f} | {m['psnr'] - ref:+.3f} | {m['ssim']:.4f} |", flush=True)


if __name__ == "__main__":
    main()

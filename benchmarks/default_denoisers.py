"""The built-in denoisers as a user meets them, beside a reference model, in one run: PSNR on noisy
8-bit images (noise added, then rounded and clipped to 0..255, as a saved noisy photo is) and the
PSNR of restoring a clean image (a clean photo should pass through almost unchanged).

    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/default_denoisers.py --models default-gray \
        ../shared/weights/dncnn-matconvnet/GD_Gray_Blind.mat --set Kodak24 --channels 1
"""

from __future__ import annotations

import argparse
import statistics

import torch

from restorekit.degradations.noise import add_named_gaussian_noise
from restorekit.eval.datasets import dataset_samples
from restorekit.inference import InferenceOptions, restore_tensor
from restorekit.io import image_to_tensor, read_image
from restorekit.metrics import psnr
from restorekit.pretrained import load_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", required=True, help="built-in names or weight files")
    parser.add_argument("--set", default="Kodak24", help="a named set or folder of clean images")
    parser.add_argument("--channels", type=int, default=1, choices=(1, 3))
    parser.add_argument("--sigmas", type=float, nargs="+", default=[15, 25, 50])
    parser.add_argument("--limit", type=int, default=None, help="only the first N images")
    args = parser.parse_args()

    _, samples = dataset_samples(args.set)
    samples = samples[: args.limit]
    cleans = [(s.name, image_to_tensor(read_image(s.target, channels=args.channels).pixels)) for s in samples]
    noisy = {sigma: [(add_named_gaussian_noise(c, sigma, n).clamp(0, 1) * 255).round() / 255 for n, c in cleans]
             for sigma in args.sigmas}
    options = InferenceOptions(precision="fp32", device="cpu")
    print(f"{args.set}, {len(cleans)} images, channels {args.channels}; PSNR in dB (protocol dncnn)")
    header = ["model", "clean in"] + [f"8-bit σ{s:g} in → out" for s in args.sigmas]
    print(" | ".join(header))
    for spec in args.models:
        model = load_weights(spec)
        with torch.no_grad():
            passthrough = statistics.fmean(float(psnr(restore_tensor(model, c, options), c, protocol="dncnn"))
                                           for _, c in cleans)
            cells = []
            for sigma in args.sigmas:
                ins = statistics.fmean(float(psnr(x, c, protocol="dncnn")) for x, (_, c) in zip(noisy[sigma], cleans))
                outs = statistics.fmean(float(psnr(restore_tensor(model, x, options), c, protocol="dncnn"))
                                        for x, (_, c) in zip(noisy[sigma], cleans))
                cells.append(f"{ins:.2f} → {outs:.2f}")
        print(" | ".join([spec.split("/")[-1], f"{passthrough:.2f}"] + cells))


if __name__ == "__main__":
    main()

"""Make the bundled sample images: a synthetic scene (ours, no third-party content), clean and with
Gaussian noise σ=25, gray and colour. Deterministic; run once, commit the PNGs (a few hundred KB)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from restorekit.degradations.noise import add_named_gaussian_noise
from restorekit.io import write_image


def scene(h: int = 256, w: int = 320, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    img = np.stack([0.25 + 0.5 * x, 0.35 + 0.3 * y, 0.6 - 0.3 * x * y], -1)  # smooth sky-like gradient
    for _ in range(14):  # discs and boxes with sharp edges
        cy, cx, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.04, 0.16)
        colour = rng.uniform(0.05, 0.95, 3)
        mask = ((y - cy) ** 2 + ((x - cx) * w / h) ** 2 < r * r) if rng.random() < 0.5 else (
            (abs(y - cy) < r) & (abs(x - cx) < r * 1.4))
        img[mask] = colour
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * (x * 24 + y * 6))  # fine texture, hard for denoisers
    band = (y > 0.78) & (y < 0.92)
    img[band] = (0.2 + 0.6 * stripes[band])[:, None] * np.array([0.9, 0.8, 0.6])
    return np.clip(img, 0, 1).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="src/restorekit/samples")
    out = Path(ap.parse_args().out)
    rgb = scene()
    gray = (rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
    for name, clean in (("gray", gray), ("color", rgb)):
        t = torch.from_numpy(clean).permute(2, 0, 1)[None]
        noisy = add_named_gaussian_noise(t, 25, f"sample-{name}", clip=True)[0].permute(1, 2, 0).numpy()
        write_image(out / f"clean-{name}.png", clean, overwrite=True)
        write_image(out / f"noisy-{name}.png", noisy, overwrite=True)
    print(f"wrote samples to {out}")


if __name__ == "__main__":
    main()

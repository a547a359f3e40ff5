"""Render one row of every synthetic degradation on the same image, for docs/degradations.md.

    PYTHONPATH=src python scripts/degradation_gallery.py [--image PATH] [--out docs/images/degradations.png]

Without ``--image`` it draws its own synthetic scene, so the committed picture needs no data set.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from restorekit.degradations.blur import motion_blur  # noqa: E402
from restorekit.degradations.haze import haze  # noqa: E402
from restorekit.degradations.jpeg import jpeg_compress  # noqa: E402
from restorekit.degradations.rain import rain_streaks, raindrops  # noqa: E402
from restorekit.degradations.sr import bicubic_downsample, bicubic_upsample  # noqa: E402


def synthetic_scene(size: int = 192, seed: int = 0) -> torch.Tensor:
    """An outdoor-looking RGB test scene (3×size×size in [0, 1]): sky, sun, hills, a house, a fence and
    a checkerboard sign, i.e. smooth areas, sharp edges and fine periodic detail."""
    rng = np.random.default_rng(seed)
    s = size
    yy, xx = np.mgrid[0:s, 0:s] / s
    img = np.zeros((s, s, 3))
    img[:] = np.stack([0.35 + 0.4 * yy, 0.55 + 0.35 * yy, 0.95 - 0.1 * yy], -1)  # sky, paler at the horizon
    sun = (xx - 0.8) ** 2 + (yy - 0.18) ** 2 < 0.006
    img[sun] = (1.0, 0.93, 0.6)
    hill = yy > 0.55 + 0.08 * np.sin(7 * xx + 1) + 0.04 * np.sin(17 * xx)
    grass = np.stack([0.25 + 0.1 * yy, 0.5 - 0.15 * yy, 0.2 + 0.0 * yy], -1)
    grass += 0.05 * rng.standard_normal((s, s, 1))
    img[hill] = grass[hill]
    house = (xx > 0.12) & (xx < 0.42) & (yy > 0.45) & (yy < 0.78)
    img[house] = (0.82, 0.72, 0.55)
    roof = (yy <= 0.45) & (yy > 0.3) & (np.abs(xx - 0.27) < (yy - 0.3) * 1.2)
    img[roof] = (0.6, 0.15, 0.12)
    for wx in (0.17, 0.31):
        win = (xx > wx) & (xx < wx + 0.07) & (yy > 0.52) & (yy < 0.6)
        img[win] = (0.15, 0.2, 0.3)
    door = (xx > 0.245) & (xx < 0.295) & (yy > 0.64) & (yy < 0.78)
    img[door] = (0.35, 0.2, 0.1)
    fence = (yy > 0.8) & (yy < 0.9) & (((xx * s) % 8) < 2) & (xx > 0.5)
    img[fence] = (0.95, 0.95, 0.92)
    rail = (np.abs(yy - 0.83) < 0.006) & (xx > 0.5)
    img[rail] = (0.95, 0.95, 0.92)
    sign = (xx > 0.6) & (xx < 0.8) & (yy > 0.45) & (yy < 0.6)
    checker = ((np.floor(xx * s / 4) + np.floor(yy * s / 4)) % 2).astype(float)
    img[sign] = np.stack([checker, checker, checker], -1)[sign] * 0.9 + 0.05
    return torch.from_numpy(img.clip(0, 1).transpose(2, 0, 1).copy()).float()


def load_image(path: Path, size: int) -> torch.Tensor:
    """Centre-crop ``path`` to a square and resize it to ``size`` (3×size×size in [0, 1])."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        side = min(im.size)
        left, top = (im.width - side) // 2, (im.height - side) // 2
        im = im.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BICUBIC)
        arr = np.asarray(im, dtype=np.float32) / 255
    return torch.from_numpy(arr.transpose(2, 0, 1).copy())


def gallery(clean: torch.Tensor, seed: int = 0) -> list[tuple[str, torch.Tensor]]:
    def gen(offset: int) -> torch.Generator:
        return torch.Generator().manual_seed(seed + offset)

    s = clean.shape[-1] - clean.shape[-1] % 4
    clean = clean[:, :s, :s]
    return [
        ("clean", clean),
        ("motion blur", motion_blur(clean, generator=gen(1), kernel_size=25, length_range=(15, 30))),
        ("haze", haze(clean, generator=gen(2), beta_range=(1.2, 1.2))),
        ("rain streaks", rain_streaks(clean, generator=gen(3))),
        ("raindrops", raindrops(clean, generator=gen(4), count_range=(12, 12))),
        ("JPEG q=10", jpeg_compress(clean, 10)),
        ("bicubic ×4 down+up", bicubic_upsample(bicubic_downsample(clean, 4), 4)),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, help="an RGB image to use instead of the synthetic scene")
    parser.add_argument("--out", type=Path, default=Path("docs/images/degradations.png"))
    parser.add_argument("--size", type=int, default=192, help="panel side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    clean = load_image(args.image, args.size) if args.image else synthetic_scene(args.size)
    panels = gallery(clean, args.seed)
    fig, axes = plt.subplots(1, len(panels), figsize=(1.9 * len(panels), 2.2))
    for ax, (title, im) in zip(axes, panels):
        ax.imshow(im.clamp(0, 1).permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout(pad=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    buf.seek(0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(buf) as im:
        rgb = im.convert("RGB")
        rgb.save(args.out, optimize=True)
        if args.out.stat().st_size > 400_000:  # the picture is committed: fall back to a palette PNG
            rgb.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
                args.out, optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()

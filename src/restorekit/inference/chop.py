"""IPT's tiled-inference protocol: the reference's ``forward_chop`` (huawei-noah/Pretrained-IPT,
``model/__init__.py``), with which IPT's published numbers were measured. ``tiling="chop"``
(``--tiling chop``) selects it for any fixed-size model; it is IPT's default.

For a model that takes exactly P×P inputs (IPT: P = 48) and scales by s:

- grid windows of P pixels every ``step = P // 4`` pixels (the reference overrides its ``shave=12``
  default with ``shave = P/2`` = 24 and advances by ``shave/2`` = 12), as many as fit; the last
  ``cut = (H − P) mod step`` rows (columns) are left to a last row (column) of windows at H − P (W − P);
- of each grid window only the centre is kept, a margin of ``e = step·s`` output pixels cut on each
  side except along the image border, and where centres overlap they are averaged;
- the last row and column of windows are combined the same way along the border, and the output
  switches to them ``⌊(P − cut)·s/2⌋`` output pixels before the grid's end (half-way through their
  overlap with it), with the bottom-right window in the corner;
- one quirk kept: the first ``e`` rows of the first P·s output columns are the top-left window's
  alone (the reference writes its left strip over its top strip).

Equal to the reference up to float summation order (≤ 1e-6 on [0, 1] images) for every image of at
least P×P, odd sizes and SR scales included, when P is a multiple of 4 (IPT's 48; for other P the
reference's arithmetic does not fit together and the window step is P // 4). Beyond the reference:
images smaller than P are padded to it (reflect) and cropped back, batches share one window grid,
and memory is one output-sized accumulator plus the border strips, never all window outputs at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .tiling import dihedral, dihedral_inverse, pad_to_size

Run = Callable[[torch.Tensor], torch.Tensor]


def chop_step(patch: int) -> int:
    """Pixels between neighbouring windows (12 for IPT's 48); also the margin each window's output loses."""
    return patch // 4


def chop_grid(length: int, patch: int) -> tuple[int, ...]:
    """Starts of the grid windows along a dimension of ``length`` >= ``patch`` pixels."""
    return tuple(range(0, length - patch + 1, chop_step(patch)))


def chop_starts(length: int, patch: int) -> tuple[int, ...]:
    """Starts of every window along a dimension: the grid and, where the grid stops short, ``length − patch``."""
    grid = chop_grid(length, patch)
    return grid if grid[-1] == length - patch else (*grid, length - patch)


def chop_split(length: int, patch: int, scale: int) -> tuple[int, int]:
    """(output index where the last row/column of windows takes over, its first row/column used)."""
    grid = chop_grid(length, patch)
    cut = length - grid[-1] - patch
    total = (patch - cut) * scale
    covered = (grid[-1] + patch) * scale
    return covered - total // 2, total - total // 2


class _Accumulator:
    """Sum and count of window outputs over the region that ``rows`` × ``cols`` cover. Along each axis a
    window gives its centre, and the first and last window their outer margin as well."""

    def __init__(self, n: int, rows: Sequence[int], cols: Sequence[int], scale: int, out_patch: int,
                 margin: int, device: torch.device) -> None:
        self.n, self.scale, self.out_patch, self.margin, self.device = n, scale, out_patch, margin, device
        self.rows = {r: k for k, r in enumerate(rows)}
        self.cols = {c: k for k, c in enumerate(cols)}
        self.origin = (rows[0] * scale, cols[0] * scale)
        self.count = torch.outer(self._counts(rows), self._counts(cols))
        self.sum: torch.Tensor | None = None

    def _span(self, k: int, windows: int) -> tuple[int, int]:
        lo = 0 if k == 0 else self.margin
        hi = self.out_patch if k == windows - 1 else self.out_patch - self.margin
        return lo, hi

    def _counts(self, starts: Sequence[int]) -> torch.Tensor:
        counts = torch.zeros((starts[-1] - starts[0]) * self.scale + self.out_patch, device=self.device)
        for k, start in enumerate(starts):
            lo, hi = self._span(k, len(starts))
            offset = (start - starts[0]) * self.scale
            counts[offset + lo:offset + hi] += 1
        return counts

    def add(self, i: int, r0: int, c0: int, y: torch.Tensor) -> None:
        kr, kc = self.rows.get(r0), self.cols.get(c0)
        if kr is None or kc is None:
            return
        if self.sum is None:
            self.sum = torch.zeros(self.n, y.shape[0], *self.count.shape, dtype=y.dtype, device=self.device)
        (r_lo, r_hi), (c_lo, c_hi) = self._span(kr, len(self.rows)), self._span(kc, len(self.cols))
        top, left = r0 * self.scale - self.origin[0] + r_lo, c0 * self.scale - self.origin[1] + c_lo
        self.sum[i, :, top:top + r_hi - r_lo, left:left + c_hi - c_lo] += y[:, r_lo:r_hi, c_lo:c_hi]

    def mean(self) -> torch.Tensor:
        assert self.sum is not None
        return self.sum.div_(self.count)


def chop(run: Run, x: torch.Tensor, patch: int, scale: int, *, device: torch.device, tile_batch: int) -> torch.Tensor:
    """Restore N×C×H×W ``x`` with ``run`` (``patch``² inputs → (``patch``·``scale``)² outputs) as the
    reference's ``forward_chop``; returns N×C'×(H·scale)×(W·scale) on ``x``'s device. ``tile_batch``
    windows go through ``run`` per call, on ``device``."""
    n, _, h, w = x.shape
    if h < patch or w < patch:
        padded = pad_to_size(x, max(h, patch), max(w, patch))
        return chop(run, padded, patch, scale, device=device, tile_batch=tile_batch)[..., :h * scale, :w * scale]
    s, out_patch, margin = scale, patch * scale, chop_step(patch) * scale
    gy, gx = chop_grid(h, patch), chop_grid(w, patch)
    last_r, last_c = h - patch, w - patch

    def accumulator(rows: Sequence[int], cols: Sequence[int]) -> _Accumulator:
        return _Accumulator(n, rows, cols, s, out_patch, margin, x.device)

    grid, bottom, right, corner = (accumulator(gy, gx), accumulator((last_r,), gx), accumulator(gy, (last_c,)),
                                   accumulator((last_r,), (last_c,)))
    top_left: list[torch.Tensor | None] = [None] * n
    jobs = [(i, r0, c0) for i in range(n) for r0 in chop_starts(h, patch) for c0 in chop_starts(w, patch)]
    for start in range(0, len(jobs), tile_batch):
        batch = jobs[start:start + tile_batch]
        tiles = torch.cat([x[i:i + 1, :, r0:r0 + patch, c0:c0 + patch] for i, r0, c0 in batch]).to(device)
        y = run(tiles).to(x.device)
        for (i, r0, c0), yt in zip(batch, y):
            for acc in (grid, bottom, right, corner):
                acc.add(i, r0, c0, yt)
            if r0 == 0 and c0 == 0:
                top_left[i] = yt[:, :margin].clone()

    g = grid.mean()
    for i, rows in enumerate(top_left):
        assert rows is not None
        g[i, :, :margin, :out_patch] = rows
    split_r, skip_r = chop_split(h, patch, s)
    split_c, skip_c = chop_split(w, patch, s)
    out = torch.empty(n, g.shape[1], h * s, w * s, dtype=g.dtype, device=x.device)
    out[..., :split_r, :split_c] = g[..., :split_r, :split_c]
    out[..., split_r:, :split_c] = bottom.mean()[..., skip_r:, :split_c]
    out[..., :split_r, split_c:] = right.mean()[..., :split_r, skip_c:]
    out[..., split_r:, split_c:] = corner.mean()[..., skip_r:, skip_c:]
    return out


def chop_ensemble(run: Run, x: torch.Tensor, patch: int, scale: int, *, device: torch.device,
                  tile_batch: int) -> torch.Tensor:
    """The ×8 self-ensemble around the whole chop, as the reference's ``forward_x8(forward_chop)``."""
    acc = chop(run, x, patch, scale, device=device, tile_batch=tile_batch)
    for k in range(1, 8):
        acc += dihedral_inverse(chop(run, dihedral(x, k), patch, scale, device=device, tile_batch=tile_batch), k)
    return acc.div_(8)

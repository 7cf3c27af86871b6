"""Running a fully convolutional transform tile by tile, so that huge images need bounded memory.

Each tile is computed with `halo` grid cells of real context on every side and only its own cells
are kept. With a halo at least as wide as the transform's receptive field, the result equals the
untiled one up to float rounding: there are no seams. The grid is that of the coarser tensor (the
latent), so a tile of 64 cells is 1024 pixels at stride 16.
"""

from __future__ import annotations

import torch


def run_tiled(fn, x: torch.Tensor, unit_in: int, unit_out: int, tile: int, halo: int) -> torch.Tensor:
    """fn(x) computed in tiles of `tile` x `tile` grid cells; a cell is `unit_in` elements of x and
    `unit_out` elements of the output (analysis: 16 and 1; synthesis: 1 and 16)."""
    rows, cols = x.shape[-2] // unit_in, x.shape[-1] // unit_in
    if rows <= tile and cols <= tile:
        return fn(x)
    out = None
    for i0 in range(0, rows, tile):
        for j0 in range(0, cols, tile):
            i1, j1 = min(i0 + tile, rows), min(j0 + tile, cols)
            a0, b0 = max(i0 - halo, 0), max(j0 - halo, 0)
            a1, b1 = min(i1 + halo, rows), min(j1 + halo, cols)
            part = fn(x[..., a0 * unit_in:a1 * unit_in, b0 * unit_in:b1 * unit_in])
            if out is None:
                out = part.new_empty(*part.shape[:-2], rows * unit_out, cols * unit_out)
            out[..., i0 * unit_out:i1 * unit_out, j0 * unit_out:j1 * unit_out] = part[
                ..., (i0 - a0) * unit_out:(i1 - a0) * unit_out, (j0 - b0) * unit_out:(j1 - b0) * unit_out]
    return out

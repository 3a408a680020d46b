"""Convert the peers' DDPM-CIFAR checkpoints (CORAL, CBDM, T2H) into a diffusers `UNet2DModel`.

The peers' `ckpt_{step}.pt` holds `net_model` and `ema_model` state dicts of one U-Net design
(the DDPM-CIFAR code base the peers share). The mapping onto diffusers is exact once
- the first time-MLP weight's input columns go from the peers' INTERLEAVED sinusoids
  (sin f0, cos f0, sin f1, ...) to diffusers' [sin..., cos...] layout,
- the 1x1-conv attention projections (C, C, 1, 1) become Linear weights (C, C),
- a zero row is appended to the class embedding: the peers' unconditional pass adds no label
  embedding, which is what adding a zero vector for the null label C does.
The architecture (base channels, multipliers, blocks per level, attention levels, classes, T)
is read from the tensors themselves. CORAL's `mean_proj` becomes the projection head.
"""

from __future__ import annotations

import math
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import UNet2DModel

from coral_ft.errors import UserError
from coral_ft.models.head import ProjectionHead
from coral_ft.models.presets import DDPM_CIFAR

WEIGHTS = {"ema": "ema_model", "raw": "net_model"}
TIME_TABLE = "time_embedding.timembedding.0.weight"  # (T, ch) frozen sinusoid table
# ResBlock sub-modules -> diffusers ResnetBlock2D / Attention names.
RESBLOCK_NAMES = {
    "block1.0": "norm1",
    "block1.2": "conv1",
    "temb_proj.1": "time_emb_proj",
    "block2.0": "norm2",
    "block2.3": "conv2",
    "shortcut": "conv_shortcut",
}
ATTENTION_NAMES = {"group_norm": "group_norm", "proj_q": "to_q", "proj_k": "to_k", "proj_v": "to_v", "proj": "to_out.0"}


@dataclass
class PeerLayout:
    """The peers' U-Net hyper-parameters, as read from a state dict."""

    ch: int
    ch_mult: tuple[int, ...]
    num_res_blocks: int
    attn_levels: tuple[int, ...]
    num_classes: int | None  # None: unconditional
    num_timesteps: int
    in_channels: int
    out_channels: int


def read_checkpoint(path: str | Path) -> dict:
    """A peers' `ckpt_{step}.pt`, loaded without unpickling code (weights_only)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "global" in str(exc):  # a class or function pickled in: weights_only refuses to run it
            raise UserError(f"{path} holds pickled code objects, not only tensors and plain data; refusing to unpickle it") from None
        raise UserError(f"{path} is not a readable torch checkpoint (corrupt or truncated?): unpickling failed") from None
    except Exception as exc:  # truncated zip, bad magic number, EOF ...
        raise UserError(f"{path} is not a readable torch checkpoint (corrupt or truncated?): {str(exc).splitlines()[0]}") from None
    return ckpt


def pick_weights(ckpt, weights: str, path) -> dict[str, torch.Tensor]:
    """The `ema_model` (weights="ema") or `net_model` ("raw") state dict."""
    key = WEIGHTS[weights]
    if not isinstance(ckpt, dict) or key not in ckpt:
        found = ", ".join(map(str, ckpt)) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise UserError(f"{path} is not a peers' checkpoint: no '{key}' entry (found: {found})")
    state = ckpt[key]
    if all(k.startswith("module.") for k in state):  # saved from nn.DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _blocks(state: dict, prefix: str) -> list[int]:
    return sorted({int(m.group(1)) for k in state if (m := re.match(rf"^{prefix}\.(\d+)\.", k))})


def infer_layout(state: dict[str, torch.Tensor]) -> PeerLayout:
    for needed in (TIME_TABLE, "head.weight", "tail.2.weight", "middleblocks.0.block1.2.weight"):
        if needed not in state:
            raise UserError(f"not the peers' U-Net layout: the state dict lacks {needed}")
    ch = state["head.weight"].shape[0]
    levels: list[list[int]] = [[]]  # ResBlock indices per level
    attn: set[int] = set()
    for n in _blocks(state, "downblocks"):
        if f"downblocks.{n}.main.weight" in state:
            levels.append([])
        else:
            levels[-1].append(n)
            if f"downblocks.{n}.attn.proj_q.weight" in state:
                attn.add(len(levels) - 1)
    mult = tuple(state[f"downblocks.{lv[0]}.block2.3.weight"].shape[0] // ch for lv in levels)
    label = state.get("label_embedding.weight")
    return PeerLayout(
        ch=ch,
        ch_mult=mult,
        num_res_blocks=len(levels[0]),
        attn_levels=tuple(sorted(attn)),
        num_classes=None if label is None else label.shape[0],
        num_timesteps=state[TIME_TABLE].shape[0],
        in_channels=state["head.weight"].shape[1],
        out_channels=state["tail.2.weight"].shape[0],
    )


def build_target(layout: PeerLayout, sample_size: int, dropout: float = 0.1) -> UNet2DModel:
    """The diffusers U-Net the peers' one maps onto: the ddpm-cifar preset's design (one attention
    head, GroupNorm(32), [sin, cos] sinusoids) at the layout's sizes."""
    levels = range(len(layout.ch_mult))
    return UNet2DModel(**dict(
        DDPM_CIFAR,
        sample_size=sample_size,
        in_channels=layout.in_channels,
        out_channels=layout.out_channels,
        block_out_channels=tuple(layout.ch * m for m in layout.ch_mult),
        layers_per_block=layout.num_res_blocks,
        down_block_types=tuple("AttnDownBlock2D" if i in layout.attn_levels else "DownBlock2D" for i in levels),
        up_block_types=tuple("AttnUpBlock2D" if i in layout.attn_levels else "UpBlock2D" for i in reversed(levels)),
        dropout=dropout,
        num_class_embeds=None if layout.num_classes is None else layout.num_classes + 1,
    ))


def sinusoid_order(table: torch.Tensor) -> str:
    """'interleaved' (sin, cos pairs: the peers) or 'split' ([sin..., cos...]: diffusers)."""
    T, d = table.shape
    freqs = torch.exp(-math.log(10000) * torch.arange(0, d, 2, dtype=torch.float64) / d)  # (d/2,)
    angles = torch.arange(T, dtype=torch.float64)[:, None] * freqs  # (T, d/2)
    interleaved = torch.stack([angles.sin(), angles.cos()], dim=-1).reshape(T, d)
    split = torch.cat([angles.sin(), angles.cos()], dim=1)
    for name, expected in (("interleaved", interleaved), ("split", split)):
        if torch.allclose(table.double(), expected, atol=1e-4):
            return name
    raise UserError("the checkpoint's time-embedding table is not the sinusoid table of the peers' U-Net")


def _resblock(out: dict, state: dict, src: str, resnet: str, attention: str | None) -> None:
    for peer, ours in RESBLOCK_NAMES.items():
        for kind in ("weight", "bias"):
            if f"{src}.{peer}.{kind}" in state:
                out[f"{resnet}.{ours}.{kind}"] = state[f"{src}.{peer}.{kind}"]
    if attention is None:
        return
    for peer, ours in ATTENTION_NAMES.items():
        w = state[f"{src}.attn.{peer}.weight"]
        out[f"{attention}.{ours}.weight"] = w.flatten(1) if w.dim() == 4 else w  # 1x1 conv (C, C, 1, 1) -> (C, C)
        out[f"{attention}.{ours}.bias"] = state[f"{src}.attn.{peer}.bias"]


def map_state_dict(state: dict[str, torch.Tensor], layout: PeerLayout) -> dict[str, torch.Tensor]:
    """Peers' parameter names and layouts -> diffusers UNet2DModel state dict."""
    out: dict[str, torch.Tensor] = {}
    for peer, ours in (("head", "conv_in"), ("tail.0", "conv_norm_out"), ("tail.2", "conv_out")):
        out[f"{ours}.weight"], out[f"{ours}.bias"] = state[f"{peer}.weight"], state[f"{peer}.bias"]
    w1 = state["time_embedding.timembedding.1.weight"]  # (4ch, ch)
    if sinusoid_order(state[TIME_TABLE]) == "interleaved":
        w1 = torch.cat([w1[:, 0::2], w1[:, 1::2]], dim=1)  # columns -> [sin..., cos...]
    out["time_embedding.linear_1.weight"] = w1
    out["time_embedding.linear_1.bias"] = state["time_embedding.timembedding.1.bias"]
    out["time_embedding.linear_2.weight"] = state["time_embedding.timembedding.3.weight"]
    out["time_embedding.linear_2.bias"] = state["time_embedding.timembedding.3.bias"]
    if layout.num_classes is not None:
        table = state["label_embedding.weight"]  # (C, 4ch)
        out["class_embedding.weight"] = torch.cat([table, table.new_zeros(1, table.shape[1])])  # + null row C

    n_levels = len(layout.ch_mult)
    flat = iter(_blocks(state, "downblocks"))
    for level in range(n_levels):
        has_attn = level in layout.attn_levels
        for j in range(layout.num_res_blocks):
            att = f"down_blocks.{level}.attentions.{j}" if has_attn else None
            _resblock(out, state, f"downblocks.{next(flat)}", f"down_blocks.{level}.resnets.{j}", att)
        if level != n_levels - 1:
            n = next(flat)
            out[f"down_blocks.{level}.downsamplers.0.conv.weight"] = state[f"downblocks.{n}.main.weight"]
            out[f"down_blocks.{level}.downsamplers.0.conv.bias"] = state[f"downblocks.{n}.main.bias"]
    _resblock(out, state, "middleblocks.0", "mid_block.resnets.0", "mid_block.attentions.0")
    _resblock(out, state, "middleblocks.1", "mid_block.resnets.1", None)
    flat = iter(_blocks(state, "upblocks"))
    for b, level in enumerate(reversed(range(n_levels))):  # diffusers' up_blocks[0] is the deepest
        has_attn = level in layout.attn_levels
        for j in range(layout.num_res_blocks + 1):
            att = f"up_blocks.{b}.attentions.{j}" if has_attn else None
            _resblock(out, state, f"upblocks.{next(flat)}", f"up_blocks.{b}.resnets.{j}", att)
        if level != 0:
            n = next(flat)
            out[f"up_blocks.{b}.upsamplers.0.conv.weight"] = state[f"upblocks.{n}.main.weight"]
            out[f"up_blocks.{b}.upsamplers.0.conv.bias"] = state[f"upblocks.{n}.main.bias"]
    return out


def head_from_state(state: dict[str, torch.Tensor], bottleneck_channels: int) -> ProjectionHead | None:
    """CORAL's `mean_proj` (one Linear on pooled bottleneck features) as a ProjectionHead."""
    weights = [k for k in state if k.startswith("mean_proj.") and k.endswith("weight") and state[k].dim() == 2]
    if not weights:
        return None
    if len(weights) != 1:
        raise UserError(f"mean_proj has {len(weights)} linear layers; the CORAL head has one")
    w, b = state[weights[0]], state.get(weights[0][: -len("weight")] + "bias")
    pooling = "avg" if w.shape[1] == bottleneck_channels else "flatten"
    spatial = int(math.isqrt(w.shape[1] // bottleneck_channels))
    head = ProjectionHead(bottleneck_channels, w.shape[0], pooling, spatial)
    with torch.no_grad():
        head.proj.weight.copy_(w)
        head.proj.bias.copy_(b if b is not None else torch.zeros(w.shape[0]))
    return head


def convert_peer_checkpoint(
    path: str | Path, weights: str = "ema", sample_size: int | None = None, dropout: float = 0.1
) -> tuple[UNet2DModel, ProjectionHead | None, PeerLayout]:
    """-> (diffusers UNet2DModel with the peers' weights, CORAL head or None, the layout read)."""
    if weights not in WEIGHTS:
        raise UserError(f"weights must be one of {', '.join(WEIGHTS)}; got {weights!r}")
    ckpt = read_checkpoint(path)
    state = pick_weights(ckpt, weights, path)
    layout = infer_layout(state)
    if sample_size is None:
        sample_size = _sample_size_of(ckpt, path)
    unet = build_target(layout, sample_size, dropout)
    mapped = map_state_dict(state, layout)
    result = unet.load_state_dict(mapped, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise UserError(
            f"{path} does not match the peers' U-Net layout (missing {result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]})"
        )
    head = head_from_state(state, unet.config.block_out_channels[-1])
    return unet.eval(), head, layout


def _sample_size_of(ckpt: dict, path) -> int:
    # The peers store their fixed sampling noise `fixed_x_T` (N, C, H, W): it gives the size.
    x_T = ckpt.get("fixed_x_T")
    if isinstance(x_T, torch.Tensor) and x_T.dim() == 4:
        return int(x_T.shape[-1])
    raise UserError(f"{path} has no fixed_x_T to read the image size from; pass --sample-size")

"""U-Net presets: name -> diffusers `UNet2DModel` keyword arguments.

The sample size and channel count come from the data; class conditioning is added by
`build_unet` with C + 1 embedding rows, row C being the null label for classifier-free guidance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from coral_ft.errors import ConfigError

if TYPE_CHECKING:
    from diffusers import UNet2DModel

# The peers' 35.7M-parameter CIFAR U-Net ("DDPM CIFAR"): base 128 channels, multipliers
# (1, 2, 2, 2), attention at 16x16 only, one head, sinusoids laid out [sin, cos] without shift.
DDPM_CIFAR = dict(
    block_out_channels=(128, 256, 256, 256),
    layers_per_block=2,
    down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    attention_head_dim=None,
    norm_num_groups=32,
    norm_eps=1e-5,
    downsample_padding=1,
    freq_shift=0,
    flip_sin_to_cos=False,
    dropout=0.1,
)

# 64x64 (CelebA-5, ImageNet-LT): the CIFAR design with one more level and multipliers
# (1, 2, 3, 4); resolutions 64 -> 32 -> 16 -> 8, attention at 16x16 as at 32x32.
DDPM_64 = dict(
    DDPM_CIFAR,
    block_out_channels=(128, 256, 384, 512),
    down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
)

# Fast on a CPU, for tests and the digits demo: the CIFAR design with two levels, attention at
# the lower one, 8 groups per GroupNorm (32 channels would leave one channel per group), no dropout.
TINY = dict(
    DDPM_CIFAR,
    block_out_channels=(32, 64),
    layers_per_block=1,
    down_block_types=("DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D"),
    norm_num_groups=8,
    dropout=0.0,
)

# Half of tiny's width (0.18M parameters, about 2.5x faster on a CPU): the digits bench, which
# trains every method in a few minutes on two cores.
MICRO = dict(TINY, block_out_channels=(16, 32))

# Three levels (16 -> 8 -> 4 at 16x16) and attention at the 4x4 bottleneck only, 2.7M parameters:
# a bottleneck shaped like the paper's (lowest resolution, widest channels) at a CPU cost of
# about 0.5 s per batch-64 step on two cores (the CPU study, docs/study.md).
SMALL = dict(
    TINY,
    block_out_channels=(32, 64, 128),
    down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
)

PRESETS: dict[str, dict] = {"ddpm-cifar": DDPM_CIFAR, "ddpm-64": DDPM_64, "small": SMALL, "tiny": TINY, "micro": MICRO}


def build_unet(
    preset: str,
    sample_size: int,
    channels: int,
    num_classes: int | None,
    dropout: float | None = None,
) -> UNet2DModel:
    """A freshly initialised U-Net; `num_classes=None` builds an unconditional one."""
    from diffusers import UNet2DModel

    if preset not in PRESETS:
        raise ConfigError(f"unknown model preset {preset!r}; choose from {', '.join(sorted(PRESETS))}")
    kwargs = dict(PRESETS[preset])
    if dropout is not None:
        kwargs["dropout"] = dropout
    levels = len(kwargs["block_out_channels"])
    if sample_size % 2 ** (levels - 1):
        raise ConfigError(
            f"preset {preset!r} halves the image {levels - 1} times; image size {sample_size} is not divisible by {2 ** (levels - 1)}"
        )
    if num_classes is not None:
        kwargs["num_class_embeds"] = num_classes + 1  # + the null label, index num_classes
    return UNet2DModel(sample_size=sample_size, in_channels=channels, out_channels=channels, **kwargs)


def null_label(unet) -> int:
    """Index of the null (unconditional) label: the last class-embedding row."""
    n = getattr(unet.config, "num_class_embeds", None)
    if not n:
        raise ConfigError("this model has no class embedding, so it cannot take class labels")
    return n - 1


def num_classes_of(unet) -> int | None:
    n = getattr(unet.config, "num_class_embeds", None)
    return n - 1 if n else None

import pytest
import torch
from diffusers import UNet2DModel

from coral_ft.errors import ConfigError
from coral_ft.models.denoiser import Denoiser, build_head
from coral_ft.models.presets import PRESETS, build_unet, null_label


def test_hook_captures_the_mid_block_output(tiny_unet):
    denoiser = Denoiser(tiny_unet, build_head(tiny_unet))
    seen = {}
    tiny_unet.mid_block.register_forward_hook(lambda m, i, o: seen.setdefault("h", o))
    x, t, y = torch.randn(3, 1, 16, 16), torch.tensor([1, 50, 999]), torch.tensor([0, 3, 10])
    out = denoiser(x, t, y)
    assert torch.equal(out.bottleneck, seen["h"])
    assert out.bottleneck.shape == (3, 64, 8, 8)
    assert out.embedding.shape == (3, 128)
    assert torch.allclose(out.embedding.norm(dim=1), torch.ones(3), atol=1e-5)
    # the noise prediction is exactly the plain U-Net's
    assert torch.equal(out.eps, tiny_unet(x, t, class_labels=y).sample)


def test_flatten_head():
    unet = build_unet("tiny", 16, 1, 10)
    head = build_head(unet, 32, "flatten")
    assert head.proj.in_features == 64 * 8 * 8
    assert Denoiser(unet, head)(torch.randn(2, 1, 16, 16), torch.tensor([3, 4]), torch.tensor([1, 2])).embedding.shape == (2, 32)


def test_class_embedding_has_a_null_row():
    unet = build_unet("tiny", 16, 3, 7)
    assert unet.config.num_class_embeds == 8 and null_label(unet) == 7


def test_ddpm_cifar_preset_matches_the_peers_size():
    unet = UNet2DModel(sample_size=32, in_channels=3, out_channels=3, num_class_embeds=11, **PRESETS["ddpm-cifar"])
    n = sum(p.numel() for p in unet.parameters())
    assert 35.6e6 < n < 35.9e6


def test_preset_rejects_sizes_it_cannot_halve():
    with pytest.raises(ConfigError, match="not divisible"):
        build_unet("ddpm-cifar", 20, 3, 10)

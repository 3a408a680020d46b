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


def test_null_bottleneck_is_the_full_forwards_bottleneck_with_null_labels(tiny_unet):
    from coral_ft.models.denoiser import null_bottleneck

    seen = {}
    tiny_unet.mid_block.register_forward_hook(lambda m, i, o: seen.__setitem__("h", o))
    x, t = torch.randn(3, 1, 16, 16), torch.tensor([1, 50, 999])
    tiny_unet(x, t, class_labels=torch.full((3,), null_label(tiny_unet)))
    assert torch.allclose(null_bottleneck(tiny_unet, x, t), seen["h"], atol=1e-6)


def test_null_bottleneck_under_lora_adapters(tiny_unet):
    from coral_ft.models.denoiser import null_bottleneck
    from coral_ft.models.lora import attach_lora, lora_config

    model = attach_lora(tiny_unet, lora_config(4, 4.0), "base")
    for name, p in model.named_parameters():  # adapters that do something
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)
    seen = {}
    model.get_base_model().mid_block.register_forward_hook(lambda m, i, o: seen.__setitem__("h", o))
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([7, 700])
    model(x, t, class_labels=torch.full((2,), 10))
    assert torch.allclose(null_bottleneck(model, x, t), seen["h"], atol=1e-6)


def test_the_null_pass_draws_dropout_masks_of_its_own_from_the_keys():
    from coral_ft.models.denoiser import NULL_PASS_SALT
    from coral_ft.models.dropout import salted

    torch.manual_seed(0)
    unet = build_unet("tiny", 16, 1, 10, dropout=0.5)
    denoiser = Denoiser(unet, build_head(unet)).train()
    x, t, y, keys = torch.randn(2, 1, 16, 16), torch.tensor([3, 300]), torch.tensor([1, 2]), torch.tensor([11, 12])
    null = torch.full((2,), 10)
    got = denoiser(x, t, y, dropout_keys=keys, null_features=True).embedding
    assert torch.equal(got, denoiser(x, t, y, dropout_keys=keys, null_features=True).embedding)  # a function of the keys
    own = denoiser(x, t, null, dropout_keys=salted(keys, NULL_PASS_SALT)).embedding  # a null-label forward, its salt
    assert torch.allclose(got, own, atol=1e-6)
    assert not torch.allclose(got, denoiser(x, t, null, dropout_keys=keys).embedding, atol=1e-4)  # not the first pass's masks


def test_null_features_feed_the_head_and_keep_the_eps_of_the_labelled_pass(tiny_unet):
    denoiser = Denoiser(tiny_unet, build_head(tiny_unet))
    x, t, y = torch.randn(2, 1, 16, 16), torch.tensor([3, 300]), torch.tensor([1, 2])
    plain, null = denoiser(x, t, y), denoiser(x, t, y, null_features=True)
    assert torch.equal(plain.eps, null.eps) and torch.equal(plain.bottleneck, null.bottleneck)
    nulled = denoiser(x, t, torch.full((2,), 10))
    assert torch.allclose(null.embedding, nulled.embedding, atol=1e-6)  # what the null-label pass gives the head
    assert not torch.allclose(null.embedding, plain.embedding, atol=1e-4)

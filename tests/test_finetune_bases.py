"""Bases: finding them (folder, run directory, pipeline, cached hub ID), checking them against
the data, and the zero-initialised class embedding that keeps an unconditional base's predictions."""

from __future__ import annotations

import json
import re

import pytest
import torch

from coral_ft.config import FinetuneConfig
from coral_ft.data.registry import LabeledImages
from coral_ft.errors import ConfigError, UserError
from coral_ft.finetune.source import FinetuneSource
from coral_ft.models.context import FixedContextUNet
from coral_ft.models.schedule import scheduler_for
from coral_ft.models.unets import load_unet, resolve_unet_folder
from tests.conftest import build_base


def fake_data(num_classes=10, size=16, channels=1, per_class=2) -> LabeledImages:
    """Random images in memory, `per_class` of each class (the trainer needs pairs for SupCon)."""
    g = torch.Generator().manual_seed(0)
    n = num_classes * per_class
    images = torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8, generator=g)
    return LabeledImages(images, torch.arange(n) % num_classes, [f"c{i}" for i in range(num_classes)])


def predict(unet, labels, context=None, n=4):
    """Noise predictions for 4 fixed inputs; labels None: the unconditional base."""
    torch.manual_seed(3)
    x, t = torch.randn(n, 1, 16, 16), torch.tensor([1, 250, 999, 40])
    kwargs = {"encoder_hidden_states": context.expand(n, -1, -1)} if context is not None else {}
    with torch.no_grad():
        return unet(x, t, class_labels=labels, **kwargs).sample


@pytest.mark.parametrize("kind", ["unet2d-uncond", "cross-attn"])
@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_zero_init_class_embedding_leaves_predictions_unchanged(saved_base, kind, lora):
    folder = saved_base(kind)
    base = load_unet(folder).eval()
    unet = FinetuneSource(FinetuneConfig(base=str(folder), lora=lora)).build(fake_data(), None).eval()
    assert unet.config.num_class_embeds == 11
    labels = torch.tensor([0, 9, 10, 4])  # ordinary labels and the null label 10
    context = unet.context if isinstance(unet, FixedContextUNet) else None
    before = predict(base, None, context)
    assert torch.equal(predict(unet, labels), before)


def test_class_embedding_and_adapters_train_the_base_does_not(saved_base):
    unet = FinetuneSource(FinetuneConfig(base=str(saved_base("unet2d-uncond")), lora=True)).build(fake_data(), None)
    trainable = [n for n, p in unet.named_parameters() if p.requires_grad]
    trained_in_full = "base_model.model.class_embedding.modules_to_save.default.weight"  # peft's modules_to_save
    assert trained_in_full in trainable
    assert all(".lora_" in n or n == trained_in_full for n in trainable)
    full = FinetuneSource(FinetuneConfig(base=str(saved_base("unet2d-cond")))).build(fake_data(), None)
    assert all(p.requires_grad for p in full.parameters())


def test_base_locations(tmp_path, saved_base):
    folder = saved_base("unet2d-cond")
    assert resolve_unet_folder(str(folder)) == folder.resolve()
    run = tmp_path / "run"
    build_base("unet2d-cond").save_pretrained(run / "model")  # a coral-ft run directory
    assert resolve_unet_folder(str(run)) == (run / "model").resolve()
    pipe = tmp_path / "pipe"
    build_base("cross-attn").save_pretrained(pipe / "unet")  # the Stable-Diffusion pipeline layout
    assert resolve_unet_folder(str(pipe)) == (pipe / "unet").resolve()


def test_hub_id_resolves_offline_from_the_cache_and_fails_clearly_when_absent(tmp_path):
    # The Hugging Face cache layout: models--owner--name/{refs/main, snapshots/<commit>/...}
    commit = "0" * 40
    repo = tmp_path / "hub" / "models--someone--tiny-ddpm"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    build_base("unet2d-uncond").save_pretrained(repo / "snapshots" / commit / "unet")
    folder = resolve_unet_folder("someone/tiny-ddpm", cache_dir=tmp_path / "hub")
    assert folder == (repo / "snapshots" / commit / "unet").resolve()
    assert load_unet(folder).config.num_class_embeds is None
    with pytest.raises(UserError, match="not in the local Hugging Face cache"):
        resolve_unet_folder("someone/absent-model", cache_dir=tmp_path / "hub")


@pytest.mark.parametrize("spec, message", [
    ("runs/nope", "local folder runs/nope not found: runs/ has no 'nope'"),  # runs/ is a folder here: a path, not a hub ID
    ("./nope", "local folder ./nope not found: this folder has no 'nope'"),
    ("../nope/model", "local folder ../nope/model not found: ../ has no 'nope'"),
    ("someone/absent-model", "not in the local Hugging Face cache"),  # no folder someone/ here: a hub ID
])  # fmt: skip
def test_a_mistyped_local_base_is_reported_as_a_missing_folder_not_a_hub_model(tmp_path, monkeypatch, spec, message):
    (tmp_path / "work" / "runs").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work")
    with pytest.raises(UserError, match=re.escape(message)):
        resolve_unet_folder(spec, cache_dir=tmp_path / "hub")


@pytest.mark.parametrize(
    "kind, data, settings, message",
    [
        ("unet2d-cond", fake_data(size=8), {}, "makes 16x16 images but the data is 8x8"),
        ("unet2d-cond", fake_data(channels=3), {}, "1 input / 1 output channels but the data has 3"),
        ("unet2d-cond", fake_data(num_classes=7), {}, "class embedding for 10 classes"),
        ("unet2d-cond", fake_data(), {"lora": True, "targets": ["to_q", "no_such_layer"]}, "'no_such_layer' matches no"),
        ("unet2d-cond", fake_data(), {"context": "ctx.safetensors"}, "no cross-attention"),
        ("cross-attn", fake_data(), {"context": "missing.safetensors"}, "context file not found"),
    ],
    ids=["size", "channels", "classes", "lora-target", "context-on-unet2d", "context-missing"],
)
def test_mismatched_bases_are_rejected_before_training(saved_base, kind, data, settings, message):
    source = FinetuneSource(FinetuneConfig(base=str(saved_base(kind)), **settings))
    with pytest.raises(UserError, match=message):
        source.build(data, None)


def test_corrupt_or_missing_bases_are_clear_errors(tmp_path, saved_base):
    folder = saved_base("unet2d-cond")
    weights = folder / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 3])
    with pytest.raises(UserError, match="cannot load the U-Net"):
        FinetuneSource(FinetuneConfig(base=str(folder))).build(fake_data(), None)
    with pytest.raises(UserError, match="not found"):
        resolve_unet_folder(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no U-Net in"):
        resolve_unet_folder(str(tmp_path / "empty"))
    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKL"}))
    with pytest.raises(UserError, match="AutoencoderKL"):
        resolve_unet_folder(str(tmp_path / "vae"))
    with pytest.raises(ConfigError, match="finetune.base is not set"):
        FinetuneSource(FinetuneConfig()).build(fake_data(), None)


def test_supplied_context_is_used_and_checked(tmp_path, saved_base):
    from safetensors.torch import save_file

    ctx = torch.randn(3, 16)
    save_file({"context": ctx}, tmp_path / "ctx.safetensors")
    source = FinetuneSource(FinetuneConfig(base=str(saved_base("cross-attn")), context=str(tmp_path / "ctx.safetensors")))
    unet = source.build(fake_data(), None)
    assert torch.equal(unet.context[0], ctx)
    save_file({"context": torch.randn(3, 5)}, tmp_path / "bad.safetensors")
    source.settings.context = str(tmp_path / "bad.safetensors")
    with pytest.raises(ConfigError, match=r"expected \(L, 16\)"):
        source.build(fake_data(), None)


def test_base_noise_schedule_must_match_the_run(saved_base, tiny_config):
    from diffusers import DDPMScheduler

    folder, cfg = saved_base("unet2d-cond"), tiny_config()
    source = FinetuneSource(FinetuneConfig(base=str(folder)))
    scheduler_for(cfg.model).save_pretrained(folder)
    source.build(fake_data(), cfg)  # the same schedule: accepted
    DDPMScheduler(num_train_timesteps=500).save_pretrained(folder)
    with pytest.raises(ConfigError, match="num_train_timesteps=500"):
        source.build(fake_data(), cfg)
    DDPMScheduler(beta_schedule="squaredcos_cap_v2").save_pretrained(folder)
    with pytest.raises(ConfigError, match="'squaredcos_cap_v2' betas"):
        source.build(fake_data(), cfg)

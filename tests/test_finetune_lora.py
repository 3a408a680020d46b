"""LoRA on the U-Nets: what trains, what is saved, the round trip, and merging."""

from __future__ import annotations

import json

import pytest
import torch
from diffusers import UNet2DModel
from safetensors.torch import load_file

from coral_ft.checkpoint.model import ModelInfo, load_model
from coral_ft.config import FinetuneConfig, SampleConfig
from coral_ft.errors import UserError
from coral_ft.finetune.export import export_model
from coral_ft.finetune.source import FinetuneSource
from coral_ft.models.context import inner_unet
from coral_ft.models.lora import DEFAULT_TARGETS, count_parameters
from coral_ft.models.schedule import make_scheduler
from coral_ft.models.unets import load_unet
from coral_ft.sample.samplers import sample
from tests.test_finetune_bases import fake_data


def randomize_adapters(unet, seed=1):
    """Non-zero adapters and class embedding, as after training (B starts at zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in unet.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)


def outputs(unet, seed=4):
    g = torch.Generator().manual_seed(seed)
    x, t, y = torch.randn(3, 1, 16, 16, generator=g), torch.tensor([3, 300, 900]), torch.tensor([0, 5, 10])
    with torch.no_grad():
        return unet.eval()(x, t, class_labels=y).sample


def test_lora_trainable_parameters_are_the_adapters_and_the_class_embedding(saved_base):
    unet = FinetuneSource(FinetuneConfig(base=str(saved_base("unet2d-cond")), lora=True, rank=4, alpha=4)).build(fake_data(), None)
    lora_layers = {n.rsplit(".lora_", 1)[0] for n, _ in unet.named_parameters() if ".lora_" in n}
    for target in DEFAULT_TARGETS:  # every default target is adapted somewhere in the tiny U-Net
        assert any(n == target or n.endswith("." + target) for n in lora_layers), target
    # rank 4: a Linear(i, o) adapter holds 4 * (i + o) weights; a 3x3 conv 4 * (9 i + o)
    expected = 11 * 128  # the class embedding, (C + 1) x time-embedding width
    for name in lora_layers:
        base = unet.get_submodule(name).get_base_layer()
        if isinstance(base, torch.nn.Linear):
            expected += 4 * (base.in_features + base.out_features)
        else:
            expected += 4 * (base.in_channels * base.kernel_size[0] * base.kernel_size[1] + base.out_channels)
    assert count_parameters(unet) == expected
    assert count_parameters(unet) < 0.15 * count_parameters(unet, trainable_only=False)
    custom = FinetuneSource(FinetuneConfig(base=str(saved_base("unet2d-cond")), lora=True, targets=["to_q", "to_v"])).build(fake_data(), None)
    assert {n.rsplit(".", 1)[-1] for n in {m.rsplit(".lora_", 1)[0] for m, _ in custom.named_parameters() if ".lora_" in m}} == {"to_q", "to_v"}


@pytest.mark.parametrize("kind", ["unet2d-uncond", "cross-attn"])
@pytest.mark.parametrize("lora", [True, False], ids=["lora", "full"])
def test_save_load_round_trip_and_merged_export(tmp_path, saved_base, kind, lora):
    source = FinetuneSource(FinetuneConfig(base=str(saved_base(kind)), lora=lora, rank=4))
    unet = source.build(fake_data(), None)
    randomize_adapters(unet)
    expected = outputs(unet)
    source.save(unet, tmp_path / "run" / "model", make_scheduler(), ModelInfo(class_names=list("abcdefghij")))
    if lora:  # only adapters and the class embedding are written: small
        files = {p.name for p in (tmp_path / "run" / "model").iterdir()}
        assert "diffusion_pytorch_model.safetensors" not in files and "adapter_model.safetensors" in files
    loaded, scheduler, info = load_model(tmp_path / "run")  # unmerged adapters
    assert info.num_classes == 10 and info.extra["finetune"]["kind"] == ("lora" if lora else "full")
    assert torch.allclose(outputs(loaded), expected, atol=1e-6)
    images = sample(loaded, scheduler, torch.tensor([0, 9]), [0, 1], SampleConfig(guidance=1.0, sampler="ddim", steps=2))
    assert images.shape == (2, 1, 16, 16) and torch.isfinite(images).all()  # guided sampling works on it
    # merged export: plain diffusers, no coral_ft needed to read it (a full run has nothing to merge)
    export_model(tmp_path / "run", tmp_path / "merged", merge=lora)
    if not lora:
        with pytest.raises(UserError, match="nothing to merge"):
            export_model(tmp_path / "run", tmp_path / "merged-again", merge=True)
    core = inner_unet(unet)
    cls = type(core.get_base_model() if lora else core)
    plain = cls.from_pretrained(tmp_path / "merged")
    assert torch.allclose(outputs(load_model(tmp_path / "merged")[0]), expected, atol=1e-5)
    if cls is UNet2DModel:
        assert torch.allclose(outputs(plain), expected, atol=1e-5)


def test_merge_equals_adapters_and_base_stays_untouched(saved_base):
    folder = saved_base("unet2d-cond")
    unet = FinetuneSource(FinetuneConfig(base=str(folder), lora=True)).build(fake_data(), None)
    randomize_adapters(unet)
    with_adapters = outputs(unet)
    merged = unet.merge_and_unload()
    assert not any(".lora_" in n or "base_layer" in n for n, _ in merged.named_parameters())
    assert torch.allclose(outputs(merged), with_adapters, atol=1e-5)
    base = load_unet(folder)
    on_disk = load_file(folder / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(on_disk[k], v) for k, v in base.state_dict().items())


def test_unmerged_export_copies_the_adapters(tmp_path, saved_base):
    source = FinetuneSource(FinetuneConfig(base=str(saved_base("unet2d-cond")), lora=True))
    unet = source.build(fake_data(), None)
    randomize_adapters(unet)
    source.save(unet, tmp_path / "model", make_scheduler(), ModelInfo())
    export_model(tmp_path / "model", tmp_path / "copy")
    assert (tmp_path / "copy" / "adapter_model.safetensors").is_file()
    assert torch.allclose(outputs(load_model(tmp_path / "copy")[0]), outputs(unet), atol=1e-6)


def test_a_corrupt_adapter_or_a_vanished_base_is_a_clear_error(tmp_path, saved_base):
    from coral_ft.errors import UserError

    base = saved_base("unet2d-cond")
    source = FinetuneSource(FinetuneConfig(base=str(base), lora=True))
    source.save(source.build(fake_data(), None), tmp_path / "model", make_scheduler(), ModelInfo())
    adapter = tmp_path / "model" / "adapter_model.safetensors"
    intact = adapter.read_bytes()
    adapter.write_bytes(intact[: len(intact) // 2])
    with pytest.raises(UserError, match="cannot read the LoRA adapter"):
        load_model(tmp_path / "model")
    adapter.write_bytes(intact)
    base.rename(tmp_path / "moved")
    with pytest.raises(UserError, match="the base of the LoRA model .* is gone"):
        load_model(tmp_path / "model")


@pytest.mark.parametrize("kind", ["unet2d-cond", "unet2d-uncond"])
def test_peft_loads_the_adapter_folder_as_is_and_merges_like_export(tmp_path, saved_base, kind):
    from peft import PeftModel

    folder = saved_base(kind)
    source = FinetuneSource(FinetuneConfig(base=str(folder), lora=True))
    unet = source.build(fake_data(), None)
    randomize_adapters(unet)
    source.save(unet, tmp_path / "model", make_scheduler(), ModelInfo(class_names=list("abcdefghij")))
    config = json.loads((tmp_path / "model" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(folder.resolve())
    assert config["modules_to_save"] == ["class_embedding"] and set(config["target_modules"]) >= {"to_q", "conv1"}
    # peft alone: the base (given its C + 1 class rows when it had none), then the adapter folder
    extra = {} if kind == "unet2d-cond" else {"num_class_embeds": 11, "low_cpu_mem_usage": False}
    base = UNet2DModel.from_pretrained(folder, **extra)
    peft_model = PeftModel.from_pretrained(base, tmp_path / "model").eval()
    expected = outputs(unet.eval())
    assert torch.allclose(outputs(peft_model), expected, atol=1e-5)
    export_model(tmp_path / "model", tmp_path / "merged", merge=True)
    merged_by_us = UNet2DModel.from_pretrained(tmp_path / "merged")
    merged_by_peft = peft_model.merge_and_unload()
    assert torch.allclose(outputs(merged_by_peft), outputs(merged_by_us), atol=1e-5)
    assert torch.allclose(outputs(load_model(tmp_path / "model")[0]), expected, atol=1e-5)  # coral-ft reads it too


def test_adapters_on_a_changed_base_are_refused(tmp_path, saved_base):
    folder = saved_base("unet2d-cond")
    source = FinetuneSource(FinetuneConfig(base=str(folder), lora=True))
    source.save(source.build(fake_data(), None), tmp_path / "model", make_scheduler(), ModelInfo())
    changed = load_unet(folder)
    with torch.no_grad():
        changed.conv_in.weight.add_(0.1)
    changed.save_pretrained(folder)  # someone retrained or replaced the base in place
    with pytest.raises(UserError, match="has changed since they were trained"):
        load_model(tmp_path / "model")


def test_a_lora_model_card_says_how_to_load_adapters(tmp_path, saved_base):
    source = FinetuneSource(FinetuneConfig(base=str(saved_base("unet2d-uncond")), lora=True, rank=4))
    unet = source.build(fake_data(), None)
    source.save(unet, tmp_path / "model", make_scheduler(), ModelInfo(class_names=list("abcdefghij")))
    card = (tmp_path / "model" / "README.md").read_text()
    assert "PeftModel.from_pretrained" in card and "UNet2DModel.from_pretrained(\"PATH\")" not in card

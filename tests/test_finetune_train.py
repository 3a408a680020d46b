"""Fine-tuning through the real trainer and the real CLI: every method on every base type,
LoRA checkpoints that hold only what trains, and the frozen base left as it was."""

from __future__ import annotations

import pytest
import torch
from diffusers import UNet2DModel
from safetensors.torch import load_file

from coral_ft.checkpoint.model import load_model
from coral_ft.checkpoint.training import list_checkpoints
from coral_ft.finetune.source import FinetuneSource
from coral_ft.objectives import OBJECTIVES
from coral_ft.train.trainer import Trainer, train
from tests.conftest import BASE_KINDS, one_error_line, run_cli
from tests.test_finetune_bases import fake_data

ONE_STEP = {"train.max_steps": 1, "train.batch_size": 8, "train.checkpoint_every": 1, "train.log_every": 1}


@pytest.mark.parametrize("method", sorted(OBJECTIVES))
@pytest.mark.parametrize("kind", BASE_KINDS)
def test_one_finetune_step_for_each_method_on_each_base(tmp_path, tiny_config, saved_base, kind, method):
    lora = BASE_KINDS.index(kind) % 2 == 0  # LoRA on two base types, full on the third
    cfg = tiny_config(**{"train.batch_size": 8, "objective.method": method, "finetune.base": str(saved_base(kind)), "finetune.lora": lora})
    trainer = Trainer(cfg, tmp_path / "run", FinetuneSource(cfg.finetune), progress=False, data=fake_data())
    before = {n: p.detach().clone() for n, p in trainer.denoiser.named_parameters() if p.requires_grad}
    assert any("class_embedding" in n for n in before)  # trained in full (a peft modules_to_save under LoRA)
    if lora:
        assert all(".lora_" in n or "class_embedding" in n or n.startswith("head.") for n in before)
    terms = trainer.train_step()
    assert torch.isfinite(terms["loss"])
    after = dict(trainer.denoiser.named_parameters())
    changed = {n for n, p in before.items() if not torch.equal(p, after[n])}
    assert any(".lora_B." in n for n in changed) if lora else any("mid_block" in n for n in changed)


def test_lora_finetune_leaves_the_base_weights_and_merges_exactly(tmp_path, tiny_config, saved_base, capsys):
    base = saved_base("unet2d-cond")
    before = load_file(base / "diffusion_pytorch_model.safetensors")
    code, out, err = run_cli(
        ["finetune", "--base", str(base), "--lora", "--rank", "4", "--lora-alpha", "8", "--lora-targets", "to_q,to_v",
         "--lora-targets", "conv1", "--method", "coral", "--out", str(tmp_path / "run"), "--dataset", "digits-lt",
         "--imbalance", "0.1", "--max-steps", "2", "--batch-size", "8", "--set", "train.sample_every=100",
         "--set", "data.image_size=16", "--no-progress"],  # the bases are 16x16; the digits-lt recipe reads 8x8
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert load_file(base / "diffusion_pytorch_model.safetensors").keys() == before.keys()
    assert all(torch.equal(v, before[k]) for k, v in load_file(base / "diffusion_pytorch_model.safetensors").items())
    adapted, _, _ = load_model(tmp_path / "run")
    frozen = {k.removeprefix("base_model.model.").replace(".base_layer", ""): v
              for k, v in adapted.state_dict().items() if ".lora_" not in k}
    assert all(torch.equal(frozen[k], v) for k, v in before.items() if "class_embedding" not in k)
    targets = {k.split(".lora_")[0].rsplit(".", 1)[-1] for k in adapted.state_dict() if ".lora_" in k}
    assert targets == {"to_q", "to_v", "conv1"}
    code, out, err = run_cli(["export", str(tmp_path / "run"), "--merge", "--out", str(tmp_path / "merged")], capsys)
    assert code == 0, err
    merged = UNet2DModel.from_pretrained(tmp_path / "merged")
    x, t, y = torch.randn(2, 1, 16, 16), torch.tensor([10, 700]), torch.tensor([2, 10])
    with torch.no_grad():
        assert torch.allclose(merged(x, t, class_labels=y).sample, adapted(x, t, class_labels=y).sample, atol=1e-5)


def test_cli_errors_are_one_line(tmp_path, saved_base, capsys):
    args = ["--out", str(tmp_path / "run"), "--dataset", "digits-lt", "--set", "data.image_size=16", "--no-progress"]
    code, _, err = run_cli(["finetune", *args], capsys)
    assert code == 2 and "pass --base" in err
    code, _, err = run_cli(["finetune", "--base", str(tmp_path / "nothing"), *args], capsys)
    assert code == 2 and "not found" in err and one_error_line(err)
    code, _, err = run_cli(["finetune", "--base", str(saved_base("unet2d-cond")), "--lora", "--lora-targets", "qkv", *args], capsys)
    assert code == 2 and "'qkv' matches no" in err
    code, _, err = run_cli(["finetune", "--base", str(saved_base("unet2d-cond")), "--dataset", "cifar10-lt", "--out", str(tmp_path / "r2"), "--data-root", str(tmp_path)], capsys)
    assert code == 2 and one_error_line(err)
    code, _, err = run_cli(["convert", str(tmp_path / "none.pt"), "--out", str(tmp_path / "c")], capsys)
    assert code == 2 and "checkpoint not found" in err
    code, _, err = run_cli(["convert", "--from", "ldm", str(tmp_path / "none.pt"), "--out", str(tmp_path / "c")], capsys)
    assert code == 2 and "--from must be one of" in err


def test_resumed_lora_run_ends_where_an_uninterrupted_one_does(tmp_path, tiny_config, saved_base):
    base = str(saved_base("unet2d-uncond"))

    def cfg(steps):
        return tiny_config(**{**ONE_STEP, "train.max_steps": steps, "train.checkpoint_every": 2, "finetune.base": base, "finetune.lora": True})

    train(cfg(3), tmp_path / "a", source=FinetuneSource(cfg(3).finetune), progress=False)
    train(cfg(2), tmp_path / "b", source=FinetuneSource(cfg(2).finetune), progress=False)
    train(cfg(3), tmp_path / "b", resume=True, source=FinetuneSource(cfg(3).finetune), progress=False)
    (_, a), (_, b) = list_checkpoints(tmp_path / "a" / "checkpoints")[-1], list_checkpoints(tmp_path / "b" / "checkpoints")[-1]
    wa, wb = load_file(a / "trainable.safetensors"), load_file(b / "trainable.safetensors")
    assert wa.keys() == wb.keys()
    # Bitwise on the CPU. On a GPU the trainer runs there, and its nondeterministic kernels, through
    # Adam's near-sign first steps, leave differences of the order of the learning rate (seen: 6e-5,
    # from scratch as well).
    atol = 0.0 if not torch.cuda.is_available() else 2e-4
    for k in wa:
        assert torch.allclose(wa[k], wb[k], rtol=0.0, atol=atol), k


@pytest.mark.parametrize("extra, fragment", [
    (["--rank", "4"], "--rank sets LoRA adapters, but this fine-tune trains every weight: add --lora"),
    (["--full", "--lora-alpha", "8", "--lora-targets", "to_q"], "--lora-alpha, --lora-targets set LoRA adapters"),
    (["--lora", "--preset", "small"], "a fine-tune keeps its base's architecture: drop --preset"),
])  # fmt: skip
def test_finetune_options_that_would_not_apply_are_refused(tmp_path, saved_base, capsys, extra, fragment):
    args = ["--base", str(saved_base("unet2d-cond")), "--out", str(tmp_path / "run"), "--dataset", "digits-lt", "--dry-run"]
    code, _, err = run_cli(["finetune", *args, *extra], capsys)
    assert code == 2 and fragment in err
    assert len(err.strip().splitlines()) == 1  # the error alone: no note of the recipe of a run that does not start


def test_the_note_of_the_recipe_comes_only_when_the_run_proceeds(tmp_path, saved_base, capsys):
    args = ["--out", str(tmp_path / "run"), "--dataset", "digits-lt", "--dry-run"]
    code, _, err = run_cli(["finetune", "--base", str(tmp_path / "nothing"), *args], capsys)
    assert code == 2 and err.strip().splitlines()[0].startswith("error: ") and len(err.strip().splitlines()) == 1
    code, out, err = run_cli(["finetune", "--base", str(saved_base("unet2d-cond")), "--lora", "--rank", "4", *args], capsys)
    assert code == 0 and "no --recipe: the digits-lt recipe" in err and "rank = 4" in out

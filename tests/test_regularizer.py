"""CoralRegularizer: CORAL in a user's own loop is the same code, and the same training, as `coral-ft train`."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel, UNet2DModel

from coral_ft.checkpoint.model import load_head
from coral_ft.models.denoiser import build_head
from coral_ft.models.presets import build_unet
from coral_ft.objectives.coral import CoralSettings, coral_term
from coral_ft.train.regularizer import CoralRegularizer
from coral_ft.train.trainer import Trainer, warmup_factor


def test_a_users_loop_trains_to_the_weights_of_coral_ft_train(tmp_path, tiny_config):
    # The user's loop: add_noise, unet(...).sample, MSE + coral(true labels, t); Adam, clipping and
    # the warm-up as the trainer has them; the trainer's batches. Compared: the raw (non-EMA) weights.
    steps = 3
    config = tiny_config(**{"objective.method": "coral", "train.max_steps": steps})
    trainer = Trainer(config, tmp_path / "run", progress=False)
    s, t_cfg = config.objective.active, config.train
    unet = UNet2DModel.from_config(trainer.module.unet.config)
    unet.load_state_dict(trainer.module.unet.state_dict())
    coral = CoralRegularizer(unet, trainer.scheduler.config.num_train_timesteps, weight=s.weight, tau_sc=s.tau_sc,
                             tau_r=s.tau_r, head=build_head(unet, config.model.head_dim, config.model.head_pooling))
    coral.head.load_state_dict(trainer.module.head.state_dict())
    params = [*unet.parameters(), *coral.parameters()]
    optimizer = torch.optim.Adam(params, lr=t_cfg.lr)
    warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: warmup_factor(i, t_cfg.warmup_steps))
    unet.train()
    for _ in range(steps):
        batch = trainer.batches.draw(trainer.step)  # drawn from (seed, step): the batch train_step draws next
        logged = trainer.train_step()
        noisy = trainer.scheduler.add_noise(batch.x0, batch.noise, batch.t)
        pred = unet(noisy, batch.t, class_labels=batch.cond_labels).sample
        loss = F.mse_loss(pred, batch.noise) + coral(batch.labels, batch.t)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, t_cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        warmup.step()
        assert torch.equal(coral.last_terms["supcon"], logged["supcon"])
    theirs = dict(trainer.module.named_parameters())
    mine = {**{f"unet.{k}": v for k, v in unet.named_parameters()},
            **{f"head.{k}": v for k, v in coral.head.named_parameters()}}
    assert theirs.keys() == mine.keys()
    assert not torch.equal(theirs["head.proj.weight"], trainer.ema.shadow_params[-2])  # trained, and not the EMA
    for name in theirs:
        assert torch.allclose(mine[name], theirs[name], rtol=0, atol=1e-7), name


def _term_by_hand(coral, h, labels, t):
    return coral_term(coral.head(h), labels, t, coral.num_train_timesteps, coral.settings)[0]


def _cross_attention_unet(**class_embeds) -> UNet2DConditionModel:
    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        norm_num_groups=8, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16, attention_head_dim=4,
        **class_embeds,
    )


@pytest.mark.parametrize("kind", ["unet2d", "cross-attn", "lora"])
def test_the_term_is_the_heads_supcon_of_the_last_forwards_bottleneck(kind):
    labels, t = torch.tensor([0, 0, 1, 1, 2, 3]), torch.tensor([0, 10, 200, 500, 900, 999])
    if kind == "cross-attn":
        unet = _cross_attention_unet(num_class_embeds=5)
        x, extra = torch.randn(6, 4, 8, 8), {"encoder_hidden_states": torch.randn(6, 3, 16)}
    else:
        torch.manual_seed(0)
        unet = build_unet("tiny", 16, 1, 4)
        x, extra = torch.randn(6, 1, 16, 16), {}
    if kind == "lora":
        from peft import LoraConfig, get_peft_model

        unet = get_peft_model(unet, LoraConfig(r=4, target_modules=["conv1", "conv2"]))
    seen = {}
    (unet.base_model.model if kind == "lora" else unet).mid_block.register_forward_hook(
        lambda m, i, o: seen.setdefault("h", o))
    coral = CoralRegularizer(unet, 1000, weight=0.5, head=16)
    assert [n for n, _ in coral.named_parameters()] == ["head.proj.weight", "head.proj.bias"]  # the head only
    unet(x, t, class_labels=labels, **extra)
    term = coral(labels, t)
    assert term.ndim == 0 and term > 0
    assert torch.equal(term, _term_by_hand(coral, seen["h"], labels, t))
    assert set(coral.last_terms) == {"supcon", "contrastive", "lambda_mean"}
    term.backward()
    assert coral.head.proj.weight.grad is not None
    trained = [p for n, p in unet.named_parameters() if p.requires_grad and "down_blocks" in n]
    assert trained and all(p.grad is not None for p in trained)  # the term reaches the U-Net's down path
    with pytest.raises(RuntimeError, match="call the U-Net"):  # each forward's bottleneck is used once
        coral(labels, t)


def test_one_timestep_for_the_batch_and_the_batch_mean_mode():
    torch.manual_seed(0)
    unet = build_unet("tiny", 16, 1, 4)
    coral = CoralRegularizer(unet, 1000, lambda_mode="batch-mean")
    labels, x = torch.tensor([0, 0, 1, 1]), torch.randn(4, 1, 16, 16)
    unet(x, 250, class_labels=labels)
    h = coral._tap.output
    assert torch.equal(coral(labels, 250), _term_by_hand(coral, h, labels, torch.full((4,), 250)))
    with pytest.raises(ValueError, match="lambda_mode"):
        CoralRegularizer(unet, 1000, lambda_mode="mean")
    with pytest.raises(ValueError, match="labels 3"):
        unet(x, 250, class_labels=labels)
        coral(labels[:3], 250)


def test_detach_removes_the_hook_and_the_head_saves_and_loads(tmp_path):
    torch.manual_seed(0)
    unet = build_unet("tiny", 16, 1, 4)
    hooks = len(unet.mid_block._forward_hooks)
    coral = CoralRegularizer(unet, 1000, head=8)
    assert len(unet.mid_block._forward_hooks) == hooks + 1
    coral.detach()
    assert len(unet.mid_block._forward_hooks) == hooks and not coral.attached
    coral.remove()  # twice: nothing left to remove
    with pytest.raises(RuntimeError, match="detached"):
        coral(torch.tensor([0, 1]), torch.tensor([1, 2]))
    h = torch.randn(4, 64, 8, 8)
    assert torch.isfinite(coral(torch.tensor([0, 0, 1, 1]), torch.tensor([1, 2, 3, 4]), bottleneck=h))

    folder = coral.save_head(tmp_path / "head")
    assert torch.equal(load_head(folder).proj.weight, coral.head.proj.weight)  # the run's RUN/head/ format
    other = CoralRegularizer(unet, 1000, head=8)
    weight = other.head.proj.weight
    other.load_head(folder)
    assert other.head.proj.weight is weight and torch.equal(weight, coral.head.proj.weight)  # in place
    with pytest.raises(RuntimeError, match="size mismatch"):
        CoralRegularizer(unet, 1000, head=16).load_head(folder)
    with pytest.raises(FileNotFoundError):
        other.load_head(tmp_path / "nothing")


def test_the_objective_runs_the_regularisers_computation(monkeypatch):
    # One function computes the term: CoralObjective.batch_term and CoralRegularizer both call it.
    from coral_ft.objectives import coral as coral_module
    from coral_ft.train import regularizer

    calls = []
    monkeypatch.setattr(coral_module, "coral_term", lambda *a: calls.append("objective") or (torch.zeros(()), {}))
    monkeypatch.setattr(regularizer, "coral_term", lambda *a: calls.append("regulariser") or (torch.zeros(()), {}))
    objective = coral_module.CoralObjective(CoralSettings(), ctx=type("Ctx", (), {
        "regularise_dropped": True, "schedule": type("S", (), {"num_train_timesteps": 1000})})())
    batch = type("B", (), {"labels": torch.tensor([0, 0]), "t": torch.tensor([1, 2]), "cond_labels": None})()
    objective.batch_term(torch.randn(2, 4), batch)
    torch.manual_seed(0)
    CoralRegularizer(build_unet("tiny", 16, 1, 4), 1000).loss(torch.randn(2, 4), torch.tensor([0, 0]), torch.tensor([1, 2]))
    assert calls == ["objective", "regulariser"]


TWO_PROCESSES = textwrap.dedent(
    """
    import sys
    import torch
    from accelerate import debug_launcher

    def grads(world):
        import torch.nn.functional as F
        from accelerate import Accelerator
        from coral_ft.models.denoiser import build_head
        from coral_ft.models.presets import build_unet
        from coral_ft.train.regularizer import CoralRegularizer

        accelerator = Accelerator(cpu=True) if world > 1 else None
        rank = accelerator.process_index if accelerator is not None else 0
        torch.manual_seed(0)
        unet = build_unet("tiny", 16, 1, 4)
        coral = CoralRegularizer(unet, 1000, weight=1.0)
        g = torch.Generator().manual_seed(1)
        x0, noise = torch.randn(8, 1, 16, 16, generator=g), torch.randn(8, 1, 16, 16, generator=g)
        labels, t = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3]), torch.randint(0, 1000, (8,), generator=g)
        mine = slice(rank * 8 // world, (rank + 1) * 8 // world)
        if accelerator is not None:
            unet, coral = accelerator.prepare(unet, coral)
        pred = unet(x0[mine] + noise[mine], t[mine], class_labels=labels[mine]).sample
        loss = F.mse_loss(pred, noise[mine]) + coral(labels[mine], t[mine])
        loss.backward()  # DDP averages the processes' gradients
        named = [*unet.named_parameters(), *coral.named_parameters()]
        out = {n.removeprefix("module."): p.grad.clone() for n, p in named if p.grad is not None}
        return out, rank

    def run():
        out, rank = grads(2)
        if rank == 0:
            torch.save(out, sys.argv[1] + "/two.pt")

    torch.save(grads(1)[0], sys.argv[1] + "/one.pt")
    debug_launcher(run, num_processes=2)
    """
)


@pytest.mark.slow
def test_two_processes_get_the_gradient_of_one_process(tmp_path):
    # Labels 0..3 in each half: every anchor's positive lives in the other process's half, so the
    # term is right only when the embeddings (and their gradients) are gathered.
    script = tmp_path / "two.py"
    script.write_text(TWO_PROCESSES)
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, str(script), str(tmp_path)], cwd=root, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    one, two = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    assert one.keys() == two.keys() and "head.proj.weight" in one
    for name in one:
        assert torch.allclose(one[name], two[name], rtol=1e-4, atol=1e-6), name

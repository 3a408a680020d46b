import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from diffusers import UNet2DModel
from safetensors.torch import load_file

from coral_ft.checkpoint.training import list_checkpoints
from coral_ft.config import load_config
from coral_ft.errors import UserError
from coral_ft.models.dropout import KeyedDropout
from coral_ft.train.trainer import Trainer, TrainingDiverged, train


def _final_weights(run: Path) -> tuple[dict, dict]:
    step, path = list_checkpoints(run / "checkpoints")[-1]
    return load_file(path / "trainable.safetensors"), load_file(path / "ema.safetensors")


def test_run_directory_layout_and_export_loads_with_plain_diffusers(tmp_path, tiny_config):
    cfg = tiny_config(**{"objective.method": "coral", "train.sample_every": 4})
    model_dir = train(cfg, tmp_path / "run", progress=False)
    run = tmp_path / "run"
    assert model_dir == run / "model"
    for name in ("config.toml", "metrics.jsonl", "samples/step-0000004.png", "head/head.safetensors"):
        assert (run / name).is_file(), name
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]
    assert {"loss", "diffusion", "supcon", "contrastive", "lr", "steps_per_sec"} <= set(records[0])
    # plain diffusers, no coral_ft involved
    unet = UNet2DModel.from_pretrained(model_dir)
    assert unet.config.num_class_embeds == 11
    assert not any("head" in k for k in load_file(model_dir / "diffusion_pytorch_model.safetensors"))
    # the exported weights are the EMA weights of the last checkpoint
    _, ema = _final_weights(run)
    name = "mid_block.resnets.0.conv1.weight"
    assert torch.equal(unet.state_dict()[name], ema[name])


def test_interrupted_and_resumed_run_ends_with_the_same_weights(tmp_path, tiny_config):
    full = tiny_config(**{"objective.method": "coral", "train.max_steps": 6})
    train(full, tmp_path / "a", progress=False)
    train(tiny_config(**{"objective.method": "coral", "train.max_steps": 3}), tmp_path / "b", progress=False)
    train(full, tmp_path / "b", resume=True, progress=False)
    (wa, ea), (wb, eb) = _final_weights(tmp_path / "a"), _final_weights(tmp_path / "b")
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
        if k in ea:
            assert torch.equal(ea[k], eb[k]), k


def test_checkpoints_keep_the_last_k(tmp_path, tiny_config):
    train(tiny_config(**{"train.max_steps": 8, "train.keep_checkpoints": 2}), tmp_path / "r", progress=False)
    assert [s for s, _ in list_checkpoints(tmp_path / "r" / "checkpoints")] == [6, 8]


def test_existing_run_needs_resume_and_resume_starts_a_run_without_checkpoint(tmp_path, tiny_config):
    cfg = tiny_config()
    train(cfg, tmp_path / "r", resume=True, progress=False)  # a cluster requeue script always passes --resume
    assert list_checkpoints(tmp_path / "r" / "checkpoints")
    with pytest.raises(UserError, match="already holds a run"):
        train(cfg, tmp_path / "r", progress=False)
    with pytest.raises(UserError, match="differ"):
        train(tiny_config(**{"objective.method": "coral"}), tmp_path / "r", resume=True, progress=False)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, tiny_config):
    trainer = Trainer(tiny_config(**{"train.max_steps": 6}), tmp_path, progress=False)
    class Poisoned:
        """The real objective, whose loss turns NaN from step 2 on."""

        def __init__(self, real):
            self.real = real

        def __getattr__(self, name):
            return getattr(self.real, name)

        def __call__(self, denoiser, batch):
            out = self.real(denoiser, batch)
            if trainer.step >= 2:
                out.loss = out.loss * float("nan")
            return out

    trainer.objective = Poisoned(trainer.objective)
    with pytest.raises(TrainingDiverged, match="step-0000002"):
        trainer.run()
    ckpts = list_checkpoints(tmp_path / "checkpoints")
    assert [s for s, _ in ckpts] == [2]
    weights = load_file(ckpts[0][1] / "trainable.safetensors")
    assert all(torch.isfinite(v).all() for v in weights.values())


METHODS = sorted(__import__("coral_ft.objectives", fromlist=["OBJECTIVES"]).OBJECTIVES)
DROPOUT = 0.1  # the paper's U-Net: masks must not depend on how the batch is split


def step_gradients(trainer: Trainer) -> dict[str, torch.Tensor]:
    """The gradient of one training step (no optimiser step), by parameter name."""
    trainer.optimizer.step = lambda: None
    trainer.optimizer.zero_grad = lambda set_to_none=True: None
    trainer.train_step()
    return {n: p.grad.detach().clone() for n, p in trainer.module.named_parameters() if p.grad is not None}


def relative_gap(a: dict, b: dict) -> float:
    """The largest difference of two gradients, per parameter relative to its own size; a parameter
    whose true gradient is zero (the attention key biases: softmax ignores a shift shared by a row)
    is measured against a thousandth of the largest gradient, not against its rounding noise."""
    assert a.keys() == b.keys() and len(a) > 10
    floor = 1e-3 * max(g.abs().max().item() for g in a.values())
    return max(((a[k] - b[k]).abs().max() / a[k].abs().max().clamp(min=floor)).item() for k in a)


@pytest.mark.parametrize("method", METHODS)
def test_gradient_accumulation_matches_one_big_batch_with_dropout(tmp_path, tiny_config, method):
    # Every draw of a step (dropout masks included) is made for the global batch; batch-level terms
    # (CORAL's SupCon, T2H's transfer pool) span the whole step batch, not one micro-batch.
    cfg = {"objective.method": method, "train.max_steps": 1, "model.dropout": DROPOUT}
    one = Trainer(tiny_config(**cfg), tmp_path / "one", progress=False)
    acc = Trainer(tiny_config(**cfg, **{"train.grad_accum": 4}), tmp_path / "acc", progress=False)
    assert any(isinstance(m, KeyedDropout) for m in one.module.modules())
    grads = [step_gradients(t) for t in (one, acc)]
    assert relative_gap(*grads) < 1e-4
    if method == "coral":
        assert any("head" in k for k in grads[0])  # the head gets its SupCon gradient both ways


def test_dropout_is_active_in_the_equivalence_tests(tmp_path, tiny_config):
    # The equality above would hold trivially if no mask were drawn: other keys, other gradient.
    trainer = Trainer(tiny_config(**{"train.max_steps": 1, "model.dropout": DROPOUT}), tmp_path, progress=False)
    batch = trainer.batches.split(trainer.batches.draw(trainer.step), trainer.step)[0]
    x_t = trainer.process.add_noise(batch.x0, batch.noise, batch.t)
    trainer.model.train()
    a = trainer.model(x_t, batch.t, batch.cond_labels, dropout_keys=batch.keys).eps
    b = trainer.model(x_t, batch.t, batch.cond_labels, dropout_keys=batch.keys).eps
    c = trainer.model(x_t, batch.t, batch.cond_labels, dropout_keys=batch.keys + 1).eps
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_grad_scaler_state_travels_with_the_checkpoint(tmp_path, tiny_config):
    # fp16 needs a GPU for its GradScaler; the checkpoint path is checked with a CPU scaler.
    trainer = Trainer(tiny_config(), tmp_path / "r", progress=False)
    trainer.accelerator.scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    trainer.accelerator.scaler._lazy_init_scale_growth_tracker(torch.device("cpu"))
    trainer.accelerator.scaler.update(new_scale=37.0)
    trainer.save_checkpoint()
    resumed = Trainer(tiny_config(), tmp_path / "r", progress=False)
    resumed.accelerator.scaler = torch.amp.GradScaler("cpu")
    resumed.load_checkpoint(list_checkpoints(tmp_path / "r" / "checkpoints")[-1][1])
    assert resumed.accelerator.scaler.get_scale() == 37.0


TWO_PROCESS_SCRIPT = textwrap.dedent(
    """
    import sys
    import torch
    from accelerate import debug_launcher
    from coral_ft.config import load_config

    def run():
        from coral_ft.train.trainer import Trainer
        from tests.test_trainer import step_gradients
        out = {{}}
        for method in {methods!r}:
            trainer = Trainer(load_config(None, {{**{overrides!r}, "objective.method": method}}), sys.argv[1] + "/" + method,
                              progress=False)
            out[method] = step_gradients(trainer)  # averaged over the processes by DDP
        if trainer.accelerator.is_main_process:
            torch.save({{**out, "processes": trainer.accelerator.num_processes}}, sys.argv[2])

    debug_launcher(run, num_processes=2)
    """
)


@pytest.mark.slow
def test_two_processes_compute_the_gradient_of_one_process_with_dropout(tmp_path, tiny_config):
    from tests.conftest import tiny_overrides

    overrides = tiny_overrides(**{"train.max_steps": 1, "model.dropout": DROPOUT})
    script = tmp_path / "two.py"
    script.write_text(TWO_PROCESS_SCRIPT.format(overrides=overrides, methods=METHODS))
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}  # the script imports this module's helper
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "two"), str(tmp_path / "grads.pt")], cwd=root, env=env,
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = torch.load(tmp_path / "grads.pt")
    assert two["processes"] == 2  # DDP averaged two processes' gradients
    for method in METHODS:
        one = step_gradients(Trainer(tiny_config(**{"objective.method": method, "train.max_steps": 1, "model.dropout": DROPOUT}),
                                     tmp_path / "one" / method, progress=False))
        assert relative_gap(one, two[method]) < 1e-4, method


@pytest.mark.slow
def test_two_processes_train_to_the_weights_of_one_process(tmp_path, tiny_config):
    from tests.conftest import tiny_overrides

    overrides = tiny_overrides(**{"objective.method": "coral", "train.max_steps": 2, "model.dropout": DROPOUT})
    train(load_config(None, overrides), tmp_path / "one", progress=False)
    script = tmp_path / "two.py"
    script.write_text(TRAIN_TWO_PROCESSES.format(overrides=overrides))
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "two")], cwd=root, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "two").glob("rank-*")) == ["rank-0-of-2", "rank-1-of-2"]
    (a, _), (b, _) = _final_weights(tmp_path / "one"), _final_weights(tmp_path / "two")
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5


TRAIN_TWO_PROCESSES = textwrap.dedent(
    """
    import sys
    from accelerate import debug_launcher
    from coral_ft.config import load_config

    def run():
        from accelerate import PartialState
        from coral_ft.train.trainer import train
        train(load_config(None, {overrides!r}), sys.argv[1], progress=False)
        state = PartialState()
        with open(sys.argv[1] + f"/rank-{{state.process_index}}-of-{{state.num_processes}}", "w"):
            pass

    debug_launcher(run, num_processes=2)
    """
)


def test_sigterm_writes_a_checkpoint_and_exits_cleanly_then_resume_continues(tmp_path):
    import signal
    import time

    run = tmp_path / "r"
    args = [sys.executable, "-m", "coral_ft", "train", "--from-scratch", "--out", str(run), "--dataset", "digits-lt",
            "--imbalance", "0.1", "--preset", "micro", "--max-steps", "5000", "--batch-size", "8", "--no-progress",
            "--set", "data.image_size=8", "--set", "train.log_every=1", "--set", "train.checkpoint_every=100000",
            "--set", "train.sample_every=100000"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and not (run / "metrics.jsonl").is_file():
        time.sleep(0.5)
    time.sleep(1.0)  # a few steps in
    proc.send_signal(signal.SIGTERM)  # a cluster's pre-emption
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 143, err[-2000:]
    assert "run the same command with --resume" in err and "Traceback" not in err
    (step, _), = list_checkpoints(run / "checkpoints")
    logged = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert 0 < step < 5000 and logged[-1] == step  # the step it stopped at, logged once and saved
    resumed = subprocess.run([sys.executable, "-m", "coral_ft", "train", "--from-scratch", "--out", str(run), "--resume",
                              "--max-steps", str(step + 2), "--no-progress"], capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    logged = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert logged == list(range(1, step + 3))  # every step once


def test_metrics_logged_after_the_last_checkpoint_are_dropped_on_resume(tmp_path, tiny_config):
    cfg = tiny_config(**{"train.max_steps": 4, "train.log_every": 1, "train.checkpoint_every": 2})
    train(cfg, tmp_path / "r", progress=False)
    import shutil

    shutil.rmtree(list_checkpoints(tmp_path / "r" / "checkpoints")[-1][1])  # died between logging step 4 and its checkpoint
    train(cfg, tmp_path / "r", resume=True, progress=False)
    steps = [json.loads(line)["step"] for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_tensorboard_tracking_gets_every_term_and_the_grids(tmp_path, tiny_config):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = tiny_config(**{"objective.method": "coral", "train.report_to": "tensorboard", "train.sample_every": 4})
    train(cfg, tmp_path / "r", progress=False)
    (events,) = [p.parent for p in (tmp_path / "r" / "logs").rglob("events.out.tfevents.*")][:1]
    acc = EventAccumulator(str(events))
    acc.Reload()
    assert {"loss", "diffusion", "supcon", "contrastive", "lr", "steps_per_sec"} <= set(acc.Tags()["scalars"])
    assert [e.step for e in acc.Scalars("loss")] == [2, 4]
    assert acc.Tags()["images"], "the sample grid reaches the tracker"


def test_a_run_resumed_between_log_lines_logs_what_an_uninterrupted_run_logs(tmp_path, tiny_config):
    import shutil

    cfg = tiny_config(**{"train.max_steps": 8, "train.log_every": 4, "train.checkpoint_every": 3})
    train(cfg, tmp_path / "a", progress=False)
    train(cfg, tmp_path / "b", progress=False)
    shutil.rmtree(list_checkpoints(tmp_path / "b" / "checkpoints")[-1][1])  # died after the checkpoint of step 6
    train(cfg, tmp_path / "b", resume=True, progress=False)  # resumes at 6, between the lines of steps 4 and 8
    read = lambda run: [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    a, b = read(tmp_path / "a"), read(tmp_path / "b")
    assert [r["step"] for r in b] == [r["step"] for r in a] == [4, 8]
    # step 8's line averages steps 5-8 in both runs, the interrupted one across the resume
    assert b[-1]["loss"] == pytest.approx(a[-1]["loss"], rel=1e-6)


def test_the_gpu_data_path_gives_the_host_paths_batches(tmp_path, tiny_config):
    # train.data_on_device = "always" runs the GPU branch on a CPU: the data set kept "on the device",
    # indexed and flipped there, the noise drawn from the device's own seeded generator.
    from coral_ft.data.batches import derived_seed
    from coral_ft.train.batches import STREAM_DEVICE_NOISE

    host = Trainer(tiny_config(**{"train.data_on_device": "never"}), tmp_path / "h", progress=False)
    device = Trainer(tiny_config(**{"train.data_on_device": "always", "data.hflip": True}), tmp_path / "d", progress=False)
    host_flip = Trainer(tiny_config(**{"train.data_on_device": "never", "data.hflip": True}), tmp_path / "f", progress=False)
    assert device.batches.noise_on_device and not host.batches.noise_on_device
    dropped = []
    for step in range(40):
        device.step = host_flip.step = step
        a, b = host_flip.batches.draw(step), device.batches.draw(step)
        for name in ("x0", "labels", "t", "keys"):  # images, flips, timesteps, dropout keys: the same
            assert torch.equal(getattr(a, name), getattr(b, name)), name
        g = torch.Generator().manual_seed(derived_seed(device.config.train.seed, step, STREAM_DEVICE_NOISE))
        assert torch.equal(b.noise, torch.randn(b.x0.shape, generator=g))  # the device's own stream, by (seed, step)
        # the labels are dropped by the shared stream's next draws: other draws, the same rule
        kept = b.cond_labels != device.null_label
        assert torch.equal(b.cond_labels[kept], b.labels[kept])
        dropped.append(1 - kept.float().mean().item())
    assert 0.03 < sum(dropped) / len(dropped) < 0.2  # p_uncond = 0.1
    assert torch.isfinite(device.train_step()["loss"])

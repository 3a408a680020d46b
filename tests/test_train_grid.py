"""The end-of-run and periodic sample grids: few steps, off with train.sample_grid = 0, stopped by
a stop signal within a denoising step, and invisible to training (weights, metrics)."""

import json
import os
import signal

import pytest
import torch
from safetensors.torch import load_file

from coral_ft.checkpoint.training import list_checkpoints
from coral_ft.config import load_config
from coral_ft.errors import ConfigError
from coral_ft.train import grid
from coral_ft.train.trainer import TrainingStopped, train


def _logged(run) -> list[dict]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "steps_per_sec"} for r in records]


def test_grids_change_neither_the_weights_nor_the_metrics(tmp_path, tiny_config):
    # A grid at every step (EMA copy, generators of its own) against none at all.
    with_grids = tiny_config(**{"objective.method": "coral", "train.sample_every": 1, "train.log_every": 1})
    without = tiny_config(**{"objective.method": "coral", "train.sample_grid": 0, "train.log_every": 1})
    train(with_grids, tmp_path / "a", progress=False)
    train(without, tmp_path / "b", progress=False)
    assert sorted(p.name for p in (tmp_path / "a" / "samples").iterdir()) == [f"step-000000{i}.png" for i in range(1, 5)]
    assert not (tmp_path / "b" / "samples").exists()  # sample_grid = 0: no grid, not even the last
    assert _logged(tmp_path / "a") == _logged(tmp_path / "b")
    (_, a), (_, b) = (list_checkpoints(tmp_path / r / "checkpoints")[-1] for r in "ab")
    for name in ("trainable.safetensors", "ema.safetensors"):
        wa, wb = load_file(a / name), load_file(b / name)
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), name


def test_sample_grid_must_not_be_negative():
    with pytest.raises(ConfigError, match="train.sample_grid must be >= 0"):
        load_config(None, {"train.sample_grid": -1})


def test_a_grid_takes_few_steps_and_the_paper_unet_on_a_cpu_one_image_per_class(tiny_unet, monkeypatch):
    from diffusers import DDPMScheduler

    sched = DDPMScheduler(num_train_timesteps=1000)
    cpu = torch.device("cpu")
    paper = load_config("cifar10-lt").sample  # 1000-step DDPM, bf16
    drawn = grid.grid_settings(tiny_unet, sched, paper, cpu)
    assert (drawn.sampler, drawn.steps, drawn.guidance) == ("dpm++", grid.GRID_STEPS, paper.guidance)
    digits = load_config("digits-lt").sample  # DPM-Solver++ 10: the run's own sampler, unchanged
    assert grid.grid_settings(tiny_unet, sched, digits, cpu) == digits
    monkeypatch.setattr("coral_ft.devices.cpu_bf16", lambda: False)
    assert grid.grid_settings(tiny_unet, sched, paper, cpu).precision == "no"  # no native bf16: fp32
    assert grid.grid_per_class(tiny_unet, 10, cpu) == 10
    monkeypatch.setattr(grid, "CPU_GRID_MAX_PARAMS", 1000)  # a U-Net as large, for the CPU, as the paper's
    assert grid.grid_per_class(tiny_unet, 10, cpu) == 1
    assert grid.grid_per_class(tiny_unet, 0, cpu) == 0


def test_a_large_unet_on_a_cpu_draws_its_grid_a_row_at_a_time_with_the_same_noise(tiny_unet, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from diffusers import DDPMScheduler

    sched = DDPMScheduler(num_train_timesteps=20)
    cfg = load_config(None, {"train.sample_grid": 1, "sample.sampler": "ddim", "sample.steps": 2})
    data = SimpleNamespace(num_classes=10, counts=lambda: list(range(20, 10, -1)), class_names=[str(i) for i in range(10)])
    batches = []
    real_sample = grid.sample

    def counting(unet, scheduler, labels, seeds, settings, **kwargs):
        batches.append(list(seeds))
        return real_sample(unet, scheduler, labels, seeds, settings, **kwargs)

    monkeypatch.setattr(grid, "sample", counting)
    grid.save_sample_grid(tiny_unet, sched, data, cfg, tmp_path / "one-batch.png")
    monkeypatch.setattr(grid, "CPU_GRID_MAX_PARAMS", 1000)
    grid.save_sample_grid(tiny_unet, sched, data, cfg, tmp_path / "rows.png")
    assert batches == [list(range(10))] + [[i] for i in range(10)]  # sample i: seed i either way


def test_a_stop_signal_during_a_grid_stops_at_the_next_denoising_step(tmp_path, tiny_config, monkeypatch):
    calls = []
    real_sample = grid.sample

    def sample_then_signal(*args, callback, **kwargs):
        def on_step(i, t, x):
            calls.append(i)
            if i == 0:
                os.kill(os.getpid(), signal.SIGTERM)  # arrives while the grid is drawn
            return callback(i, t, x)

        return real_sample(*args, callback=on_step, **kwargs)

    monkeypatch.setattr(grid, "sample", sample_then_signal)
    cfg = tiny_config(**{"train.max_steps": 8, "train.sample_every": 3, "train.checkpoint_every": 100, "sample.steps": 5})
    with pytest.raises(TrainingStopped, match="stopped at step 3"):
        train(cfg, tmp_path / "r", progress=False)
    assert calls == [0]  # the grid stops at the denoising step the signal came in
    assert [s for s, _ in list_checkpoints(tmp_path / "r" / "checkpoints")] == [3]
    assert not (tmp_path / "r" / "samples").exists()
    assert [r["step"] for r in _logged(tmp_path / "r")] == [2]  # step 3's terms travel in the checkpoint

"""train.mixed_precision on a CPU: a recipe's is a wish (fp32 where the CPU lacks it, said once),
the user's an order (runs where the CPU computes bf16 natively, a one-line error where not)."""

import json

import pytest
import torch

from coral_ft import devices
from coral_ft.cli.options import was_given
from coral_ft.errors import ConfigError
from tests.conftest import one_error_line, run_cli


@pytest.fixture
def cpu_without_bf16(monkeypatch):
    monkeypatch.setattr(devices, "cpu_bf16", lambda: False)


@pytest.fixture
def cpu_with_bf16(monkeypatch):
    monkeypatch.setattr(devices, "cpu_bf16", lambda: True)


def test_a_recipe_precision_is_a_wish_and_the_users_an_order(cpu_without_bf16):
    assert devices.training_precision("bf16", "cuda", given=False) == ("bf16", None)
    assert devices.training_precision("no", "cpu", given=True) == ("no", None)
    for asked in ("bf16", "fp16"):
        precision, note = devices.training_precision(asked, "cpu", given=False)
        assert precision == "no" and f"mixed_precision={asked}" in note and "fp32" in note
        with pytest.raises(ConfigError, match=f"mixed_precision={asked} cannot run on this CPU"):
            devices.training_precision(asked, "cpu", given=True)


def test_bf16_runs_on_a_cpu_that_computes_it_and_fp16_never(cpu_with_bf16):
    assert devices.training_precision("bf16", "cpu", given=True) == ("bf16", None)
    assert devices.training_precision("bf16", "cpu", given=False) == ("bf16", None)
    assert devices.training_precision("fp16", "cpu", given=False)[0] == "no"
    with pytest.raises(ConfigError, match="no loss scaler"):
        devices.training_precision("fp16", "cpu", given=True)


def test_given_means_a_flag_or_a_set():
    assert was_given("train.mixed_precision", flags={"train.mixed_precision": "bf16"})
    assert was_given("train.mixed_precision", sets=['train.mixed_precision="bf16"'])
    assert not was_given("train.mixed_precision", sets=["train.lr=1e-4"], flags={"train.max_steps": 2})


def _dry_run(tmp_path, capsys, *args):
    code, out, err = run_cli(["train", "--from-scratch", "--out", str(tmp_path / "r"), "--device", "cpu", "--dry-run",
                              *args], capsys)
    return code, out, [line for line in err.splitlines() if line and not line.startswith("no --recipe:")]


def test_the_cifar_recipes_bf16_falls_back_on_a_cpu_without_it_and_says_so_once(tmp_path, capsys, cpu_without_bf16):
    code, out, said = _dry_run(tmp_path, capsys, "--dataset", "cifar10-lt")
    assert code == 0, said
    assert 'mixed_precision = "no"' in out
    assert len(said) == 1 and "recipe's train.mixed_precision=bf16" in said[0] and "fp32" in said[0]


def test_the_cifar_recipes_bf16_stays_on_a_cpu_with_it(tmp_path, capsys, cpu_with_bf16):
    code, out, said = _dry_run(tmp_path, capsys, "--dataset", "cifar10-lt")
    assert code == 0 and not said
    assert 'mixed_precision = "bf16"' in out


@pytest.mark.parametrize("given", [["--mixed-precision", "bf16"], ["--set", 'train.mixed_precision="bf16"']])
def test_asked_bf16_on_a_cpu_without_it_is_one_line(tmp_path, capsys, cpu_without_bf16, given):
    code, out, err = run_cli(["train", "--from-scratch", "--out", str(tmp_path / "r"), "--device", "cpu",
                              "--max-steps", "1", *given], capsys)
    assert code == 2 and one_error_line(err) and "cannot run on this CPU" in err


def test_finetune_of_the_cifar_recipe_on_a_cpu_without_bf16_trains_in_fp32(tmp_path, capsys, saved_base, cpu_without_bf16):
    code, out, err = run_cli(["finetune", "--base", str(saved_base("unet2d-cond")), "--dataset", "cifar10-lt",
                              "--out", str(tmp_path / "r"), "--device", "cpu", "--dry-run"], capsys)
    assert code == 0, err
    assert 'mixed_precision = "no"' in out and "training in fp32" in err


def test_asked_bf16_trains_on_a_cpu_that_computes_it(tmp_path, capsys):
    if not devices.cpu_bf16():
        pytest.skip("this CPU has no native bf16")
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)  # accelerate keeps one precision per process
    try:
        code, out, err = run_cli(["train", "--from-scratch", "--out", str(tmp_path / "r"), "--dataset", "digits-lt",
                                  "--device", "cpu", "--mixed-precision", "bf16", "--max-steps", "2", "--batch-size", "8",
                                  "--set", "train.log_every=1", "--set", "train.sample_grid=0", "--no-progress"], capsys)
    finally:
        AcceleratorState._reset_state(True)
    assert code == 0, err
    losses = [json.loads(line)["loss"] for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))


def test_the_bench_falls_back_as_train_does(tmp_path, capsys, cpu_without_bf16):
    code, out, err = run_cli(["bench", "cifar10-lt", "--data-root", str(tmp_path), "--device", "cpu", "--dry-run",
                              "--out", str(tmp_path / "b")], capsys)
    assert code == 0, err
    assert [line for line in err.splitlines() if "mixed_precision" in line] == [
        line for line in err.splitlines() if "recipe's train.mixed_precision=bf16" in line and "fp32" in line]
    assert len(err.strip().splitlines()) == 1


def test_a_second_run_in_one_process_may_take_another_precision():
    # the Python API in one process: accelerate keeps one precision per process; a run with another resets it
    from accelerate import Accelerator

    from coral_ft.train.trainer import release_other_precision

    Accelerator(mixed_precision="no", cpu=True)
    release_other_precision("bf16")
    assert Accelerator(mixed_precision="bf16", cpu=True).mixed_precision == "bf16"
    release_other_precision("no")
    assert Accelerator(mixed_precision="no", cpu=True).mixed_precision == "no"

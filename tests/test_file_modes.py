"""Written files follow the user's umask: a colleague on a shared machine can read a model.

safetensors writes through a private temporary file (mode 0600 whatever the umask), so every
weights file coral-ft writes is widened to what the umask allows (coral_ft.files).
"""

from __future__ import annotations

import os
import stat

import pytest

from coral_ft.files import respect_umask
from tests.conftest import run_cli

WEIGHTS_SUFFIXES = (".safetensors", ".pt", ".bin")
FAST = ["--max-steps", "2", "--batch-size", "8", "--no-progress", "--set", "train.checkpoint_every=1",
        "--set", "train.sample_grid=2", "--set", 'sample.sampler="ddim"', "--set", "sample.steps=2"]


@pytest.fixture
def umask_022():
    before = os.umask(0o022)
    yield
    os.umask(before)


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_weights_file_of_train_finetune_and_export_is_readable_by_others(tmp_path, capsys, umask_022, one_thread):
    scratch, lora = tmp_path / "scratch", tmp_path / "lora"
    code, _, err = run_cli(["train", "--from-scratch", "--method", "coral", "--dataset", "digits-lt", "--preset", "tiny",
                            "--out", scratch, *FAST], capsys)
    assert code == 0, err
    code, _, err = run_cli(["finetune", "--base", scratch, "--lora", "--rank", "2", "--method", "coral", "--out", lora, *FAST], capsys)
    assert code == 0, err
    for extra in (["--merge"], [], ["--pipeline"]):
        code, _, err = run_cli(["export", lora, "--out", tmp_path / f"export{''.join(extra)}", *extra], capsys)
        assert code == 0, err
    weights = [p for p in tmp_path.rglob("*") if p.is_file() and p.name.endswith(WEIGHTS_SUFFIXES)]
    names = {p.relative_to(tmp_path).as_posix() for p in weights}
    assert {"scratch/model/diffusion_pytorch_model.safetensors", "scratch/head/head.safetensors",
            "lora/model/adapter_model.safetensors", "export--merge/diffusion_pytorch_model.safetensors",
            "export/adapter_model.safetensors", "export--pipeline/unet/diffusion_pytorch_model.safetensors",
            } <= names, names  # fmt: skip
    assert any("/checkpoints/" in n for n in names)
    wrong = {p.relative_to(tmp_path).as_posix(): oct(mode(p)) for p in weights if mode(p) != 0o644}
    assert not wrong, wrong


def test_respect_umask_adds_what_the_umask_allows_and_takes_nothing_away(tmp_path):
    before = os.umask(0o027)
    try:
        (tmp_path / "a").write_text("x")
        os.chmod(tmp_path / "a", 0o600)
        (tmp_path / "b").write_text("x")
        os.chmod(tmp_path / "b", 0o666)
        respect_umask(tmp_path)
    finally:
        os.umask(before)
    assert mode(tmp_path / "a") == 0o640 and mode(tmp_path / "b") == 0o666

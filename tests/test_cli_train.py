import json
import subprocess
import sys

import pytest

from coral_ft.cli.app import main


def run_cli(args, capsys):
    """Run the real entry point in-process; returns (exit code, stdout, stderr)."""
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


TINY = [
    "--dataset", "digits-lt", "--imbalance", "0.1", "--preset", "tiny", "--max-steps", "2", "--batch-size", "8",
    "--set", "train.log_every=1", "--set", "train.checkpoint_every=2", "--set", "train.sample_every=2",
    "--set", "train.sample_grid=2", "--set", 'sample.sampler="ddim"', "--set", "sample.steps=2", "--no-progress",
]  # fmt: skip


def test_train_end_to_end_on_the_tiny_preset(tmp_path, capsys):
    code, out, err = run_cli(["train", "--from-scratch", "--method", "coral", "--out", str(tmp_path / "r"), *TINY], capsys)
    assert code == 0, err
    assert "model written to" in out
    assert (tmp_path / "r" / "model" / "config.json").is_file()
    assert (tmp_path / "r" / "samples" / "step-0000002.png").is_file()
    # resume picks the saved config up and continues to the new step count
    code, out, err = run_cli(["train", "--from-scratch", "--out", str(tmp_path / "r"), "--resume", "--max-steps", "3", "--no-progress"], capsys)
    assert code == 0, err
    last = json.loads((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["step"] == 3


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--imbalance", "0"], "imbalance"),
        (["--set", "objective.coral.tau_sc=-1", "--method", "coral"], "tau_sc"),
        (["--set", "objective.coral.tau_r=0", "--method", "coral"], "tau_r"),
        (["--set", "model.p_uncond=1"], "p_uncond"),
        (["--method", "gan"], "objective.method"),
        (["--preset", "huge"], "model.preset"),
        (["--dataset", "cifar10-lt"], "--data-root"),
        (["--dataset", "cifar10-lt", "--data-root", "/nonexistent"], "cifar-10-batches-py"),
        (["--recipe", "/nonexistent.toml"], "recipe file not found"),
    ],
)
def test_bad_input_is_one_line_and_non_zero(tmp_path, capsys, args, fragment):
    code, out, err = run_cli(["train", "--from-scratch", "--out", str(tmp_path / "r"), *args, "--max-steps", "1"], capsys)
    assert code == 2
    assert fragment in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r" / "checkpoints").exists()  # rejected before any work


def test_train_requires_from_scratch(tmp_path, capsys):
    code, _, err = run_cli(["train", "--out", str(tmp_path)], capsys)
    assert code == 2 and "--from-scratch" in err


def test_data_stats_json(capsys):
    code, out, _ = run_cli(["data", "stats", "digits-lt", "--imbalance", "0.1", "--json"], capsys)
    stats = json.loads(out)
    assert code == 0 and stats["total"] == sum(stats["counts"]) and len(stats["counts"]) == 10


def test_data_stats_cifar10_lt(capsys, cifar10_root):
    code, out, _ = run_cli(["data", "stats", "cifar10-lt", "--data-root", str(cifar10_root), "--json"], capsys)
    assert json.loads(out) == {"counts": [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50], "total": 12406}


def test_console_script_is_installed():
    proc = subprocess.run([sys.executable, "-m", "coral_ft", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "train" in proc.stdout

import json
import subprocess
import sys
from pathlib import Path

import pytest

from coral_ft.checkpoint.model import load_info
from tests.conftest import one_error_line, run_cli

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
    assert "--resume: continuing from step 2" in err and "to step 3" in err and "no --recipe" not in err
    last = json.loads((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["step"] == 3
    # resumed again once finished: it says so and writes nothing
    written = {p: p.stat().st_mtime_ns for p in (tmp_path / "r").rglob("*") if p.is_file()}
    code, out, err = run_cli(["train", "--from-scratch", "--out", str(tmp_path / "r"), "--resume", "--max-steps", "3", "--no-progress"], capsys)
    assert code == 0 and "is already finished (step 3 of train.max_steps = 3)" in err and "model written" not in out, err
    assert written == {p: p.stat().st_mtime_ns for p in (tmp_path / "r").rglob("*") if p.is_file()}
    # a finished run resumed with other [sample] settings writes its model (and card) again; the
    # settings are kept once, in config.toml, and the model folder reads them from there
    code, out, err = run_cli(["train", "--from-scratch", "--out", str(tmp_path / "r"), "--resume", "--set", "sample.guidance=0.25",
                              "--no-progress"], capsys)
    assert code == 0 and "model written to" in out, err
    assert "sample" not in json.loads((tmp_path / "r" / "model" / "coral_ft.json").read_text())["extra"]
    assert load_info(tmp_path / "r" / "model").extra["sample"]["guidance"] == 0.25
    assert "guidance W (paper eq. 4) | 0.25 |" in (tmp_path / "r" / "model" / "README.md").read_text()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--imbalance", "0"], "imbalance"),
        (["--set", "objective.coral.tau_sc=-1", "--method", "coral"], "tau_sc"),
        (["--set", "objective.coral.tau_r=0", "--method", "coral"], "tau_r"),
        (["--set", "model.p_uncond=1"], "p_uncond"),
        (["--method", "gan"], "objective.method"),
        (["--preset", "huge"], "model.preset"),
        (["--dataset", "cifar10-lt", "--mixed-precision", "no"], "--data-root"),
        (["--dataset", "cifar10-lt", "--mixed-precision", "no", "--data-root", "/nonexistent"], "cifar-10-batches-py"),
        (["--mixed-precision", "fp16"], "mixed_precision=fp16 cannot run on this CPU"),  # a recipe's bf16: tests/test_precision.py
        (["--data-root", "/tmp"], "ships with scikit-learn"),
        (["--batch-size", "1"], "Invalid value for '--batch-size'"),
        (["--nosuch"], "No such option: --nosuch"),
        (["--recipe", "/nonexistent.toml"], "no recipe /nonexistent.toml"),
        (["--set", "train.lr=fast"], "train.lr must be a number; got 'fast'"),
        (["--set", "train.nosuch=1"], "unknown key(s) in [train]: nosuch"),
        (["--device", "tpu"], "runtime.device"),
        (["--report-to", "wandb"], "needs the wandb package"),
    ],
)
def test_bad_input_is_one_line_and_non_zero(tmp_path, capsys, args, fragment):
    code, out, err = run_cli(["train", "--from-scratch", "--out", str(tmp_path / "r"), *args, "--max-steps", "1"], capsys)
    assert code == 2
    assert fragment in err and "Traceback" not in err
    said = [line for line in err.strip().splitlines() if not line.startswith("no --recipe:")]  # the note of a recipe a name brings
    assert len(said) == 1 and said[0].startswith("error: ")
    assert not (tmp_path / "r" / "checkpoints").exists()  # rejected before any work


def test_out_naming_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, _, err = run_cli(["train", "--from-scratch", "--out", str(tmp_path / "file"), *TINY], capsys)
    assert code == 2 and "is a file" in err and one_error_line(err)


def test_dry_run_and_config_show_print_the_resolved_config_without_work(tmp_path, capsys):
    code, out, _ = run_cli(["train", "--from-scratch", "--out", str(tmp_path / "r"), "--recipe", "digits-lt",
                            "--lr", "0.01", "--set", "sample.steps=7", "--dry-run"], capsys)
    assert code == 0 and "lr = 0.01" in out and "steps = 7" in out and 'preset = "micro"' in out
    assert not (tmp_path / "r").exists()
    code, out, _ = run_cli(["config", "show", "--recipe", "digits-lt", "--set", "sample.steps=7", "--section", "sample"], capsys)
    assert code == 0 and out.startswith("[sample]") and "steps = 7" in out and "[train]" not in out
    code, out, _ = run_cli(["config", "recipes"], capsys)
    assert code == 0 and "cifar10-lt" in out and "fashion-mnist-lt" in out


def test_official_code_is_one_switch_that_set_still_overrides(tmp_path, capsys):
    from coral_ft.config import tomllib

    code, out, _ = run_cli(["train", "--from-scratch", "--out", tmp_path / "r", "--official-code", "--dry-run"], capsys)
    shown = tomllib.loads(out)
    assert code == 0
    assert shown["model"]["label_drop"] == "per-batch" and shown["objective"]["regularise_dropped"] is False
    assert shown["objective"]["coral"]["lambda_mode"] == "batch-mean"
    code, out, _ = run_cli(["config", "show", "--official-code", "--set", "model.label_drop=per-sample"], capsys)
    assert code == 0 and tomllib.loads(out)["model"]["label_drop"] == "per-sample"


def test_a_bare_resume_of_a_run_that_never_began_is_refused(tmp_path, capsys):
    # killed before its folder existed: a bare --resume has no options to start it with (not the default's)
    code, _, err = run_cli(["train", "--from-scratch", "--out", str(tmp_path / "r"), "--resume", "--max-steps", "3"], capsys)
    assert code == 2 and "holds no run to resume" in err and "original command" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "r").exists()


def test_resume_of_a_run_without_checkpoint_starts_it(tmp_path, capsys):
    code, _, err = run_cli(["train", "--from-scratch", "--resume", "--out", str(tmp_path / "r"), *TINY], capsys)
    assert code == 0, err
    assert "starting the run from step 0" in err and (tmp_path / "r" / "model" / "config.json").is_file()


@pytest.mark.parametrize("args, fragment", [
    (["train", "--from-scratch", "--nosuch"], "No such option: --nosuch"),
    (["train", "--from-scratch"], "Missing option '--out'"),
    (["nosuchcommand"], "No such command 'nosuchcommand'"),
    (["train", "--from-scratch", "--out", "x", "--max-steps", "many"], "Invalid value for '--max-steps'"),
    (["sample"], "Missing option '--model'"),
])
def test_usage_errors_through_the_console_script_have_no_traceback(args, fragment):
    import shutil

    exe = shutil.which("coral-ft") or str(Path(sys.executable).parent / "coral-ft")
    proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert fragment in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 8  # one short block


def test_version():
    proc = subprocess.run([sys.executable, "-m", "coral_ft", "--version"], capture_output=True, text=True, timeout=120)
    from coral_ft import __version__

    assert proc.returncode == 0 and proc.stdout.strip() == f"coral-ft {__version__}"


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


def test_ctrl_c_outside_training_says_the_checkpoint_is_intact_and_exits_130(monkeypatch, capsys):
    # typer turns KeyboardInterrupt into exit code 130 before main() sees it; the message must survive
    import coral_ft.cli.train as train_cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_cli.o, "resolve_config", interrupted)
    code, _, err = run_cli(["train", "--from-scratch", "--out", "unused"], capsys)
    assert code == 130 and "the last checkpoint written is intact" in err

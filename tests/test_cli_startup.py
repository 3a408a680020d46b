"""The light half of the CLI: --version, --help, completion and recipe listing start without torch,
and the names the CLI offers without importing a module are the names the registries hold."""

import subprocess
import sys

import pytest

from coral_ft.cli import options

PROBE = """
import contextlib, io, sys
from coral_ft.cli.app import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main({args!r})
    except SystemExit as exc:
        assert not exc.code, exc.code
heavy = sorted(m for m in ("torch", "diffusers", "accelerate", "peft") if m in sys.modules)
print(",".join(heavy) or "none")
"""


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["train", "--help"], ["config", "recipes"]])
def test_the_light_commands_import_no_torch(args):
    proc = subprocess.run([sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "none"


def test_the_method_names_read_from_the_folder_are_the_registered_objectives():
    from coral_ft.objectives import OBJECTIVES

    assert options.method_names() == sorted(OBJECTIVES)


def test_completion_offers_the_names_that_start_with_what_was_typed():
    from coral_ft.data.registry import DATASETS

    assert options.completing(options.method_names)("co") == ["coral"]
    assert set(options.completing(options.dataset_names)("cifar")) == {n for n in DATASETS if n.startswith("cifar")}
    assert "dpm++" in "".join(options.completing(options.sampler_names)("dpm"))
    assert options.completing(options.recipe_names)("zz-no-such") == []


@pytest.mark.parametrize("args, usage", [
    (["--help"], "Usage: coral-ft [OPTIONS] COMMAND [ARGS]..."),
    (["export", "--help"], "Usage: coral-ft export [OPTIONS] RUN"),
    (["data", "stats", "--help"], "Usage: coral-ft data stats [OPTIONS] DATASET"),
    (["train", "--help"], "Usage: coral-ft train [OPTIONS]"),
])  # fmt: skip
def test_help_starts_with_its_usage_line_and_writes_arguments_plainly(args, usage, capsys):
    from tests.conftest import run_cli

    code, out, _ = run_cli(args, capsys)
    assert code == 0 and out.splitlines()[0].strip() == usage  # no blank line first, RUN not {RUN}


def test_the_readmes_output_folders_are_ignored_by_git():
    from pathlib import Path

    ignored = (Path(__file__).resolve().parents[1] / ".gitignore").read_text().split()
    assert {"runs/", "/exported/", "/refs/"} <= set(ignored)

"""What --help and --dry-run promise applies: the defaults a recipe sets are shown as the recipe's,
and a bench's plan needs no data files."""

import pytest

from coral_ft.cli import options as o
from coral_ft.config import load_config
from tests.conftest import run_cli


@pytest.mark.parametrize("command", ["train", "finetune"])
def test_the_help_shows_the_defaults_the_recipe_sets(command, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # one line per option
    code, out, err = run_cli([command, "--help"], capsys)
    assert code == 0, err
    shown = {line.split()[1]: line for line in out.splitlines() if line.startswith("│ --") or line.startswith("│    --")}
    digits = load_config("digits-lt")  # the data set a bare command trains (its recipe)
    for option, value in [("--max-steps", digits.train.max_steps), ("--batch-size", digits.train.batch_size),
                          ("--preset", digits.model.preset), ("--imbalance", digits.data.imbalance),
                          ("--method", digits.objective.method), ("--lr", digits.train.lr),
                          ("--threads", digits.runtime.threads), ("--mixed-precision", digits.train.mixed_precision)]:
        assert f"[default: (from the recipe; digits-lt: {value})]" in shown[option], shown[option]
    assert (800, 64, "micro", 0.1) == (digits.train.max_steps, digits.train.batch_size, digits.model.preset,
                                       digits.data.imbalance)  # the values the issue saw replaced
    assert "[default: (1)]" in shown["--grad-accum"]  # no recipe sets it: the field's default applies


def test_every_recipe_default_shown_is_what_a_bare_command_resolves():
    resolved = o.resolve_config().to_dict()  # no recipe, no data set: the default data set's recipe
    for path in o.recipe_values():
        if path.startswith(("finetune.", "eval.", "latents.")):
            continue
        node = resolved
        for part in path.split("."):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        expected = o.recipe_values()[path].get("digits-lt")
        if expected is not None:
            assert node == expected, path


def test_bench_dry_run_plans_without_the_data_files(tmp_path, capsys):
    empty = tmp_path / "no-cifar-here"
    empty.mkdir()
    code, out, err = run_cli(["bench", "cifar10-lt", "--data-root", str(empty), "--out", str(tmp_path / "b"), "--dry-run"],
                             capsys)
    assert code == 0, err
    assert "ddpm-cifar" in out and "150000 steps x batch 128" in out and "reads no data" in out
    assert not (tmp_path / "b").exists()
    code, out, err = run_cli(["bench", "cifar10-lt", "--data-root", str(empty), "--out", str(tmp_path / "b")], capsys)
    assert code == 2 and "cifar-10-batches-py" in err  # the bench itself still needs them


def test_the_declared_shapes_are_what_the_readers_read(cifar10_root):
    from coral_ft.data.registry import dataset_from_config, declared_shape

    for name, overrides in [("digits-lt", {}), ("cifar10-lt", {"data.root": str(cifar10_root)})]:
        data = load_config(name, overrides).data
        read = dataset_from_config(data)
        assert declared_shape(data) == (read.num_classes, tuple(read.images.shape[1:])), name

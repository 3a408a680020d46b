from pathlib import Path

import pytest

from coral_ft.config import RunConfig, load_config, save_config
from coral_ft.errors import ConfigError

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def test_defaults_are_valid():
    cfg = RunConfig()
    assert cfg.objective.method == "ddpm" and cfg.train.lr == 2e-4


def test_recipe_then_overrides_take_precedence():
    cfg = load_config(RECIPES / "cifar10-lt.toml", ["train.lr=1e-4", "objective.coral.tau_r=0.5"])
    assert cfg.train.lr == 1e-4
    assert cfg.objective.active.tau_r == 0.5 and cfg.objective.active.tau_sc == 0.12
    assert cfg.model.preset == "ddpm-cifar" and cfg.train.max_steps == 150_000


def test_resolved_config_reloads_identically(tmp_path):
    cfg = load_config(RECIPES / "cifar10-lt.toml", {"data.root": "/data", "finetune.targets": ["to_q"]})
    save_config(cfg, tmp_path / "config.toml")
    assert load_config(tmp_path / "config.toml").to_dict() == cfg.to_dict()


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("data.imbalance=0", "imbalance"),
        ("data.imbalance=1.5", "imbalance"),
        ("objective.coral.tau_sc=0", "tau_sc"),
        ("objective.coral.tau_r=-1", "tau_r"),
        ("model.p_uncond=1.0", "p_uncond"),
        ("model.p_uncond=-0.1", "p_uncond"),
        ('objective.method="nope"', "objective.method"),
        ('model.preset="huge"', "model.preset"),
        ('data.dataset="mnist"', "data.dataset"),
        ("train.batch_size=1", "batch_size"),
        ('train.mixed_precision="fp8"', "mixed_precision"),
        ("train.typo=3", "unknown key"),
        ("nosection.x=1", "unknown config section"),
        ("justtext", "key=value"),
        ('objective.coral.lambda_mode="sometimes"', "lambda_mode"),
        ("data.image_size=4", "at least 8"),
    ],
)
def test_invalid_values_are_rejected_before_any_work(override, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_config(None, [override])


def test_missing_and_malformed_recipes(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nlr = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_free_tables_are_kept(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('[bench.guidance]\ncoral = 0.6\n')
    assert load_config(recipe).extra == {"bench": {"guidance": {"coral": 0.6}}}


def test_free_tables_survive_a_save(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('[bench.guidance]\ncoral = 0.6\n')
    save_config(load_config(recipe), tmp_path / "saved.toml")
    assert load_config(tmp_path / "saved.toml").extra == {"bench": {"guidance": {"coral": 0.6}}}


def test_an_image_size_on_a_fixed_size_data_set_is_refused_not_ignored():
    with pytest.raises(ConfigError, match="cifar10-lt has a fixed size"):
        load_config(None, {"data.dataset": "cifar10-lt", "data.image_size": 64})

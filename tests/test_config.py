"""The one typed config: sections, precedence, type conversion, validation, recipes by name."""

from pathlib import Path

import pytest

from coral_ft.bench.plan import run_config
from coral_ft.config import SECTIONS, RunConfig, find_recipe, load_config, save_config
from coral_ft.errors import ConfigError

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def test_defaults_are_valid_and_every_command_has_a_section():
    cfg = RunConfig()
    assert cfg.objective.method == "ddpm" and cfg.train.lr == 2e-4
    assert {"sample", "eval", "latents", "bench", "runtime"} <= set(SECTIONS)
    assert cfg.sample.clip_x0 is False  # the peers' sampler


def test_recipe_then_overrides_take_precedence():
    cfg = load_config(RECIPES / "cifar10-lt.toml", ["train.lr=1e-4", "objective.coral.tau_r=0.5"])
    assert cfg.train.lr == 1e-4
    assert cfg.objective.active.tau_r == 0.5 and cfg.objective.active.tau_sc == 0.12
    assert cfg.model.preset == "ddpm-cifar" and cfg.train.max_steps == 150_000


def test_shipped_recipes_are_found_by_name_from_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert find_recipe("cifar10-lt").name == "cifar10-lt.toml"
    assert find_recipe("recipes/digits-lt.toml").name == "digits-lt.toml"
    assert load_config("digits-lt").data.dataset == "digits-lt"


def test_a_name_brings_its_recipe_and_no_name_the_default_only_where_asked():
    from coral_ft.cli.options import resolve_config

    assert resolve_config(flags={"data.dataset": "digits-lt"}).runtime.threads == 1  # the digits recipe's
    assert resolve_config().runtime.threads == 1  # a bare train: the embedded default's recipe
    # eval reads samples with no data set name: torch's threads, not the digits recipe's one
    assert resolve_config(default_recipe=False).runtime.threads == 0


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
        ('sample.sampler="heun"', "sample.sampler"),
        ("sample.eta=0.5", "ddim sampler only"),
        ('eval.metrics=["fid","sharpness"]', "sharpness"),
        ('eval.resize="lanczos"', "eval.resize"),
        ('latents.condition="maybe"', "latents.condition"),
        ("bench.seeds=0", "bench.seeds"),
        ('bench.run=["ddpm","gan"]', "bench methods"),
        ("bench.guidance_sweep=[1.0,1.0]", "repeats"),
        ('runtime.device="tpu"', "runtime.device"),
    ],
)
def test_invalid_values_are_rejected_before_any_work(override, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_config(None, [override])


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.lr=fast", "train.lr must be a number; got 'fast'"),
        ("train.max_steps=2.5", "train.max_steps must be an integer"),
        ('train.ema_warmup="sometimes"', "train.ema_warmup must be true or false"),
        ("bench.guidance_sweep=0,x", r"bench.guidance_sweep\[1\] must be a number"),
        ("sample.steps=many", "sample.steps must be an integer or nothing"),
    ],
)
def test_wrong_types_name_the_field_and_the_type(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_text_values_convert_to_the_fields_type():
    cfg = load_config(None, ["train.max_steps=1e3", "bench.guidance_sweep=0,0.5,1", "eval.metrics=fid,kid",
                             'train.ema_warmup="false"', "latents.plots=none"])
    assert cfg.train.max_steps == 1000 and isinstance(cfg.train.max_steps, int)
    assert cfg.bench.guidance_sweep == [0.0, 0.5, 1.0] and cfg.eval.metrics == ["fid", "kid"]
    assert cfg.train.ema_warmup is False and cfg.latents.plots == []


def test_missing_and_malformed_recipes(tmp_path):
    with pytest.raises(ConfigError, match="no recipe"):
        load_config(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nlr = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_unknown_tables_are_errors_not_silently_kept(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text("[bench.guidance]\ncoral = 0.6\n")
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(recipe)
    recipe.write_text("[benchh]\nseeds = 2\n")
    with pytest.raises(ConfigError, match="unknown config section"):
        load_config(recipe)


def test_bench_method_configs_take_their_guidance_and_overrides():
    cfg = load_config(RECIPES / "celeba-5.toml")
    cbdm = run_config(cfg, "cbdm")
    assert cbdm.objective.method == "cbdm" and cbdm.objective.active.tau == 50.0 and cbdm.sample.guidance == 1.0
    ambient = run_config(load_config(RECIPES / "digits-lt.toml"), "ambient")
    assert ambient.sample.guidance == load_config(RECIPES / "digits-lt.toml").sample.guidance


def test_an_image_size_on_a_fixed_size_data_set_is_refused_not_ignored():
    with pytest.raises(ConfigError, match="cifar10-lt has a fixed image size"):
        load_config(None, {"data.dataset": "cifar10-lt", "data.image_size": 64})


def test_the_bench_defines_its_section_and_it_travels_with_the_config():
    import copy
    import dataclasses
    import pickle

    from coral_ft.bench.schema import BenchConfig

    cfg = load_config("digits-lt", ["bench.seeds=3"])
    assert isinstance(cfg.bench, BenchConfig) and list(SECTIONS).index("bench") + 1 == list(SECTIONS).index("finetune")
    for copied in (pickle.loads(pickle.dumps(cfg)), copy.deepcopy(cfg), dataclasses.replace(cfg, runtime=cfg.runtime)):
        assert copied == cfg and copied.bench.seeds == 3
    with pytest.raises(AttributeError, match="no section 'benchh'"):
        cfg.benchh  # noqa: B018

"""Every shipped recipe loads and validates; its [bench] table is complete and reaches the runs."""

from pathlib import Path

import pytest

from coral_ft.bench.plan import run_config
from coral_ft.config import load_config
from coral_ft.errors import ConfigError

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.toml"))
PAPER_TABLES = ["cifar10-lt", "cifar10-lt-0.001", "cifar100-lt", "celeba-5", "imagenet-lt", "cifar10", "cifar100"]
NO_PAPER = ("digits-lt", "fashion-mnist-lt")  # the paper has neither


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_loads_and_its_bench_table_is_complete(path):
    config = load_config(path)
    bench = config.bench
    assert bench.methods or bench.run, "every shipped recipe is benchmarkable"
    for name in dict.fromkeys([*bench.methods, *bench.run]):
        run = run_config(config, name)
        spec = bench.method(name)
        assert run.objective.method == (spec.method or name)
        assert run.sample.guidance == (spec.guidance if spec.guidance is not None else config.sample.guidance)
        if config.data.dataset in NO_PAPER:
            assert not spec.paper
        elif not spec.paper:  # a method with no published number here says why, and what its paper measured
            assert len(spec.paper_note) > 40, f"{name}: no paper values and no paper_note"
        elif name == "ambient":  # Table 4 reports FID, IS and recall only
            assert set(spec.paper) == set(bench.metrics) & {"fid", "is", "recall"}
        else:
            assert set(spec.paper) == set(bench.metrics), f"{name}: paper values for every metric"


def test_the_shipped_recipes_are_the_top_level_folder():
    from coral_ft.config import shipped_recipes

    assert {p.stem for p in RECIPES} == set(shipped_recipes())


@pytest.mark.parametrize("name", PAPER_TABLES)
def test_paper_recipes_carry_table3_settings(name):
    config = load_config(name)
    assert config.train.batch_size == 128 and config.model.num_train_timesteps == 1000
    assert {"ddpm", "cbdm", "coral"} <= set(config.bench.methods)
    assert config.sample.guidance == config.bench.method("coral").guidance


def test_table3_values_reach_the_method_runs():
    celeba = load_config("celeba-5")
    cbdm = run_config(celeba, "cbdm")
    assert cbdm.objective.active.tau == 50.0 and cbdm.sample.guidance == 1.0 and cbdm.train.lr == 3e-4
    t2h = run_config(load_config("cifar100-lt"), "t2h")
    assert t2h.train.max_steps == 200_000 and t2h.sample.guidance == 1.5
    inet = load_config("imagenet-lt")
    assert inet.train.max_steps == 300_000 and inet.model.preset == "ddpm-64"
    assert inet.bench.method("ambient").paper["fid"] == 24.73  # Table 4


@pytest.mark.parametrize("bad,match", [
    ({"bench.metrics": ["fid", "sharpness"]}, "sharpness"),
    ({"bench.methods.gan.guidance": 1.0}, "bench.methods.gan.method"),
    ({"bench.methods.ddpm.paper": {"f99": 1.0}}, "not in bench.metrics"),
    ({"bench.methods.ddpm.colour": "red"}, "unknown key"),
])
def test_bad_bench_tables_are_config_errors(bad, match):
    with pytest.raises(ConfigError, match=match):
        load_config("cifar100-lt", bad)


def test_bad_method_overrides_fail_when_the_method_run_is_built():
    config = load_config("cifar100-lt", {"bench.methods.cbdm.overrides": {"objective.cbdm.tau": -1.0}})
    with pytest.raises(ConfigError, match="bench.methods.cbdm: .*tau"):
        run_config(config, "cbdm")


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_fine_tune_arm_of_a_recipe_builds_its_run(path, tmp_path):
    from coral_ft.bench.plan import make_plan

    config = load_config(path, {"bench.protocol": "finetune"})
    plan = make_plan(path.stem, config, tmp_path)
    arms = [t for t in plan.trials if t.role == "arm"]
    assert {t.arm for t in arms} == set(config.bench.finetune.arms)
    assert all(t.config.finetune.lora == t.arm.endswith("-lora") for t in arms)
    assert len({t.config.train.max_steps for t in arms}) == 1  # one budget for every arm

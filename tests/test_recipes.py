"""Every shipped recipe loads and validates; its [bench] table is complete."""

from pathlib import Path

import pytest

from coral_ft.bench.spec import bench_spec, method_config
from coral_ft.config import load_config
from coral_ft.errors import ConfigError

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.toml"))
PAPER_TABLES = ["cifar10-lt", "cifar10-lt-0.001", "cifar100-lt", "celeba-5", "imagenet-lt", "cifar10", "cifar100"]


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_loads_and_its_bench_table_is_complete(path):
    config = load_config(path)
    if "bench" not in config.extra:
        pytest.skip(f"{path.name} has no [bench] table")
    spec = bench_spec(config)
    for method in spec.methods.values():
        run = method_config(config, method)
        assert run.objective.method == method.name
        assert run.sample.guidance == method.guidance
        if config.data.dataset == "digits-lt":  # the paper has no digits
            assert not method.paper
        elif method.name == "ambient":  # Table 4 reports FID, IS and recall only
            assert set(method.paper) == set(spec.metrics) & {"fid", "is", "recall"}
        else:
            assert set(method.paper) == set(spec.metrics), f"{method.name}: paper values for every metric"


@pytest.mark.parametrize("name", PAPER_TABLES)
def test_paper_recipes_carry_table3_settings(name):
    config = load_config(Path(__file__).resolve().parents[1] / "recipes" / f"{name}.toml")
    spec = bench_spec(config)
    assert config.train.batch_size == 128 and config.model.num_train_timesteps == 1000
    assert {"ddpm", "cbdm", "coral"} <= set(spec.methods)
    assert config.sample.guidance == spec.methods["coral"].guidance


def test_table3_values_reach_the_method_runs():
    root = Path(__file__).resolve().parents[1] / "recipes"
    celeba = load_config(root / "celeba-5.toml")
    spec = bench_spec(celeba)
    cbdm = method_config(celeba, spec.methods["cbdm"])
    assert cbdm.objective.active.tau == 50.0 and cbdm.sample.guidance == 1.0 and cbdm.train.lr == 3e-4
    c100 = load_config(root / "cifar100-lt.toml")
    t2h = method_config(c100, bench_spec(c100).methods["t2h"])
    assert t2h.train.max_steps == 200_000 and t2h.sample.guidance == 1.5
    inet = load_config(root / "imagenet-lt.toml")
    assert inet.train.max_steps == 300_000 and inet.model.preset == "ddpm-64"
    assert bench_spec(inet).methods["ambient"].paper["fid"] == 24.73  # Table 4


@pytest.mark.parametrize("bad,match", [
    ({"bench.metrics": ["fid", "sharpness"]}, "unknown sharpness"),
    ({"bench.methods.gan.guidance": 1.0}, "not a method"),
    ({"bench.methods.ddpm.paper": {"f99": 1.0}}, "not in bench.metrics"),
    ({"bench.methods.cbdm.overrides": {"objective.cbdm.tau": -1.0}}, "tau"),
])
def test_bad_bench_tables_are_config_errors(bad, match):
    config = load_config(Path(__file__).resolve().parents[1] / "recipes" / "cifar100-lt.toml", bad)
    with pytest.raises(ConfigError, match=match):
        bench_spec(config)

"""`coral-ft bench --protocol finetune`: one base, every arm fine-tuning it alike, compared pairwise."""

import importlib
import json

import pytest
import torch

from coral_ft.cli.app import main
from coral_ft.config import load_config
from coral_ft.errors import ConfigError

ARMS = ("ddpm", "coral", "ddpm-lora", "coral-lora")
SMOKE = ["digits-lt", "--protocol", "finetune", "--scale", "smoke", "--seeds", "2", "--no-progress"]


@pytest.fixture(scope="module")
def finetune_bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("ft-bench")
    main(["bench", *SMOKE, "--out", str(out)])
    return out


def run_config(folder):
    from coral_ft.config import read_recipe

    return read_recipe(folder / "run" / "config.toml")


def test_one_base_is_trained_and_every_arm_fine_tunes_it_with_the_same_budget(finetune_bench):
    out = finetune_bench
    assert [p.name for p in (out / "base").iterdir()] == ["seed-0"]  # one base for both fine-tune seeds
    base_run = out / "base" / "seed-0" / "run"
    assert run_config(out / "base" / "seed-0")["objective"]["method"] == "ddpm"
    budgets = set()
    for arm in ARMS:
        for k in (0, 1):
            cfg = run_config(out / arm / f"seed-{k}")
            assert cfg["finetune"]["base"] == str(base_run) and cfg["finetune"]["lora"] == arm.endswith("-lora")
            t = cfg["train"]
            budgets.add((t["max_steps"], t["lr"], t["batch_size"], t["warmup_steps"]))
            assert t["max_steps"] == run_config(out / "base" / "seed-0")["train"]["max_steps"]  # the scale's budget
            assert t["seed"] == cfg_seed(k)  # fine-tune seed k is the same in every arm
    assert len(budgets) == 1


def cfg_seed(k: int) -> int:
    from coral_ft.bench.plan import FINETUNE_SEED_OFFSET

    return load_config("digits-lt").train.seed + FINETUNE_SEED_OFFSET + k


def test_results_pair_every_arm_with_the_ddpm_arm_and_report_costs(finetune_bench):
    results = json.loads((finetune_bench / "results.json").read_text())
    methods = results["methods"]
    assert list(methods) == ["base", *ARMS] and results["protocol"] == "finetune"
    ddpm = methods["ddpm"]["measured"]["fid"]["values"]
    for arm in ("coral", "ddpm-lora", "coral-lora"):
        mine = methods[arm]["measured"]["fid"]["values"]
        assert methods[arm]["vs_ddpm"]["fid"]["values"] == pytest.approx([a - b for a, b in zip(mine, ddpm)])
    base = methods["base"]["measured"]["fid"]["values"]
    assert len(base) == 1  # one base ...
    assert methods["base"]["vs_ddpm"]["fid"]["values"] == pytest.approx([base[0] - d for d in ddpm])  # ... beside each seed
    cost = {arm: methods[arm]["cost"] for arm in ARMS}
    assert cost["ddpm-lora"]["trainable_parameters"] < cost["ddpm"]["trainable_parameters"] / 2
    assert cost["ddpm-lora"]["saved_mib"] < cost["ddpm"]["saved_mib"]
    assert all(c["step_seconds"] > 0 for c in cost.values())
    md = (finetune_bench / "results.md").read_text()
    assert "Fine-tune protocol" in md and "| ddpm-lora |" in md and "over the 2 fine-tune seed(s) every arm has" in md
    # the base was evaluated once: its differences are labelled as such and never called significant
    assert all(d["single_evaluation"] and not d["excludes_zero"] for d in methods["base"]["vs_ddpm"].values())
    assert "(one base evaluation)" in md and "Peak memory: the process's peak resident set." in md
    assert all(c["peak_memory_of"] == "cpu-process-rss" and c["peak_memory_mib"] > 100 for c in cost.values())
    assert "these numbers are noise" in md and results["verdict"]["named"] == []
    exact = [d for r in methods.values() for d in r.get("vs_ddpm", {}).values() if d["agree_exactly"]]
    assert exact and not any(d["excludes_zero"] for d in exact)  # zero-width intervals are no finding


def test_lora_arms_save_adapters_that_peft_loads_as_they_are(finetune_bench):
    from diffusers import UNet2DModel
    from peft import PeftModel

    base = UNet2DModel.from_pretrained(finetune_bench / "base" / "seed-0" / "run" / "model")
    model = PeftModel.from_pretrained(base, finetune_bench / "coral-lora" / "seed-1" / "run" / "model")
    x = torch.randn(2, 1, 8, 8)
    assert model(x, torch.tensor([10, 500]), class_labels=torch.tensor([0, 9])).sample.shape == (2, 1, 8, 8)


def test_a_rerun_resumes_without_training_again(finetune_bench, monkeypatch, capsys):
    def boom(*args, **kwargs):
        raise AssertionError("a finished stage ran again")

    for module, name in [("coral_ft.train.trainer", "train"), ("coral_ft.sample.run", "sample_to_npz"),
                         ("coral_ft.metrics.evaluation", "evaluate")]:
        monkeypatch.setattr(importlib.import_module(module), name, boom)
    main(["bench", *SMOKE, "--out", str(finetune_bench)])
    assert "| coral-lora |" in capsys.readouterr().out


def test_a_users_base_is_fine_tuned_as_it_is(finetune_bench, tmp_path):
    given = finetune_bench / "base" / "seed-0" / "run"
    out = tmp_path / "b"
    main(["bench", *SMOKE, "--seeds", "1", "--arms", "ddpm,coral-null", "--base", str(given), "--out", str(out)])
    assert not (out / "base" / "seed-0" / "run").exists()  # nothing trained for the base
    marker = json.loads((out / "base" / "seed-0" / "train.done.json").read_text())
    assert marker["steps"] == 0 and marker["model"] == str(given / "model")
    assert run_config(out / "coral-null" / "seed-0")["objective"]["coral"]["features"] == "null"
    assert set(json.loads((out / "results.json").read_text())["methods"]) == {"base", "ddpm", "coral-null"}


def test_an_unconditional_balanced_base_gets_a_zero_class_embedding(tmp_path):
    out = tmp_path / "u"
    main(["bench", *SMOKE, "--seeds", "1", "--base-kind", "uncond-balanced", "--arms", "ddpm-lora", "--out", str(out)])
    base_cfg = run_config(out / "base" / "seed-0")
    assert base_cfg["model"]["conditional"] is False and base_cfg["data"]["imbalance"] == 1.0
    from diffusers import UNet2DModel

    assert UNet2DModel.from_pretrained(out / "base" / "seed-0" / "run" / "model").config.num_class_embeds is None
    conditional = UNet2DModel.from_pretrained(out / "base" / "seed-0" / "conditional")
    assert conditional.config.num_class_embeds == 11 and conditional.class_embedding.weight.abs().max() == 0
    assert (out / "ddpm-lora" / "seed-0" / "eval.json").is_file()


@pytest.mark.parametrize("arms, match", [(["gan-lora"], "bench.finetune.arms"), (["base"], "always reported"),
                                         (["ddpm", "ddpm"], "twice")])
def test_bad_arms_are_config_errors(arms, match):
    with pytest.raises(ConfigError, match=match):
        load_config("digits-lt", {"bench.protocol": "finetune", "bench.finetune.arms": arms})


def test_a_finished_bench_with_several_bases_is_not_read_as_in_progress():
    from coral_ft.bench.report import planned_trials

    results = {"seeds": 2, "finetune": {"base_seeds": 3}, "methods": {"base": {}, "ddpm": {}, "coral-lora": {}}}
    assert planned_trials(results) == {"base": 3, "ddpm": 6, "coral-lora": 6}  # one arm trial per (base, seed)
    assert planned_trials({"seeds": 2, "methods": {"ddpm": {}}}) == {"ddpm": 2}


def test_every_arm_has_the_fine_tune_budget_even_where_a_method_trains_longer_from_scratch(tmp_path):
    from coral_ft.bench.plan import make_plan

    config = load_config("cifar10-lt", {"bench.protocol": "finetune", "bench.finetune.arms": ["ddpm", "t2h", "coral-lora"],
                                        "bench.finetune.overrides": {"train.max_steps": 5000}})
    assert config.bench.method("t2h").overrides["train.max_steps"] == 200_000  # T2H's own schedule from scratch
    arms = [t for t in make_plan("cifar10-lt", config, tmp_path).trials if t.role == "arm"]
    assert {t.config.train.max_steps for t in arms} == {5000}

"""`coral-ft bench`: a smoke bench over two seeds with a guidance sweep, resume, dry run, errors, report."""

import importlib
import json
from types import SimpleNamespace

import numpy as np
import pytest

from coral_ft.bench.context import check_data
from coral_ft.bench.groups import class_groups
from coral_ft.bench.plan import SELECTION_SEED_OFFSET, fit_smoke_samples, make_plan
from coral_ft.bench.report import collect, write_report
from coral_ft.bench.run import run_bench
from coral_ft.bench.stages import has_per_class_samples
from coral_ft.checkpoint.layout import RunDir
from coral_ft.cli.app import main
from coral_ft.config import load_config
from coral_ft.errors import ConfigError, UserError

SMOKE = ["--scale", "smoke", "--methods", "ddpm,coral", "--seeds", "2", "--guidance-sweep", "0,2",
         "--selection-samples", "40"]


@pytest.fixture(scope="module")
def smoke_bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    main(["bench", "digits-lt", *SMOKE, "--out", str(out), "--no-progress"])
    return out


def test_smoke_bench_runs_every_stage_of_every_seed(smoke_bench):
    out = smoke_bench
    for m in ("ddpm", "coral"):
        for seed in (0, 1):
            trial = out / m / f"seed-{seed}"
            for name in ("train.done.json", "sample.done.json", "samples.npz", "eval.json", "grid.png", "run/model",
                         "selection/selection.json", "memorisation.png"):
                assert (trial / name).exists(), f"{m}/seed-{seed}/{name}"
            with np.load(trial / "samples.npz") as f:
                assert f["images"].shape == (40, 8, 8, 1) and np.bincount(f["labels"]).tolist() == [4] * 10
            config = (trial / "run" / "config.toml").read_text()
            assert f"seed = {seed}" in config  # trial i trains with train.seed + i
    assert (out / "classifier.pt").is_file() and (out / "reference.npz").is_file() and (out / "memorisation.npz").is_file()


def test_the_sweep_selects_on_the_selection_set_and_reports_other_samples(smoke_bench):
    for trial in (smoke_bench / "coral" / "seed-0", smoke_bench / "ddpm" / "seed-1"):
        selection = json.loads((trial / "selection" / "selection.json").read_text())
        fids = {float(w): v for w, v in selection["fid"].items()}
        assert set(fids) == {0.0, 2.0} and selection["chosen"] == min(fids, key=fids.get)
        reported = json.loads((trial / "sample.done.json").read_text())
        assert reported["guidance"] == selection["chosen"]
        with np.load(trial / "samples.npz") as f:
            settings = json.loads(str(f["settings"]))
        with np.load(trial / "selection" / f"w{selection['chosen']:g}.npz") as f:
            chosen_set = json.loads(str(f["settings"]))
        assert chosen_set["seed"] == settings["seed"] + SELECTION_SEED_OFFSET  # never the reported samples
        assert settings["guidance"] == selection["chosen"]
        assert json.loads((trial / "eval.json").read_text())["guidance"] == selection["chosen"]


def test_results_give_means_intervals_and_paired_differences(smoke_bench):
    results = json.loads((smoke_bench / "results.json").read_text())
    assert results["seeds"] == 2 and results["guidance_sweep"] == [0.0, 2.0]
    for name in ("ddpm", "coral"):
        fid = results["methods"][name]["measured"]["fid"]
        assert len(fid["values"]) == 2 and fid["mean"] == pytest.approx(np.mean(fid["values"]))
        assert fid["ci95"][0] <= fid["mean"] <= fid["ci95"][1]
    vs = results["methods"]["coral"]["vs_ddpm"]["fid"]
    ddpm, coral = (results["methods"][m]["measured"]["fid"]["values"] for m in ("ddpm", "coral"))
    assert vs["values"] == pytest.approx([c - d for c, d in zip(coral, ddpm)])
    assert results["groups"]["rule"] == "shots"  # digits-LT at rho 0.1 spans 139 .. 13 images per class
    measured = results["methods"]["coral"]["measured"]
    for group in ("many", "medium", "few"):
        assert f"{group}:fid" in measured and f"{group}:memorised" in measured and f"{group}:sample_accuracy" in measured
    md = (smoke_bench / "results.md").read_text()
    assert "±" in md and "Paired difference from ddpm" in md and "many-shot (> 100 training images)" in md
    assert (smoke_bench / "guidance_sweep.png").is_file()
    assert not (smoke_bench / "per_class_fid.png").exists()  # 4 samples a class: too few for per-class FID
    lines = (smoke_bench / "results.csv").read_text().splitlines()
    assert lines[0] == "method,seed,metric,value,paper" and any(line.startswith("coral,1,fid,") for line in lines)


def test_resume_skips_finished_stages(smoke_bench, monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("a finished stage ran again")

    for module, name in [("coral_ft.train.trainer", "train"), ("coral_ft.sample.run", "sample_to_npz"),
                         ("coral_ft.metrics.evaluation", "evaluate")]:
        monkeypatch.setattr(importlib.import_module(module), name, boom)
    before = (smoke_bench / "ddpm" / "seed-0" / "eval.json").read_text()
    config = load_config("digits-lt", {"bench.scale": "smoke", "bench.run": ["ddpm", "coral"], "bench.seeds": 2,
                                       "bench.guidance_sweep": [0.0, 2.0], "bench.selection_samples": 40})
    plan = make_plan("digits-lt", config, smoke_bench)
    fit_smoke_samples(plan, 10)
    run_bench(plan, check_data(plan), progress=False)
    assert (smoke_bench / "ddpm" / "seed-0" / "eval.json").read_text() == before


def test_dry_run_prints_the_plan_without_work(tmp_path, capsys):
    main(["bench", "digits-lt", "--scale", "small", "--seeds", "3", "--out", str(tmp_path / "b"), "--dry-run"])
    text = capsys.readouterr().out
    assert "ddpm" in text and "coral" in text and "3 seed(s)" in text and "train 300 steps" in text
    assert "20-step dpm++" in text  # the small scale's fast sampler
    assert not (tmp_path / "b").exists()


def test_imagenet_lt_without_prepared_data_stops_at_once(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "imagenet-lt", "--out", str(tmp_path / "b"), "--data-root", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "coral-ft data prepare imagenet-lt" in err and "OLTR" in err
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("args, match", [
    (["nosuch"], "no recipe"),
    (["digits-lt", "--scale", "huge"], "bench.scale"),
    (["digits-lt", "--methods", "gan"], "bench methods"),
    (["digits-lt", "--seeds", "0"], "greater than or equal to 1"),
    (["digits-lt", "--guidance-sweep", "1,a"], "must be a number"),
    (["digits-lt", "--report"], "no finished trial"),
    (["digits-lt", "--protocol", "finetune", "--base", "some-run", "--set", "bench.finetune.base_seeds=2"],
     "one base is one base seed"),
])
def test_bad_bench_arguments_are_short_errors(tmp_path, capsys, args, match):
    with pytest.raises(SystemExit) as exc:
        main(["bench", *args, "--out", str(tmp_path / "b")])
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert match in captured.err and "Traceback" not in captured.err


def report_context(plan, counts):
    """What the report reads of a bench's context: the plan, the groups and the training counts."""
    return SimpleNamespace(plan=plan, groups=class_groups(counts), counts=counts)


def _fake_evaluation(fid: float, classes: int) -> dict:
    return {"metrics": {"fid": {"value": fid}, "is": {"available": True, "mean": 9.5},
                        "prd": {"f8_recall": 0.9, "f1_8_precision": 0.8}, "recall": {"recall": 0.5, "precision": 0.6},
                        "per-class-fid": {"values": {str(c): fid + c for c in range(classes)}, "classes": list(range(classes)),
                                          "mean": fid}},
            "guidance": 0.8, "groups": {}}


def test_report_puts_paper_values_beside_measured(tmp_path):
    config = load_config("cifar100-lt", {"bench.run": ["ddpm", "coral", "ccua"], "bench.seeds": 3})
    plan = make_plan("cifar100-lt", config, tmp_path)
    evaluations = {t.name: _fake_evaluation(fid + t.seed_index, 100) for t in plan.trials
                   for m, fid in (("ddpm", 8.0), ("coral", 6.0), ("ccua", 7.0)) if t.arm == m}
    counts = [int(500 * 0.01 ** (i / 99)) for i in range(100)]
    path, summary = write_report(report_context(plan, counts), evaluations)
    md = path.read_text()
    assert "| coral | 0.80 | 7.00 ± 2.48 (5.37) |" in md  # mean 7, t(2) 4.303 * 1 / sqrt(3) = 2.48
    assert "-2.00 (same on every seed: no evidence)" in md  # the same gap at every seed: no finding
    assert summary in md
    assert "| ccua | 0.80 | 8.00 ± 2.48 (-) |" in md and "- ccua: CCUA (arXiv 2507.09052) reports CIFAR100-LT" in md
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["methods"]["ddpm"]["paper"]["fid"] == 7.7
    assert results["groups"]["rule"] == "shots"


@pytest.mark.parametrize("classes", [10, 100, 1000])
def test_per_class_chart_stays_readable(tmp_path, classes):
    from PIL import Image

    from coral_ft.bench.figures import per_class_chart

    counts = [int(1000 * 0.01 ** (i / (classes - 1))) + 1 for i in range(classes)]
    values = {c: float(c % 7) for c in range(classes)}
    path = per_class_chart({"ddpm": values, "coral": values}, counts, class_groups(counts), "t", tmp_path / "c.png")
    width, height = Image.open(path).size
    assert width <= 1500 and height <= 500


def test_per_class_fid_needs_ten_samples_of_every_class():
    assert has_per_class_samples(np.repeat(np.arange(10), 10), 10)
    assert not has_per_class_samples(np.repeat(np.arange(10), 9), 10)
    assert not has_per_class_samples(np.array([0] * 20 + [2] * 20), 3)  # class 1 has none
    assert not has_per_class_samples(np.array([], dtype=np.int64), 10)


def test_smoke_samples_cover_prd_on_ten_classes_and_skip_it_on_a_hundred(tmp_path):
    ten = make_plan("cifar10-lt", load_config("cifar10-lt", {"bench.scale": "smoke"}), tmp_path)
    fit_smoke_samples(ten, 10)
    assert ten.num_samples == 200 and "f8" in ten.metrics and ten.skipped == []  # PRD: 20 clusters per class
    hundred = make_plan("cifar100-lt", load_config("cifar100-lt", {"bench.scale": "smoke"}), tmp_path)
    fit_smoke_samples(hundred, 100)
    assert hundred.num_samples == 400 and hundred.skipped == ["f8", "f1_8"]
    assert hundred.metrics == ["fid", "is", "recall"]


def test_collect_without_a_ddpm_baseline_has_no_paired_differences(tmp_path):
    plan = make_plan("digits-lt", load_config("digits-lt", {"bench.run": ["coral"]}), tmp_path)
    results = collect(report_context(plan, [100] * 10), {"coral/seed-0": _fake_evaluation(3.0, 10)})
    assert "vs_ddpm" not in results["methods"]["coral"]
    assert results["methods"]["coral"]["measured"]["fid"]["ci95"] is None  # one seed: no interval


@pytest.mark.slow
def test_bench_with_two_cpu_processes_runs_two_and_both_take_a_share(tmp_path):
    # Multi-process training and sampling as on a cluster: 2 CPU processes, gloo. torchrun starts
    # them (with the pinned accelerate, `accelerate launch --cpu --num_processes 2` starts one).
    import socket
    import subprocess
    import sys

    out = tmp_path / "b"
    with socket.socket() as free:  # a port of our own for the two processes' rendezvous
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(port),
           "-m", "coral_ft", "bench", "digits-lt", "--scale", "smoke", "--methods", "coral", "--guidance-sweep", "0,1",
           "--selection-samples", "20", "--out", str(out), "--no-progress"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    trial = out / "coral" / "seed-0"
    with np.load(trial / "samples.npz") as f:
        assert np.bincount(f["labels"]).tolist() == [4] * 10  # both processes' shares assembled
        settings = json.loads(str(f["settings"]))
    assert settings["processes"] == 2
    assert len(settings["drawn_per_process"]) == 2 and min(settings["drawn_per_process"]) > 0  # both sampled
    assert sum(settings["drawn_per_process"]) == 40
    marker = json.loads((trial / "train.done.json").read_text())
    assert marker["steps"] == 4 and marker["processes"] == 2
    assert (out / "results.md").is_file()


def test_metric_network_and_reference_split_are_settings(tmp_path, monkeypatch):
    auto = make_plan("cifar10-lt", load_config("cifar10-lt"), tmp_path)
    assert not auto.use_classifier  # TF-Inception for the paper's data sets
    forced = load_config("cifar10-lt", {"bench.metric_network": "classifier", "bench.reference_split": "test"})
    plan = make_plan("cifar10-lt", forced, tmp_path)
    assert plan.use_classifier
    from coral_ft.bench import context

    asked = []
    monkeypatch.setattr("coral_ft.metrics.reference.load_reference_images", lambda spec, *a: asked.append(spec))
    context.reference_images(plan)
    context.reference_images(auto)
    assert asked == ["cifar10-lt:test", "cifar10-lt:train-full"]
    with pytest.raises(ConfigError, match="bench.metric_network"):
        load_config("cifar10-lt", {"bench.metric_network": "vgg"})
    with pytest.raises(ConfigError, match="bench.reference_split"):
        load_config("cifar10-lt", {"bench.reference_split": "val"})


def test_bench_accelerator_matches_the_trials_mixed_precision(tmp_path, monkeypatch):
    # accelerate allows one mixed-precision setting per process: the bench's own Accelerator must
    # be the trainer's, or a bf16 recipe fails at its first trial (seen on a GPU).
    from accelerate.state import AcceleratorState

    from coral_ft.bench.context import bench_accelerator
    from coral_ft.train import trainer
    from coral_ft.train.trainer import make_accelerator

    # bf16 is refused on a CPU run; pretend a GPU so the trainer gets as far as accelerate's check
    monkeypatch.setattr(trainer, "resolved_device", lambda device: "cuda")

    config = load_config("digits-lt", {"bench.run": ["ddpm", "coral"], "train.mixed_precision": "bf16"})
    plan = make_plan("digits-lt", config, tmp_path)
    AcceleratorState._reset_state(True)
    try:
        bench_accelerator(plan, "cuda")
        trial = plan.trials[0]
        make_accelerator(trial.config, RunDir(trial.run_dir))  # raised "already initialized" before
        mixed = load_config("digits-lt", {"bench.run": ["ddpm", "coral"], "bench.methods.coral.overrides": {"train.mixed_precision": "bf16"}})
        with pytest.raises(UserError, match="different train.mixed_precision"):
            bench_accelerator(make_plan("digits-lt", mixed, tmp_path), "cpu")
    finally:
        AcceleratorState._reset_state(True)


def test_small_scale_warms_up_the_ema_of_a_constant_decay_recipe(tmp_path):
    config = load_config("cifar10-lt", {"bench.scale": "small"})
    assert not config.train.ema_warmup  # the paper recipe: the peers' constant 0.9999
    trial = make_plan("cifar10-lt", config, tmp_path).trials[0]
    assert trial.config.train.max_steps == 15_000 and trial.config.train.ema_warmup


def test_a_trials_samples_are_read_from_disk_once(smoke_bench, monkeypatch):
    from coral_ft.bench.context import build_context
    from coral_ft.bench.stages import evaluate_stage, sweep_stage

    config = load_config("digits-lt", {"bench.scale": "smoke", "bench.run": ["ddpm", "coral"], "bench.seeds": 2,
                                       "bench.guidance_sweep": [0.0, 2.0], "bench.selection_samples": 40})
    plan = make_plan("digits-lt", config, smoke_bench)
    ctx = build_context(plan, check_data(plan), progress=False)
    trial = next(t for t in plan.trials if t.arm == "coral" and t.seed_index == 1)
    before = json.loads((trial.folder / "eval.json").read_text())
    (trial.folder / "eval.json").unlink()
    reads = []
    real_load = np.load
    monkeypatch.setattr(np, "load", lambda f, *a, **k: reads.append(str(f)) or real_load(f, *a, **k))
    swept = sweep_stage(ctx, trial, trial.run_dir / "model")  # the selection is on disk: W is read back
    assert swept.config.sample.guidance == before["guidance"]
    after = evaluate_stage(ctx, swept, trial.folder / "samples.npz")
    assert [r for r in reads if r.endswith("samples.npz")] == [str(trial.folder / "samples.npz")]
    assert after["metrics"]["fid"]["value"] == pytest.approx(before["metrics"]["fid"]["value"])


def test_a_toy_metric_is_one_registry_entry_and_its_function(smoke_bench, monkeypatch, tmp_path):
    from coral_ft.bench.context import build_context
    from coral_ft.bench.stages import evaluate_stage
    from coral_ft.metrics import registry

    def brightness(inputs):  # the mean pixel of the samples: a metric no part of coral-ft knows
        return {"value": float(inputs.images.mean())}

    monkeypatch.setitem(registry.COMPUTATIONS, "toy", registry.Computation("toy", brightness, lambda k, c: 1,
                                                                           per_group=True))
    monkeypatch.setitem(registry.METRICS, "toy", registry.Metric("toy", "toy", "value", True, "toy", 1, per_group=True))
    config = load_config("digits-lt", {"bench.scale": "smoke", "bench.run": ["ddpm", "coral"], "bench.seeds": 2,
                                       "bench.guidance_sweep": [0.0, 2.0], "bench.selection_samples": 40,
                                       "bench.metrics": ["fid", "toy"]})
    plan = make_plan("digits-lt", config, smoke_bench)
    ctx = build_context(plan, check_data(plan), progress=False)
    evaluations = {}
    for trial in plan.trials:
        (trial.folder / "eval.json").rename(trial.folder / "eval.json.kept")
        try:
            result = evaluate_stage(ctx, trial, trial.folder / "samples.npz")
        finally:
            (trial.folder / "eval.json.kept").replace(trial.folder / "eval.json")
        with np.load(trial.folder / "samples.npz") as f:
            assert result["metrics"]["toy"]["value"] == pytest.approx(f["images"].mean())
        assert set(result["groups"]) == {"many", "medium", "few"} and all("toy" in g for g in result["groups"].values())
        evaluations[trial.name] = result
    results = collect(ctx, evaluations)
    assert "toy" in results["methods"]["coral"]["measured"] and "few:toy" in results["methods"]["coral"]["measured"]
    assert "toy" in results["methods"]["coral"]["vs_ddpm"]


def test_report_only_writes_the_finished_trials_and_trains_nothing(smoke_bench, monkeypatch, tmp_path, capsys):
    import shutil

    def boom(*args, **kwargs):
        raise AssertionError("--report trained or sampled")

    for module, name in [("coral_ft.train.trainer", "train"), ("coral_ft.sample.run", "sample_to_npz")]:
        monkeypatch.setattr(importlib.import_module(module), name, boom)
    out = tmp_path / "bench"
    shutil.copytree(smoke_bench, out)
    main(["bench", "digits-lt", *SMOKE[:2], "--methods", "ddpm,coral,cbdm", "--seeds", "2", "--out", str(out),
          "--report", "--no-progress"])
    printed = capsys.readouterr().out
    assert "seeds so far (ddpm 2, coral 2, cbdm 0)" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["methods"]["cbdm"]["seeds"] == [] and len(results["methods"]["coral"]["measured"]["fid"]["values"]) == 2


def test_a_scale_gives_way_to_what_the_user_set(tmp_path, monkeypatch):
    import coral_ft.api

    # the CLI lists the fields the user set in bench.keep; the scale's overrides leave them alone
    seen = {}
    monkeypatch.setattr(coral_ft.api, "bench", lambda name, config, out, **k: (seen.update(config=config), (out, ""))[1])
    main(["bench", "digits-lt", "--scale", "smoke", "--sample-batch-size", "8", "--set", "sample.seed=3",
          "--out", str(tmp_path), "--no-progress"])
    config = seen["config"]
    assert config.bench.keep == ["bench.scale", "sample.batch_size", "sample.seed"]
    trial = make_plan("digits-lt", config, tmp_path).trials[0]
    assert trial.config.sample.batch_size == 8 and trial.config.sample.sampler == "ddim"  # the scale's, but not the user's
    unkept = make_plan("digits-lt", load_config("digits-lt", {"bench.scale": "smoke", "sample.batch_size": 8}), tmp_path)
    assert unkept.trials[0].config.sample.batch_size == 16  # a recipe's value: the scale's wins

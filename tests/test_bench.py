"""`coral-ft bench`: smoke end to end, resume skips finished stages, missing data, report."""

import importlib
import json

import numpy as np
import pytest

from coral_ft.bench.report import write_report
from coral_ft.bench.run import fit_smoke_samples, has_per_class_samples, make_plan, per_class_fid_fits, run_bench
from coral_ft.cli.app import main


@pytest.fixture(scope="module")
def smoke_bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    main(["bench", "digits-lt", "--scale", "smoke", "--methods", "ddpm,cbdm", "--out", str(out)])
    return out


def test_smoke_bench_runs_every_stage_and_writes_the_report(smoke_bench):
    out = smoke_bench
    for m in ("ddpm", "cbdm"):
        for name in ("train.done.json", "sample.done.json", "samples.npz", "eval.json", "grid.png", "run/model"):
            assert (out / m / name).exists(), f"{m}/{name}"
        with np.load(out / m / "samples.npz") as f:
            assert f["images"].shape == (40, 8, 8, 1)  # 4 per class, every class present
            assert np.bincount(f["labels"]).tolist() == [4] * 10
    results = json.loads((out / "results.json").read_text())
    assert set(results["methods"]) == {"ddpm", "cbdm"}
    for row in results["methods"].values():
        assert row["measured"]["fid"] > 0 and 0 <= row["measured"]["recall"] <= 1
        assert len(row["sample_accuracy"]["per_class"]) == 10
    md = (out / "results.md").read_text()
    assert "| cbdm | 1 | 4 |" in md and "/ -" not in md  # digits-lt has no paper values to show
    assert "Per-class sample accuracy" in md and "| method | 0 | 1 |" in md
    assert (out / "results.csv").read_text().startswith("method,metric,measured,paper")
    assert (out / "classifier.pt").is_file()


def test_resume_skips_finished_stages(smoke_bench, monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("a finished stage ran again")

    for module, name in [("coral_ft.train.trainer", "train"), ("coral_ft.sample.run", "sample_to_npz"),
                         ("coral_ft.metrics.evaluate", "evaluate")]:
        monkeypatch.setattr(importlib.import_module(module), name, boom)
    before = (smoke_bench / "ddpm" / "eval.json").read_text()
    plan = make_plan("digits-lt", ["ddpm", "cbdm"], "smoke", smoke_bench)
    for run in plan.runs:
        run.num_samples = 40
    run_bench(plan, progress=False)
    assert (smoke_bench / "ddpm" / "eval.json").read_text() == before


def test_dry_run_prints_the_plan_without_work(tmp_path, capsys):
    main(["bench", "digits-lt", "--scale", "small", "--out", str(tmp_path / "b"), "--dry-run"])
    text = capsys.readouterr().out
    assert "ddpm" in text and "coral" in text and "sample 1000" in text and "train 300 steps" in text
    assert not (tmp_path / "b").exists()


def test_imagenet_lt_without_prepared_data_stops_at_once(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "imagenet-lt", "--out", str(tmp_path / "b"), "--data-root", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "coral-ft data prepare imagenet-lt" in err and "OLTR" in err
    assert not (tmp_path / "b").exists()


def test_bad_bench_arguments_are_one_line_errors(tmp_path, capsys):
    for args, match in [(["nosuch"], "no recipe"), (["digits-lt", "--scale", "huge"], "--scale"),
                        (["cifar10", "--methods", "t2h", "--data-root", str(tmp_path)], "not in the recipe")]:
        with pytest.raises(SystemExit):
            main(["bench", *args, "--out", str(tmp_path / "b")])
        assert match in capsys.readouterr().err


def test_report_puts_paper_values_beside_measured_and_draws_per_class_fid(tmp_path):
    plan = make_plan("cifar100-lt", ["ddpm", "coral"], "paper", tmp_path)
    evaluations = {
        m: {"metrics": {"fid": {"value": fid}, "is": {"available": True, "mean": 9.5}, "prd": {"f8_recall": 0.9, "f1_8_precision": 0.8},
                        "recall": {"recall": 0.5, "precision": 0.6},
                        "per-class-fid": {"values": {str(c): fid + c for c in range(100)}}}}
        for m, fid in (("ddpm", 8.0), ("coral", 6.0))
    }
    write_report(plan, evaluations)
    md = (tmp_path / "results.md").read_text()
    assert "| coral | 0.8 | 150000 | 6 / 5.37 | 9.5 / 13.53 | 0.9 / 0.92 | 0.5 / 0.59 | 0.8 / 0.91 |" in md
    assert (tmp_path / "per_class_fid.png").stat().st_size > 1000
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["methods"]["ddpm"]["paper"]["fid"] == 7.7


def test_bench_under_accelerate_launch_with_two_cpu_processes(tmp_path):
    # Multi-process training and sampling as on a cluster: 2 CPU processes, gloo.
    import subprocess
    import sys

    out = tmp_path / "b"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "coral_ft", "bench", "digits-lt",
           "--scale", "smoke", "--methods", "coral", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(out / "coral" / "samples.npz") as f:
        assert np.bincount(f["labels"]).tolist() == [4] * 10  # both processes' shares assembled
    assert json.loads((out / "coral" / "train.done.json").read_text())["steps"] == 4
    assert (out / "results.md").is_file()


def test_per_class_fid_needs_ten_samples_of_every_class():
    assert has_per_class_samples(np.repeat(np.arange(10), 10))
    assert not has_per_class_samples(np.repeat(np.arange(10), 9))
    assert not has_per_class_samples(np.array([0] * 20 + [2] * 20))  # class 1 has none
    assert not has_per_class_samples(np.array([], dtype=np.int64))


def test_per_class_fid_on_inception_features_stops_at_twenty_classes(tmp_path):
    paper = make_plan("cifar100-lt", ["ddpm"], "paper", tmp_path)
    assert per_class_fid_fits(paper, 10) and not per_class_fid_fits(paper, 100)  # 100 x 32 MB covariances
    assert per_class_fid_fits(make_plan("cifar100-lt", ["ddpm"], "smoke", tmp_path), 100)  # 64-d classifier features


def test_smoke_samples_cover_prd_on_ten_classes_and_skip_it_on_a_hundred(tmp_path):
    ten = make_plan("cifar10-lt", ["ddpm", "coral"], "smoke", tmp_path)
    fit_smoke_samples(ten, 10)
    assert [r.num_samples for r in ten.runs] == [200, 200]  # PRD: 20 clusters per class
    assert "f8" in ten.metrics and ten.skipped == []
    hundred = make_plan("cifar100-lt", ["ddpm"], "smoke", tmp_path)
    fit_smoke_samples(hundred, 100)
    assert hundred.runs[0].num_samples == 400 and hundred.skipped == ["f8", "f1_8"]
    assert hundred.metrics == ["fid", "is", "recall"]

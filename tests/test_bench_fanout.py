"""`bench --jobs N` and `--launcher slurm`: trials as jobs through submitit, the same results as
one after another, a dry run that lists the jobs with their resources."""

import json
from types import SimpleNamespace

import pytest

from coral_ft.bench.fanout import TrialJob, describe_jobs, job_threads, slurm_parameters, waves
from coral_ft.bench.plan import make_plan
from coral_ft.cli.app import main
from coral_ft.config import load_config
from tests.conftest import run_cli

SMOKE = ["--scale", "smoke", "--seeds", "2", "--threads", "1", "--no-progress"]


def _same(a, b) -> bool:
    """Equal structure, strings, ints and booleans; floats equal to 1e-5 relative."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return b == pytest.approx(a, rel=1e-5, abs=1e-9, nan_ok=True)
    return a == b


def _without_costs(path):
    results = json.loads(path.read_text())
    for row in results["methods"].values():
        row.pop("cost", None)  # time and memory of a step: measured, never equal twice
    return results


@pytest.mark.slow
def test_two_jobs_give_the_results_of_one(tmp_path):
    main(["bench", "digits-lt", *SMOKE, "--jobs", "1", "--out", str(tmp_path / "one")])
    main(["bench", "digits-lt", *SMOKE, "--jobs", "2", "--out", str(tmp_path / "two")])
    one, two = _without_costs(tmp_path / "one" / "results.json"), _without_costs(tmp_path / "two" / "results.json")
    # every value equal; a float may differ in its last digits (seen once, 4e-6 relative, in a
    # selection FID on oversubscribed cores: the CPU kernels' threading), never a choice or a count
    assert _same(one, two)
    logs = list((tmp_path / "two" / "jobs").rglob("*_log.out"))
    assert len(logs) == 4  # one submitit job per trial
    # a finished bench asked again starts no job: every trial is done
    main(["bench", "digits-lt", *SMOKE, "--jobs", "2", "--out", str(tmp_path / "two")])
    assert len(list((tmp_path / "two" / "jobs").rglob("*_log.out"))) == 4


def test_fine_tune_arms_wait_for_their_base_and_go_in_seed_order(tmp_path):
    config = load_config("digits-lt", {"bench.protocol": "finetune", "bench.seeds": 2, "bench.scale": "smoke"})
    plan = make_plan("digits-lt", config, tmp_path)
    first, second = waves(plan)
    assert [t.name for t in first] == ["base/seed-0"]
    assert [t.seed_index for t in second] == [0, 0, 0, 0, 1, 1, 1, 1]  # every arm's seed 0 before any seed 1


def test_slurm_dry_run_lists_one_job_per_trial_with_its_resources(tmp_path, capsys):
    main(["bench", "digits-lt", "--scale", "smoke", "--seeds", "3", "--launcher", "slurm", "--partition", "gpu",
          "--time-min", "90", "--gpus-per-trial", "2", "--cpus-per-trial", "16", "--out", str(tmp_path), "--dry-run"])
    text = capsys.readouterr().out
    assert "SLURM jobs through submitit" in text and "slurm_partition=gpu" in text and "timeout_min=90" in text
    assert "gpus_per_node=2" in text and "cpus_per_task=16" in text
    wave = next(line for line in text.splitlines() if "wave 1" in line)
    assert "6 job(s)" in wave and all(f"{m}/seed-{i}" in wave for m in ("ddpm", "coral") for i in range(3))
    assert not (tmp_path / "jobs").exists()  # a dry run submits nothing


def test_slurm_parameters_and_requeue(tmp_path):
    config = load_config("cifar10-lt", {"bench.launch.launcher": "slurm", "bench.launch.mem_gb": 64,
                                        "bench.launch.slurm": {"account": "lab", "qos": "high"}})
    params = slurm_parameters(config.bench.launch)
    assert params["gpus_per_node"] == 1 and params["cpus_per_task"] == 8 and params["mem_gb"] == 64
    assert params["slurm_additional_parameters"] == {"account": "lab", "qos": "high"}
    job = TrialJob("cifar10-lt", config, str(tmp_path), "coral/seed-0")
    requeued = job.checkpoint()  # what submitit submits again after a pre-emption or a timeout
    assert requeued.function is job


def test_a_job_gets_its_share_of_the_cores(tmp_path, monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    config = load_config("cifar10-lt")
    assert job_threads(config, 4, 0) == 4 and job_threads(config, 4, 2) == 2
    threaded = load_config("cifar10-lt", {"runtime.threads": 3})
    assert job_threads(threaded, 4, 0) == 3  # the user's setting wins


def test_describe_jobs_counts_finished_trials(tmp_path):
    config = load_config("digits-lt", {"bench.scale": "smoke", "bench.seeds": 2, "bench.launch.jobs": 2})
    plan = make_plan("digits-lt", config, tmp_path)
    (tmp_path / "ddpm" / "seed-0").mkdir(parents=True)
    (tmp_path / "ddpm" / "seed-0" / "eval.json").write_text("{}")
    text = describe_jobs(plan)
    assert "2 local job(s) at once" in text and "3 job(s) (1 already finished)" in text


def test_slurm_without_waiting_submits_each_wave_after_the_one_before(tmp_path, monkeypatch, capsys):
    import submitit

    calls = []

    class FakeExecutor:  # records what submitit would hand to sbatch
        def __init__(self, folder, cluster):
            calls.append(("executor", cluster))

        def update_parameters(self, **params):
            calls.append(("parameters", params))

        def submit(self, job):
            calls.append(("submit", job.trial))
            return SimpleNamespace(job_id=str(100 + sum(c[0] == "submit" for c in calls)))

    monkeypatch.setattr(submitit, "AutoExecutor", FakeExecutor)
    main(["bench", "digits-lt", "--protocol", "finetune", "--arms", "ddpm,coral", "--scale", "smoke", "--seeds", "1",
          "--launcher", "slurm", "--no-wait", "--out", str(tmp_path), "--no-progress"])
    submitted = [c[1] for c in calls if c[0] == "submit"]
    assert submitted == ["base/seed-0", "ddpm/seed-0", "coral/seed-0"]
    dependency = [c[1]["slurm_additional_parameters"] for c in calls if c[0] == "parameters"
                  and "dependency" in c[1].get("slurm_additional_parameters", {})]
    assert dependency == [{"dependency": "afterok:101"}]  # the arms wait for their base's job
    out = capsys.readouterr().out
    assert "--report writes the report" in out and "full report" not in out
    code, _, err = run_cli(["bench", "digits-lt", "--scale", "smoke", "--no-wait", "--out", tmp_path / "l"], capsys)
    assert code == 2 and "needs --launcher slurm" in err  # local jobs cannot outlive the command

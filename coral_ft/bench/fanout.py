"""Trials as jobs: a bench's independent trials run side by side on one machine (`--jobs N`) or as
SLURM jobs on a cluster (`--launcher slurm`), both through submitit's executors.

The stage graph decides what may start: the shared files every trial scores with (the metric
classifier, reference statistics, memorisation features) are built first, here; then the trials
of each wave, where a fine-tune arm waits for its base's wave. Within a wave trials go in seed
order (every arm's seed i before any arm's seed i + 1), so a bench stopped part-way has the same
seeds in every arm. Each job runs `run_trial` on its trial, exactly what a sequential bench runs,
so a trial's results do not depend on how it was launched (on a CPU, as long as it gets the same
number of threads: reductions over threads add in another order). Every stage of a trial resumes
from its markers, so a stopped or requeued trial continues where it was, and the bench's report is
written once its last trial ends (or later, by `bench --report`).

On one machine each job is pinned to its share: `gpus_per_trial` GPUs through
CUDA_VISIBLE_DEVICES, or on a CPU `cores // jobs` threads (`runtime.threads` when it is set).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace

from coral_ft.bench.plan import BenchPlan, Trial
from coral_ft.errors import UserError

JOBS_DIR = "jobs"  # under the bench folder: submitit's pickles and every job's stdout/stderr
POLL_SECONDS = 1.0
SLURM_CPUS_PER_TRIAL = 8
LOCAL_TIMEOUT_MIN = 60 * 24 * 365  # submitit's local executor stops jobs after its timeout; a bench has none


def waves(plan: BenchPlan) -> list[list[Trial]]:
    """The trials in the order they may start: the bases, then the rest; each wave in seed order."""
    arms = plan.arms
    ordered = sorted(plan.trials, key=lambda t: (t.seed_index, arms.index(t.arm)))
    return [w for w in ([t for t in ordered if t.role == "base"], [t for t in ordered if t.role != "base"]) if w]


def pending(trials: list[Trial]) -> list[Trial]:
    return [t for t in trials if not (t.folder / "eval.json").is_file()]


@dataclass
class TrialJob:
    """One trial as a job: rebuilds the bench's plan where it runs and runs the trial's stages.
    A submitit checkpointable: a SLURM job pre-empted or out of time is requeued as it is, and the
    trial resumes from its markers and training checkpoint."""

    name: str  # the bench's recipe name
    config: object  # the resolved RunConfig (runtime.threads set to the job's share)
    out: str
    trial: str  # Trial.name

    def __call__(self) -> str:
        from coral_ft.bench.context import build_context, prepared_plan
        from coral_ft.bench.stages import run_trial

        plan, data = prepared_plan(self.name, self.config, self.out)
        trial = next(t for t in plan.trials if t.name == self.trial)
        run_trial(build_context(plan, data, progress=False), trial)
        return self.trial

    def checkpoint(self, *args, **kwargs):
        import submitit

        return submitit.helpers.DelayedSubmission(self)


def job_threads(config, jobs: int, cpus_per_trial: int) -> int:
    """Threads of one local job on a CPU: runtime.threads if set, else cpus_per_trial, else a share."""
    return config.runtime.threads or cpus_per_trial or max(1, (os.cpu_count() or 1) // jobs)


def slurm_parameters(launch) -> dict:
    """submitit's executor parameters for one trial (what --dry-run shows as sbatch options)."""
    params = {"timeout_min": launch.time_min, "nodes": 1, "tasks_per_node": 1,
              "gpus_per_node": launch.gpus_per_trial, "cpus_per_task": launch.cpus_per_trial or SLURM_CPUS_PER_TRIAL,
              "slurm_signal_delay_s": 120}
    given = {"slurm_partition": launch.partition, "mem_gb": launch.mem_gb, "slurm_additional_parameters": dict(launch.slurm)}
    return {**params, **{key: value for key, value in given.items() if value}}  # the cluster's defaults where unset


def describe_jobs(plan: BenchPlan) -> str:
    """--dry-run: the jobs a fanned-out bench submits, wave by wave, with their resources."""
    launch = plan.config.bench.launch
    if launch.launcher == "slurm":
        params = slurm_parameters(launch)
        where = "SLURM jobs through submitit, each with " + ", ".join(f"{k}={v}" for k, v in params.items())
    else:
        gpus = _gpu_count()
        share = (f"{launch.gpus_per_trial} GPU(s)" if gpus else
                 f"{job_threads(plan.config, launch.jobs, launch.cpus_per_trial)} CPU thread(s)")
        where = f"{launch.jobs} local job(s) at once, each with {share}"
    lines = [f"jobs: {where}"]
    for i, wave in enumerate(waves(plan)):
        todo = pending(wave)
        after = "" if i == 0 else ", once the wave before has finished"
        lines.append(f"  wave {i + 1}{after}: {len(todo)} job(s) ({len(wave) - len(todo)} already finished): "
                     + ", ".join(t.name for t in todo))
    return "\n".join(lines)


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


class Launcher:
    """Submits TrialJobs, at most `slots` at a time, each with its own resources."""

    def __init__(self, plan: BenchPlan):
        import submitit

        self.plan, self.launch = plan, plan.config.bench.launch
        folder = plan.out / JOBS_DIR / "%j"
        if self.launch.launcher == "slurm":
            self.executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
            self.executor.update_parameters(name=f"coral-ft-{plan.name}", **slurm_parameters(self.launch))
            self.slots, self.gpu_pool, self.job_config = None, [], plan.config
        else:
            self.executor = submitit.LocalExecutor(folder=folder)
            self.slots = self.launch.jobs
            per = self.launch.gpus_per_trial
            gpus = _gpu_count()
            if gpus and per * self.launch.jobs > gpus:
                raise UserError(f"--jobs {self.launch.jobs} x --gpus-per-trial {per} needs {per * self.launch.jobs} GPUs; "
                                f"this machine has {gpus}: lower --jobs or --gpus-per-trial")
            self.gpu_pool = [list(range(i * per, (i + 1) * per)) for i in range(self.launch.jobs)] if gpus and per else []
            threads = job_threads(plan.config, self.launch.jobs, self.launch.cpus_per_trial)
            self.job_config = plan.config if self.gpu_pool else replace(
                plan.config, runtime=replace(plan.config.runtime, threads=threads))

    def submit_waves(self, waves: list[list[Trial]], say) -> list[str]:
        """SLURM without waiting: every trial submitted now, each wave's jobs held by SLURM until
        the wave before has succeeded (afterok) -> the job ids."""
        ids: list[str] = []
        for wave in waves:
            if ids:
                self.executor.update_parameters(slurm_additional_parameters={
                    **dict(self.launch.slurm), "dependency": "afterok:" + ":".join(ids)})
            wave_ids = [str(self.submit(trial, []).job_id) for trial in wave]
            say(f"submitted {len(wave)} job(s): " + ", ".join(f"{t.name} ({i})" for t, i in zip(wave, wave_ids)))
            ids += wave_ids
        return ids

    def submit(self, trial: Trial, gpus: list[int]):
        job = TrialJob(self.plan.name, self.job_config, str(self.plan.out), trial.name)
        if self.launch.launcher == "local":
            self.executor.update_parameters(timeout_min=LOCAL_TIMEOUT_MIN, gpus_per_node=len(gpus),
                                            visible_gpus=tuple(gpus))
        return self.executor.submit(job)

    def run(self, trials: list[Trial], say) -> list[tuple[Trial, str]]:
        """Every trial as a job; -> the (trial, error) of those that failed."""
        queue, running, failed = list(trials), {}, []
        free = list(self.gpu_pool)
        try:
            while queue or running:
                while queue and (self.slots is None or len(running) < self.slots):
                    trial = queue.pop(0)
                    gpus = free.pop(0) if free else []
                    running[self.submit(trial, gpus)] = (trial, gpus)
                    say(f"started {trial.name}" + (f" on GPU {','.join(map(str, gpus))}" if gpus else ""))
                done = [job for job in running if job.done()]
                if not done:
                    time.sleep(POLL_SECONDS)
                for job in done:
                    trial, gpus = running.pop(job)
                    if gpus:
                        free.append(gpus)
                    error = job.exception()
                    if error is None:
                        say(f"finished {trial.name}")
                    else:
                        failed.append((trial, _last_line(error)))
                        say(f"failed {trial.name}: {failed[-1][1]} (log: {job.paths.stderr})")
        except KeyboardInterrupt:
            for job in running:
                job.cancel(check=False)
            raise
        return failed


def _last_line(error: BaseException) -> str:
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def run_fanned_out(plan: BenchPlan, data, progress: bool, say=print) -> None:
    """The shared files, then every unfinished trial as a job, wave by wave (submitted at once, held
    by SLURM dependencies, without bench.launch.wait). Raises UserError naming the trials that
    failed (the others' results stand; run the bench again to resume)."""
    from coral_ft.bench.context import build_context

    build_context(plan, data, progress)  # classifier, reference and memorisation features: once, here
    launcher = Launcher(plan)
    if not plan.config.bench.launch.wait:
        launcher.submit_waves([w for w in (pending(w) for w in waves(plan)) if w], say)
        return
    for wave in waves(plan):
        todo = pending(wave)
        if not todo:
            continue
        failed = launcher.run(todo, say)
        if failed:
            names = ", ".join(t.name for t, _ in failed)
            raise UserError(f"{len(failed)} trial(s) failed ({names}): {failed[0][1]}; their logs are in "
                            f"{plan.out / JOBS_DIR}; run the same bench again to resume")

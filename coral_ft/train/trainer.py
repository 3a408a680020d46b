"""The training loop, on accelerate. It knows no method: it draws the step's batches
(coral_ft.train.batches), calls the objective, adds a batch-level term over the whole step
(coral_ft.train.step_term) and steps; `Trainer.train_step` is the whole step, top to bottom.

`train.batch_size` is the GLOBAL batch of one optimiser step, split into `grad_accum`
micro-batches, each split over the processes; N processes and K micro-batches compute the
gradient one process computes on the whole batch, and a resumed run sees exactly the batches an
uninterrupted run sees.

Stopping: SIGTERM (a cluster's pre-emption signal) or Ctrl-C finishes the current step, writes a
checkpoint and raises `TrainingStopped`; `--resume` continues from it. A NaN loss stops with the
last good checkpoint untouched.
"""

from __future__ import annotations

import contextlib
import copy
import json
import sys
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from diffusers.training_utils import EMAModel

from coral_ft.checkpoint.layout import RunDir
from coral_ft.checkpoint.model import ModelInfo, save_head
from coral_ft.checkpoint.training import list_checkpoints, load_checkpoint, save_checkpoint
from coral_ft.config import RunConfig, save_config
from coral_ft.data.registry import LabeledImages, dataset_from_config
from coral_ft.devices import resolved_device, training_precision
from coral_ft.errors import ConfigError, RunStopped, UserError
from coral_ft.models.denoiser import Denoiser, KeyedForward, build_head
from coral_ft.models.presets import null_label as null_label_of
from coral_ft.models.presets import num_classes_of
from coral_ft.models.schedule import ForwardProcess
from coral_ft.objectives import OBJECTIVES, ObjectiveContext, build_objective
from coral_ft.train.batches import StepBatches
from coral_ft.train.grid import GridStopped, save_sample_grid
from coral_ft.train.resume import checkpoint_to_resume, finished_step, truncate_metrics
from coral_ft.train.signals import StopRequests
from coral_ft.train.source import FromScratch, UNetSource
from coral_ft.train.step_term import StepTerm
from coral_ft.train.tracking import check_tracker, log_image, start_tracking

# A data set up to this size lives on the GPU: indexing, conversion and flips of a batch then cost
# nothing on the host, which otherwise bounds a `ddpm-cifar` step on an H100 (docs/speed.md).
DEVICE_DATA_LIMIT = 8 * 2**30


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the last checkpoint written is still good."""


class TrainingStopped(RunStopped):
    """SIGTERM or Ctrl-C: a checkpoint of the current step was written; --resume continues."""


def warmup_factor(step: int, warmup_steps: int) -> float:
    """Linear warm-up to the base learning rate, then constant (the peers' schedule)."""
    return 1.0 if warmup_steps == 0 else min(1.0, (step + 1) / warmup_steps)


def make_accelerator(config: RunConfig, run: RunDir) -> Accelerator:
    t = config.train
    device = resolved_device(config.runtime.device)
    # A recipe's precision that the device lacks was changed as the config was resolved (with a
    # note, coral_ft.cli.options.fit_precision); what arrives here is an order, checked.
    training_precision(t.mixed_precision, device, given=True)
    check_tracker(t.report_to)
    kwargs = {} if t.report_to == "none" else {"log_with": t.report_to, "project_dir": str(run.root / "logs")}
    release_other_precision(t.mixed_precision)
    accelerator = Accelerator(mixed_precision=t.mixed_precision, cpu=device == "cpu", **kwargs)
    if accelerator.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = t.tf32
        torch.backends.cudnn.allow_tf32 = t.tf32
    return accelerator


def release_other_precision(mixed_precision: str) -> None:
    """accelerate keeps one mixed-precision setting per process and refuses another: a second run in
    the same process (the Python API, a notebook) with another precision resets that setting. The
    distributed state (the processes, their group) is kept."""
    from accelerate.state import AcceleratorState

    if AcceleratorState._shared_state.get("_mixed_precision", mixed_precision) != mixed_precision:
        AcceleratorState._reset_state()


class Trainer:
    def __init__(self, config: RunConfig, out_dir: str | Path, source: UNetSource | None = None, progress: bool = True,
                 data: LabeledImages | None = None):
        self.config, self.run_dir, self.progress = config, RunDir(out_dir), progress
        self.source = source or FromScratch()
        t = config.train
        # the data first: a missing data set is the first thing to say
        self.data: LabeledImages = data if data is not None else dataset_from_config(config.data, "train")
        self.accelerator = acc = make_accelerator(config, self.run_dir)
        if t.batch_size % (t.grad_accum * acc.num_processes):
            raise ConfigError(f"train.batch_size {t.batch_size} must divide evenly into grad_accum {t.grad_accum} "
                              f"x {acc.num_processes} process(es)")

        torch.manual_seed(t.seed)  # identical initialisation on every process
        self.module = self.denoiser = self._build_denoiser()  # the plain module (weights, EMA, export)
        self.scheduler = self.source.scheduler(config)  # the one forward process: trained, sampled, saved
        self.process = ForwardProcess(self.scheduler)
        trainable = self._trainable_state()
        # The EMA follows every trainable parameter: the U-Net's and the head's (latents pair them).
        self.ema_names = list(trainable)
        self.ema = EMAModel(trainable.values(), decay=t.ema_decay,
                            min_decay=0.0 if t.ema_warmup else t.ema_decay,  # no warm-up: the peers' constant decay
                            foreach=acc.device.type == "cuda")  # one fused update over all tensors on a GPU
        optimizer = torch.optim.Adam(trainable.values(), lr=t.lr, **({"fused": True} if acc.device.type == "cuda" else {}))
        self.lr_schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_factor(s, t.warmup_steps))
        self.model, self.optimizer = acc.prepare(self.module, optimizer)
        if t.compile:  # the whole denoiser, bottleneck hook included (the hook is added before compiling)
            self.model = torch.compile(self.model, mode=t.compile_mode)
        self.ema.to(acc.device)
        self.objective = build_objective(config.objective, ObjectiveContext(
            self.process, self.data.num_classes, self.null_label, self.data.counts(), self.source.from_scratch,
            config.objective.regularise_dropped))
        placement = t.data_on_device
        on_device = placement == "always" or (
            placement == "auto" and acc.device.type == "cuda" and self.data.images.numel() <= DEVICE_DATA_LIMIT)
        images = self.data.images.to(acc.device) if on_device else self.data.images  # (N, C, H, W) uint8
        self.batches = StepBatches(config, images, self.data.labels, self.objective, self.null_label, acc, on_device)
        self.step_term = StepTerm(self.objective, self.model, acc, self.batches.micro_global, self.batches.micro_local)
        self.step = 0
        # The logged terms summed over the steps since the last metrics.jsonl line; checkpointed, so
        # a resumed run logs the lines an uninterrupted one logs.
        self.window: dict[str, torch.Tensor] = {}
        self.window_steps = 0

    def _build_denoiser(self) -> Denoiser:
        """The source's U-Net (its requires_grad flags say what trains) with the head the method uses."""
        config = self.config
        unet = self.source.build(self.data, config)
        self.null_label = null_label_of(unet) if num_classes_of(unet) is not None else None  # None: unconditional
        method = OBJECTIVES[config.objective.method]
        if self.null_label is None and method.needs_labels:
            raise ConfigError(f"an unconditional U-Net (model.conditional = false) trains with a method that needs no "
                              f"class labels (ddpm); {config.objective.method} needs them")
        head = build_head(unet, config.model.head_dim, config.model.head_pooling) if method.uses_head else None
        denoiser = Denoiser(unet, head)
        return denoiser.to(memory_format=torch.channels_last) if config.train.channels_last else denoiser

    # -- state ------------------------------------------------------------------------------
    def _trainable_state(self) -> dict[str, torch.Tensor]:
        return {n: p for n, p in self.module.named_parameters() if p.requires_grad}

    def _ema_state(self) -> dict[str, torch.Tensor]:
        # U-Net names without their "unet." prefix (the U-Net's own names); the head's as "head.*".
        return {n.removeprefix("unet."): p for n, p in zip(self.ema_names, self.ema.shadow_params)}

    def save_checkpoint(self) -> None:
        acc = self.accelerator
        acc.wait_for_everyone()
        window = {k: float(acc.reduce(v, "mean")) for k, v in sorted(self.window.items())}  # a collective: every process
        if acc.is_main_process:
            state = {"lr_schedule": self.lr_schedule.state_dict(), "ema_step": self.ema.optimization_step,
                     "log_window": window, "log_window_steps": self.window_steps}
            if acc.scaler is not None:  # fp16: the loss scale belongs to an exact resume
                state["grad_scaler"] = acc.scaler.state_dict()
            save_checkpoint(self.run_dir.checkpoints, self.step, self._trainable_state(), self._ema_state(),
                            self.optimizer.state_dict(), state, keep=self.config.train.keep_checkpoints)
        acc.wait_for_everyone()

    def load_checkpoint(self, path: Path) -> None:
        ckpt = load_checkpoint(path)
        params = self._trainable_state()
        missing = set(params) ^ set(ckpt["trainable"])
        if missing:
            raise UserError(f"checkpoint {path} does not match this model (differs in {sorted(missing)[:3]} ...)")
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(ckpt["trainable"][name])
            for name, shadow in zip(self.ema_names, self.ema.shadow_params):
                # Checkpoints written before the head had an EMA start it from the head's weights.
                shadow.copy_(ckpt["ema"].get(name.removeprefix("unet."), params[name].detach()))
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.lr_schedule.load_state_dict(ckpt["state"]["lr_schedule"])
        self.ema.optimization_step = ckpt["state"]["ema_step"]
        device = self.accelerator.device
        self.window = {k: torch.tensor(v, device=device) for k, v in ckpt["state"].get("log_window", {}).items()}
        self.window_steps = ckpt["state"].get("log_window_steps", 0)
        if self.accelerator.scaler is not None and "grad_scaler" in ckpt["state"]:
            self.accelerator.scaler.load_state_dict(ckpt["state"]["grad_scaler"])
        self.step = ckpt["state"]["step"]

    # -- one step ---------------------------------------------------------------------------
    def train_step(self) -> dict[str, torch.Tensor]:
        """One optimiser step over the global batch: every micro-batch's loss, plus the method's
        batch-level term over the whole step, then clip, step, schedule, EMA."""
        acc, accum = self.accelerator, self.config.train.grad_accum
        self.model.train()
        batch = self.batches.draw(self.step)  # all of the step's randomness, for the whole global batch
        micro = self.batches.split(batch, self.step)  # this process's share of each micro-batch
        self.step_term.begin(micro, batch)
        logged: dict[str, torch.Tensor] = {}
        for m, mb in enumerate(micro):
            # DDP synchronises gradients on the last micro-batch of a step only
            sync = contextlib.nullcontext() if m == accum - 1 else acc.no_sync(self.model)
            with sync, acc.autocast():
                out = self.objective(KeyedForward(self.model, mb.keys), mb)
                acc.backward(self.step_term.added(m, out.features, out.loss / accum))
            _add(logged, {"loss": out.loss, **out.logged}, 1 / accum)
        self.step_term.log_into(logged)
        acc.clip_grad_norm_(self.model.parameters(), self.config.train.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.lr_schedule.step()
        self.ema.step(self._trainable_state().values())
        self.step += 1
        return logged

    # -- outputs ----------------------------------------------------------------------------
    def ema_denoiser(self) -> Denoiser:
        """A copy of the denoiser carrying the EMA weights (U-Net and head), for samples and export."""
        denoiser = copy.deepcopy(self.module).to(memory_format=torch.contiguous_format)
        self.ema.copy_to([p for p in denoiser.parameters() if p.requires_grad])
        return denoiser.eval()

    def write_samples(self, should_stop=lambda: False) -> None:
        """The sample grid of this step (train.grid); a stop requested meanwhile leaves it undrawn."""
        if self.accelerator.is_main_process:
            path = self.run_dir.sample_grid(self.step)
            try:
                written = save_sample_grid(self.ema_denoiser().unet, self.scheduler, self.data, self.config, path,
                                           should_stop)
            except GridStopped:
                written = None
            if written is not None and self.config.train.report_to != "none":
                log_image(self.accelerator, path, self.step)
        self.accelerator.wait_for_everyone()

    def export(self) -> Path:
        if self.accelerator.is_main_process:
            info = ModelInfo(
                class_names=self.data.class_names,
                dataset=self.config.data.dataset,
                extra={"method": self.config.objective.method, "step": self.step, "class_counts": self.data.counts(),
                       "imbalance": self.config.data.imbalance},  # [sample]: the run's config.toml
            )
            ema = self.ema_denoiser()
            self.source.save(ema.unet, self.run_dir.model, self.scheduler, info)
            if ema.head is not None:
                save_head(self.run_dir.head, ema.head)
        self.accelerator.wait_for_everyone()
        return self.run_dir.model

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> Path:
        from tqdm.auto import tqdm

        t, acc = self.config.train, self.accelerator
        window_start, timed_steps = time.perf_counter(), 0
        finite = torch.ones((), dtype=torch.bool, device=acc.device)
        with tqdm(total=t.max_steps, initial=self.step, desc=f"train {self.config.objective.method}", dynamic_ncols=True,
                  disable=not (self.progress and acc.is_main_process)) as bar, StopRequests(acc) as stop_requests:
            while self.step < t.max_steps:
                terms = self.train_step()
                finite &= torch.isfinite(terms["loss"])  # checked at log/checkpoint time: no per-step sync
                _add(self.window, terms, 1.0)
                self.window_steps += 1
                timed_steps += 1
                bar.update(1)
                stop, last = stop_requests.agreed(self.step), self.step == t.max_steps
                log = self.step % t.log_every == 0 or last or stop
                ckpt = self.step % t.checkpoint_every == 0 or last or stop
                # a grid for every run, unless train.sample_grid = 0
                grid = t.sample_grid > 0 and (self.step % t.sample_every == 0 or last)
                if (log or ckpt or grid) and not bool(acc.reduce(finite.float(), "min")):
                    checkpoints = list_checkpoints(self.run_dir.checkpoints)
                    where = f"last good checkpoint: {checkpoints[-1][1]}" if checkpoints else "no checkpoint was written yet"
                    raise TrainingDiverged(f"the loss became NaN/inf by step {self.step}; {where}. Lower train.lr or check the data")
                if log:
                    loss = self._log(timed_steps / (time.perf_counter() - window_start))
                    bar.set_postfix(loss=f"{loss:.4f}")
                    window_start, timed_steps = time.perf_counter(), 0
                if ckpt:
                    self.save_checkpoint()
                if grid and not stop:
                    self.write_samples(lambda: stop_requests.requested)
                    stop = stop_requests.agreed_now()  # a stop during the grid: honoured now, not a step later
                    if stop and not ckpt:
                        self.save_checkpoint()
                if stop:
                    raise TrainingStopped(f"stopped at step {self.step}: checkpoint written to {self.run_dir.checkpoints}; "
                                          "run the same command with --resume to continue")
        return self.export()

    def _log(self, steps_per_sec: float) -> float:
        """One metrics.jsonl line (and tracker entry): the window's mean terms, lr and speed; -> the mean loss."""
        acc = self.accelerator
        record = {k: float(acc.reduce(v, "mean")) / self.window_steps for k, v in self.window.items()}
        record.update(step=self.step, lr=self.lr_schedule.get_last_lr()[0], steps_per_sec=steps_per_sec)
        self.window, self.window_steps = {}, 0
        if acc.is_main_process:
            with open(self.run_dir.metrics, "a") as f:
                f.write(json.dumps(record) + "\n")
        if self.config.train.report_to != "none":
            acc.log({k: v for k, v in record.items() if k != "step"}, step=self.step)
        return record["loss"]


def _add(totals: dict, terms: dict, weight: float) -> None:
    for k, v in terms.items():
        totals[k] = totals.get(k, 0.0) + v.detach().float() * weight


def train(config: RunConfig, out_dir: str | Path, *, resume: bool = False, source: UNetSource | None = None,
          progress: bool = True, data: LabeledImages | None = None, announce: bool = True,
          notes: tuple[str, ...] = ()) -> Path:
    """Train (or fine-tune, with a source) and return the run's exported model folder.

    `out_dir` receives `config.toml`, `checkpoints/`, `metrics.jsonl`, `samples/`, `model/` and
    `head/` (coral_ft.checkpoint.layout). With `resume`, training continues from the newest
    complete checkpoint; a run without one starts from the beginning, and a finished one whose
    model/ is up to date is left as it is (coral_ft.train.resume). `data` trains on images already
    in memory instead of reading `config.data`. `announce`: say on stderr what `resume` does (a
    user's --resume; a bench resumes every stage). `notes`: lines for stderr once every check has
    passed and the run starts (the CLI's word on the recipe a data set name brought).
    """
    run = RunDir(out_dir)
    checkpoint = checkpoint_to_resume(config, run, resume, announce)
    done = finished_step(config, run) if checkpoint is not None else None
    if done is not None:
        if announce:
            print(f"--resume: {run.root} is already finished (step {done} of train.max_steps = {config.train.max_steps}); "
                  f"its model in {run.model} is unchanged: raise --max-steps to train on", file=sys.stderr)
        return run.model
    trainer = Trainer(config, run.root, source, progress, data)
    if trainer.accelerator.is_main_process:
        for note in notes:
            print(note, file=sys.stderr)
        run.root.mkdir(parents=True, exist_ok=True)
        save_config(config, run.config)
    if checkpoint is not None:
        trainer.load_checkpoint(checkpoint)
        if trainer.accelerator.is_main_process:
            truncate_metrics(run.metrics, trainer.step)
        if trainer.step >= config.train.max_steps:
            return trainer.export()
    with start_tracking(trainer.accelerator, config, run):
        return trainer.run()


__all__ = ["train", "Trainer", "TrainingDiverged", "TrainingStopped", "warmup_factor"]

"""The training loop, on accelerate. It knows no method: it draws the randomness every method
shares, calls the objective, and steps.

Batches: `train.batch_size` is the GLOBAL batch of one optimiser step. It is split into
`grad_accum` micro-batches, each split over the processes. All randomness of a step (which
images, flips, timesteps, noise, dropped labels) is drawn for the whole global batch from
generators seeded by (seed, step) and each process takes its slice, so
- an interrupted and resumed run sees exactly the batches an uninterrupted run sees, and
- N processes together compute what one process computes (the objectives gather batch-level
  terms such as SupCon over all processes).

Stopping: SIGTERM (a cluster's pre-emption signal) or Ctrl-C finishes the current step, writes a
checkpoint and raises `TrainingStopped`; `--resume` continues from it. A NaN loss stops with the
last good checkpoint untouched.
"""

from __future__ import annotations

import contextlib
import copy
import json
import signal
import sys
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from diffusers.training_utils import EMAModel

from coral_ft.checkpoint.layout import RunDir
from coral_ft.checkpoint.model import ModelInfo, save_head
from coral_ft.checkpoint.training import list_checkpoints, load_checkpoint, save_checkpoint
from coral_ft.config import RunConfig, load_config, save_config
from coral_ft.data.batches import derived_seed, global_batch_indices, random_hflip, step_generator, to_model_range
from coral_ft.data.registry import LabeledImages, dataset_from_config
from coral_ft.devices import resolved_device
from coral_ft.errors import ConfigError, RunStopped, UserError
from coral_ft.models.denoiser import Denoiser, KeyedForward, build_head
from coral_ft.models.dropout import sample_keys
from coral_ft.models.presets import null_label as null_label_of
from coral_ft.models.presets import num_classes_of
from coral_ft.models.schedule import ForwardProcess
from coral_ft.objectives import OBJECTIVES, ObjectiveContext, TrainBatch, build_objective, drop_labels
from coral_ft.train.grid import save_sample_grid
from coral_ft.train.source import FromScratch, UNetSource
from coral_ft.train.tracking import check_tracker, start_tracking

# Sections that define what is trained; a resumed run must not change them.
FROZEN_SECTIONS = ("data", "model", "objective", "finetune")

# Random streams within one step (keys of coral_ft.data.batches.step_generator). Every draw that
# shapes a step is made for the whole global batch, so it does not depend on the split.
STREAM_SHARED = 0  # flips, timesteps, noise, label dropout of the whole global batch
STREAM_MODEL = 1  # torch's global RNG, per micro-batch and process (no coral-ft model draws from it)
STREAM_PREPARE = 3  # a method's own draws over the whole global batch (objective.prepare)
STREAM_DEVICE_NOISE = 4  # the global batch's noise when it is drawn on a GPU
STREAM_DROPOUT = 5  # the samples' dropout keys (coral_ft.models.dropout)
# A data set up to this size lives on the GPU: indexing, conversion and flips of a batch then cost
# nothing on the host, which otherwise bounds a `ddpm-cifar` step on an H100 (docs/speed.md).
DEVICE_DATA_LIMIT = 8 * 2**30
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
STOP_CHECK_EVERY = 10  # steps between agreeing on a stop request across processes


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the last checkpoint written is still good."""


class TrainingStopped(RunStopped):
    """SIGTERM or Ctrl-C: a checkpoint of the current step was written; --resume continues."""


def warmup_factor(step: int, warmup_steps: int) -> float:
    """Linear warm-up to the base learning rate, then constant (the peers' schedule)."""
    return 1.0 if warmup_steps == 0 else min(1.0, (step + 1) / warmup_steps)


def _gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    # Autograd-aware all-gather: the backward pass sums the gradients that every process computes
    # for this process's slice, so with DDP's averaging the global loss gets its exact gradient.
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(tensor), dim=0)


def make_accelerator(config: RunConfig, run: RunDir) -> Accelerator:
    t = config.train
    device = resolved_device(config.runtime.device)
    kwargs = {}
    check_tracker(t.report_to)
    if t.report_to != "none":
        kwargs = {"log_with": t.report_to, "project_dir": str(run.root / "logs")}
    accelerator = Accelerator(mixed_precision=t.mixed_precision, cpu=device == "cpu", **kwargs)
    if accelerator.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = t.tf32
        torch.backends.cudnn.allow_tf32 = t.tf32
    return accelerator


class Trainer:
    def __init__(
        self,
        config: RunConfig,
        out_dir: str | Path,
        source: UNetSource | None = None,
        progress: bool = True,
        data: LabeledImages | None = None,
    ):
        self.config = config
        self.run_dir = RunDir(out_dir)
        self.progress = progress
        self.source = source or FromScratch()
        t = config.train
        self.accelerator = make_accelerator(config, self.run_dir)
        world = self.accelerator.num_processes
        if t.batch_size % (t.grad_accum * world):
            raise ConfigError(
                f"train.batch_size {t.batch_size} must divide evenly into grad_accum {t.grad_accum} x {world} process(es)"
            )
        self.micro_global = t.batch_size // t.grad_accum  # images per micro-step, all processes
        self.micro_local = self.micro_global // world
        self.data: LabeledImages = data if data is not None else dataset_from_config(config.data, "train")

        torch.manual_seed(t.seed)  # identical initialisation on every process
        unet = self.source.build(self.data, config)
        self.scheduler = self.source.scheduler(config)  # the one forward process: trained, sampled, saved
        self.process = ForwardProcess(self.scheduler)
        objective_entry = OBJECTIVES[config.objective.method]
        head = build_head(unet, config.model.head_dim, config.model.head_pooling) if objective_entry.cls.uses_head else None
        self.null_label = null_label_of(unet) if num_classes_of(unet) is not None else None  # None: unconditional
        if self.null_label is None and config.objective.method != "ddpm":
            raise ConfigError(f"an unconditional U-Net (model.conditional = false) trains with the ddpm method only; "
                              f"{config.objective.method} needs class labels")
        denoiser = Denoiser(unet, head)
        if t.channels_last:
            denoiser = denoiser.to(memory_format=torch.channels_last)
        # The EMA follows every trainable parameter: the U-Net's and the head's (latents pair them).
        self.ema_names = [n for n, p in denoiser.named_parameters() if p.requires_grad]
        self.ema = EMAModel(
            [p for p in denoiser.parameters() if p.requires_grad],
            decay=t.ema_decay,
            # Without warm-up the decay is the constant ema_decay from the first step, as the peers.
            min_decay=0.0 if t.ema_warmup else t.ema_decay,
            # One fused update over all tensors instead of a Python loop of three kernels each.
            foreach=self.accelerator.device.type == "cuda",
        )
        trainable = [p for p in denoiser.parameters() if p.requires_grad]
        fused = {"fused": True} if self.accelerator.device.type == "cuda" else {}
        optimizer = torch.optim.Adam(trainable, lr=t.lr, **fused)
        self.lr_schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_factor(s, t.warmup_steps))
        self.module = denoiser  # the plain module (weights, EMA, export)
        self.model, self.optimizer = self.accelerator.prepare(denoiser, optimizer)
        if t.compile:
            # The whole denoiser, bottleneck hook included (the hook is added before compiling).
            self.model = torch.compile(self.model, mode=t.compile_mode)
        self.ema.to(self.accelerator.device)
        self.objective = build_objective(
            config.objective,
            ObjectiveContext(
                schedule=self.process,
                num_classes=self.data.num_classes,
                null_label=self.null_label,
                class_counts=self.data.counts(),
                from_scratch=self.source.from_scratch,
                regularise_dropped=config.objective.regularise_dropped,
                gather=_gather_with_grad if world > 1 else (lambda x: x),
            ),
        )
        device = self.accelerator.device
        on_device = device.type == "cuda" and self.data.images.numel() <= DEVICE_DATA_LIMIT
        self.images = self.data.images.to(device) if on_device else self.data.images  # (N, C, H, W) uint8
        self.labels = self.data.labels
        self.step = 0
        self._stop_requested = False

    # -- state ------------------------------------------------------------------------------
    @property
    def denoiser(self) -> Denoiser:
        return self.module

    def _trainable_state(self) -> dict[str, torch.Tensor]:
        return {n: p for n, p in self.module.named_parameters() if p.requires_grad}

    def _ema_state(self) -> dict[str, torch.Tensor]:
        # U-Net names without their "unet." prefix (the U-Net's own names); the head's as "head.*".
        return {_ema_key(n): p for n, p in zip(self.ema_names, self.ema.shadow_params)}

    def save_checkpoint(self) -> None:
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            state = {"lr_schedule": self.lr_schedule.state_dict(), "ema_step": self.ema.optimization_step}
            if self.accelerator.scaler is not None:  # fp16: the loss scale belongs to an exact resume
                state["grad_scaler"] = self.accelerator.scaler.state_dict()
            save_checkpoint(
                self.run_dir.checkpoints,
                self.step,
                self._trainable_state(),
                self._ema_state(),
                self.optimizer.state_dict(),
                state,
                keep=self.config.train.keep_checkpoints,
            )
        self.accelerator.wait_for_everyone()

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
                shadow.copy_(ckpt["ema"].get(_ema_key(name), params[name].detach()))
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.lr_schedule.load_state_dict(ckpt["state"]["lr_schedule"])
        self.ema.optimization_step = ckpt["state"]["ema_step"]
        if self.accelerator.scaler is not None and "grad_scaler" in ckpt["state"]:
            self.accelerator.scaler.load_state_dict(ckpt["state"]["grad_scaler"])
        self.step = ckpt["state"]["step"]

    # -- one step ---------------------------------------------------------------------------
    def _global_batch(self) -> dict[str, torch.Tensor]:
        """The current step's global batch and its shared randomness, identical on every process."""
        cfg, step = self.config, self.step
        B = cfg.train.batch_size
        g = step_generator(cfg.train.seed, step, STREAM_SHARED)
        idx = global_batch_indices(len(self.labels), B, cfg.train.seed, step)  # (B,)
        images = to_model_range(self.images[idx.to(self.images.device)])  # (B, C, H, W), where the data lives
        if cfg.data.hflip:
            images = random_hflip(images, g)
        t = torch.randint(0, self.process.num_train_timesteps, (B,), generator=g)
        if images.device.type == "cpu":
            noise = torch.randn(images.shape, generator=g)
        else:  # drawn where it is used: every process draws the same global noise on its GPU
            device_g = torch.Generator(device=images.device)
            device_g.manual_seed(derived_seed(cfg.train.seed, step, STREAM_DEVICE_NOISE))
            noise = torch.randn(images.shape, generator=device_g, device=images.device)
        labels = self.labels[idx]
        cond = None if self.null_label is None else drop_labels(labels, cfg.model.p_uncond, self.null_label,
                                                                cfg.model.label_drop, g)
        keys = sample_keys(derived_seed(cfg.train.seed, step, STREAM_DROPOUT), B)  # dropout masks, by position
        return {"x0": images, "labels": labels, "cond_labels": cond, "t": t, "noise": noise, "keys": keys}

    def _micro_batch(self, batch: dict[str, torch.Tensor], extras: dict[str, torch.Tensor], micro: int) -> TrainBatch:
        """This process's slice of micro-batch `micro` of the global batch."""
        seed, step = self.config.train.seed, self.step
        part = self._slice(micro)
        dev = self.accelerator.device
        # Dropout draws from the samples' keys; anything else in a model that drew from torch's
        # global RNG would get this (seed, step, micro, rank) stream: exact on resume, not on a new split.
        torch.manual_seed(derived_seed(seed, step, STREAM_MODEL, micro, self.accelerator.process_index))
        return TrainBatch(
            **{k: None if v is None else v[part].to(dev) for k, v in batch.items()},
            generator=None,  # a method's draws happen in `prepare`, on the global batch
            extras={k: v[part].to(dev) for k, v in extras.items()},
        )

    def _slice(self, micro: int) -> slice:
        start = micro * self.micro_global + self.accelerator.process_index * self.micro_local
        return slice(start, start + self.micro_local)

    def train_step(self) -> dict[str, torch.Tensor]:
        accum = self.config.train.grad_accum
        self.model.train()
        batch = self._global_batch()
        prep_generator = step_generator(self.config.train.seed, self.step, STREAM_PREPARE)
        extras = self.objective.prepare(TrainBatch(**batch, generator=prep_generator))
        if accum > 1 and self.objective.step_output is not None:
            totals = self._accumulate_with_step_term(batch, extras)
        else:
            totals: dict[str, torch.Tensor] = {}
            for micro in range(accum):
                with self._sync_on(micro), self.accelerator.autocast():
                    micro_batch = self._micro_batch(batch, extras, micro)
                    terms = self.objective(KeyedForward(self.model, micro_batch.keys), micro_batch)
                    self.accelerator.backward(terms["loss"] / accum)
                _add(totals, terms, 1 / accum)
        self.accelerator.clip_grad_norm_(self.model.parameters(), self.config.train.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.lr_schedule.step()
        self.ema.step([p for p in self.module.parameters() if p.requires_grad])
        self.step += 1
        return totals

    def _accumulate_with_step_term(self, batch, extras) -> dict[str, torch.Tensor]:
        """Gradient accumulation for a method whose term spans the step's whole batch (CORAL's
        SupCon): the term and its gradient with respect to the outputs on the whole batch first,
        then each micro-batch's backward with its rows of that gradient. Dropout masks are functions
        of the samples' keys, so the outputs of both passes are the same."""
        accum, acc = self.config.train.grad_accum, self.accelerator
        with torch.no_grad(), acc.autocast():
            outputs = []
            for m in range(accum):
                micro_batch = self._micro_batch(batch, extras, m)
                outputs.append(acc.gather(self.objective.step_outputs(KeyedForward(self.model, micro_batch.keys),
                                                                      micro_batch).float()))
        outputs = torch.cat(outputs).requires_grad_(True)  # (B, D): global-batch order
        global_batch = TrainBatch(**{k: v.to(acc.device) for k, v in batch.items()}, generator=None)
        step_term, totals = self.objective.step_loss(outputs, global_batch)
        # DDP averages the processes' gradients: each scales its share up to keep the sum exact.
        grad = torch.autograd.grad(step_term, outputs)[0] * acc.num_processes
        for micro in range(accum):
            rows = grad[micro * self.micro_global:(micro + 1) * self.micro_global][self._slice(0)]
            with self._sync_on(micro), acc.autocast():
                micro_batch = self._micro_batch(batch, extras, micro)
                terms = self.objective(KeyedForward(self.model, micro_batch.keys), micro_batch, output_grad=rows)
                acc.backward(terms["loss"] / accum + terms.pop("surrogate"))
            _add(totals, terms, 1 / accum)
        totals["loss"] = totals["loss"] + step_term.detach()
        return totals

    def _sync_on(self, micro: int):
        """DDP synchronises gradients on the last micro-batch of a step only."""
        last = micro == self.config.train.grad_accum - 1
        return contextlib.nullcontext() if last else self.accelerator.no_sync(self.model)

    # -- outputs ----------------------------------------------------------------------------
    def ema_denoiser(self) -> Denoiser:
        """A copy of the denoiser carrying the EMA weights (U-Net and head), for samples and export."""
        denoiser = copy.deepcopy(self.module).to(memory_format=torch.contiguous_format)
        self.ema.copy_to([p for p in denoiser.parameters() if p.requires_grad])
        return denoiser.eval()

    def write_samples(self) -> None:
        if self.accelerator.is_main_process:
            path = self.run_dir.sample_grid(self.step)
            save_sample_grid(self.ema_denoiser().unet, self.scheduler, self.data, self.config, path)
            self.tracker_images(path)
        self.accelerator.wait_for_everyone()

    def export(self) -> Path:
        if self.accelerator.is_main_process:
            info = ModelInfo(
                class_names=self.data.class_names,
                dataset=self.config.data.dataset,
                guidance=self.config.sample.guidance,
                extra={"method": self.config.objective.method, "step": self.step, "class_counts": self.data.counts(),
                       "imbalance": self.config.data.imbalance, "sample": self.config.to_dict()["sample"]},
            )
            ema = self.ema_denoiser()
            self.source.save(ema.unet, self.run_dir.model, self.scheduler, info)
            if ema.head is not None:
                save_head(self.run_dir.head, ema.head)
        self.accelerator.wait_for_everyone()
        return self.run_dir.model

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> Path:
        t = self.config.train
        acc = self.accelerator
        bar = None
        if self.progress and acc.is_main_process:
            from tqdm.auto import tqdm

            bar = tqdm(total=t.max_steps, initial=self.step, desc=f"train {self.config.objective.method}", dynamic_ncols=True)
        window: dict[str, torch.Tensor] = {}
        window_steps, window_start = 0, time.perf_counter()
        finite = torch.ones((), dtype=torch.bool, device=acc.device)
        with self._stop_on_signals():
            while self.step < t.max_steps:
                terms = self.train_step()
                finite &= torch.isfinite(terms["loss"])  # checked at log/checkpoint time: no per-step sync
                for k, v in terms.items():
                    window[k] = window.get(k, 0.0) + v
                window_steps += 1
                if bar is not None:
                    bar.update(1)
                stop = self._stop_agreed()
                boundary = {
                    "log": self.step % t.log_every == 0 or self.step == t.max_steps or stop,
                    "ckpt": self.step % t.checkpoint_every == 0 or self.step == t.max_steps or stop,
                    "sample": self.step % t.sample_every == 0,
                }
                if any(boundary.values()) and not bool(acc.reduce(finite.float(), "min")):
                    if bar is not None:
                        bar.close()
                    last = list_checkpoints(self.run_dir.checkpoints)
                    where = f"last good checkpoint: {last[-1][1]}" if last else "no checkpoint was written yet"
                    raise TrainingDiverged(
                        f"the loss became NaN/inf by step {self.step}; {where}. Lower train.lr or check the data"
                    )
                if boundary["log"]:
                    elapsed = time.perf_counter() - window_start
                    record = {k: float(acc.reduce(v, "mean")) / window_steps for k, v in window.items()}
                    record.update(step=self.step, lr=self.lr_schedule.get_last_lr()[0], steps_per_sec=window_steps / elapsed)
                    self._log(record)
                    if bar is not None:
                        bar.set_postfix(loss=f"{record['loss']:.4f}")
                    window, window_steps, window_start = {}, 0, time.perf_counter()
                if boundary["ckpt"]:
                    self.save_checkpoint()
                if stop:
                    if bar is not None:
                        bar.close()
                    raise TrainingStopped(
                        f"stopped at step {self.step}: checkpoint written to {self.run_dir.checkpoints}; "
                        "run the same command with --resume to continue"
                    )
                if boundary["sample"]:
                    self.write_samples()
        if bar is not None:
            bar.close()
        return self.export()

    @contextlib.contextmanager
    def _stop_on_signals(self):
        """SIGTERM / first Ctrl-C: finish the step, checkpoint, stop. A second Ctrl-C interrupts at once."""
        import threading

        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def request(signum, frame):
            if self._stop_requested and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self._stop_requested = True

        previous = {s: signal.signal(s, request) for s in STOP_SIGNALS}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _stop_agreed(self) -> bool:
        """Every process must stop at the same step (a checkpoint is a collective)."""
        if self.accelerator.num_processes == 1:
            return self._stop_requested
        if self.step % STOP_CHECK_EVERY:
            return False
        flag = torch.tensor(float(self._stop_requested), device=self.accelerator.device)
        return bool(self.accelerator.reduce(flag, "max"))

    def _log(self, record: dict) -> None:
        if self.accelerator.is_main_process:
            with open(self.run_dir.metrics, "a") as f:
                f.write(json.dumps(record) + "\n")
        if self.config.train.report_to != "none":
            self.accelerator.log({k: v for k, v in record.items() if k != "step"}, step=self.step)

    def tracker_images(self, path: Path) -> None:
        if self.config.train.report_to == "none":
            return
        import numpy as np
        from PIL import Image

        image = np.asarray(Image.open(path).convert("RGB"))  # (H, W, 3)
        for tracker in self.accelerator.trackers:
            if tracker.name == "tensorboard":
                tracker.log_images({"samples": image[None]}, step=self.step, dataformats="NHWC")
            elif hasattr(tracker, "log_images"):
                tracker.log_images({"samples": [image]}, step=self.step)


def _add(totals: dict, terms: dict, weight: float) -> None:
    for k, v in terms.items():
        totals[k] = totals.get(k, 0.0) + v.detach().float() * weight


def _ema_key(name: str) -> str:
    return name.removeprefix("unet.")


def _check_resume_config(config: RunConfig, run: RunDir) -> None:
    saved = load_config(run.config).to_dict()
    now = config.to_dict()
    changed = [s for s in FROZEN_SECTIONS if saved.get(s) != now.get(s)]
    if changed:
        raise UserError(
            f"--resume: the [{', '.join(changed)}] settings differ from those saved in {run.config}; "
            "only [train] and [sample] may change when resuming"
        )


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop logged lines after `step` (written before an interruption): each step is kept once."""
    if not path.is_file():
        return
    lines = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in lines))


def train(
    config: RunConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    source: UNetSource | None = None,
    progress: bool = True,
    data: LabeledImages | None = None,
) -> Path:
    """Train (or fine-tune, with a source) and return the run's exported model folder.

    `out_dir` receives `config.toml`, `checkpoints/`, `metrics.jsonl`, `samples/`, `model/` and
    `head/` (coral_ft.checkpoint.layout). With `resume`, training continues from the newest
    complete checkpoint; a run without one (missing, or stopped before its first checkpoint)
    starts from the beginning, which is what a cluster's requeue needs. `data` trains on images
    already in memory instead of reading `config.data`.
    """
    run = RunDir(out_dir)
    if run.root.exists() and not run.root.is_dir():
        raise UserError(f"--out {run.root} is a file; give a folder for the run")
    existing = list_checkpoints(run.checkpoints)
    if resume and not existing:
        print(f"--resume: no checkpoint in {run.checkpoints} yet; starting the run from step 0", file=sys.stderr)
        resume = False
        if run.metrics.exists():
            run.metrics.unlink()  # the lines of a start that died before its first checkpoint
    elif not resume and (existing or run.metrics.exists()):
        raise UserError(f"{run.root} already holds a run; pass --resume to continue it or choose another --out")
    if resume:
        _check_resume_config(config, run)
    trainer = Trainer(config, run.root, source, progress, data)
    if trainer.accelerator.is_main_process:
        run.root.mkdir(parents=True, exist_ok=True)
        save_config(config, run.config)
    if resume:
        trainer.load_checkpoint(existing[-1][1])
        if trainer.accelerator.is_main_process:
            _truncate_metrics(run.metrics, trainer.step)
        if trainer.step >= config.train.max_steps:
            return trainer.export()
    with start_tracking(trainer.accelerator, config, run):
        return trainer.run()


__all__ = ["train", "Trainer", "TrainingDiverged", "TrainingStopped", "warmup_factor"]

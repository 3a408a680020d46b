"""`FinetuneSource`: the trainer's U-Net comes from a pretrained base (full or LoRA fine-tuning).

`build` checks the base against the data and the run before the first step, gives an
unconditional base a zero-initialised class embedding, and with LoRA trains adapters on frozen
weights. `save` writes a plain diffusers folder (full) or adapters + a reference to the base
(LoRA): `coral_ft.checkpoint.model` has the layout.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from coral_ft.checkpoint.model import ModelInfo, save_model, write_finetune_meta, write_info
from coral_ft.errors import ConfigError, UserError
from coral_ft.files import respect_umask
from coral_ft.finetune.bases import base_scheduler_config, check_base_fits, check_base_schedule
from coral_ft.models.class_embedding import ensure_class_embedding
from coral_ft.models.context import inner_unet, make_context, needs_context, save_context, wrap_with_context
from coral_ft.models.convert_peer import convert_peer_checkpoint, pick_weights, read_checkpoint
from coral_ft.models.lora import attach_lora, is_lora, lora_config, weights_fingerprint
from coral_ft.models.schedule import make_scheduler, scheduler_for
from coral_ft.models.unets import HUB_ID, load_unet, resolve_unet_folder
from coral_ft.sample.card import write_model_card

BASE_FORMS = ("a diffusers U-Net folder, a coral-ft run directory, a pipeline folder with unet/, "
              "a hub ID in the local Hugging Face cache, or a peers' ckpt_*.pt (converted on the fly)")


class FinetuneSource:
    """A `UNetSource` (coral_ft.train.source) for `coral-ft finetune`."""

    from_scratch = False  # e.g. CBDM then draws its target labels uniformly

    def __init__(self, settings, cache_dir: str | Path | None = None):
        self.settings = settings  # a FinetuneConfig
        self.cache_dir = cache_dir  # Hugging Face cache; None: the default
        self.base_folder: Path | None = None  # a diffusers U-Net folder, or
        self.peer_checkpoint: Path | None = None  # a peers' ckpt_*.pt, converted when loaded
        self.added_class_embedding = False
        self.base_fingerprint: str | None = None  # sha256 of the base's weights (LoRA runs)

    def locate(self) -> None:
        """Find the base (no weights read yet); every unusable form is a one-line error."""
        spec = self.settings.base
        if not spec:
            raise ConfigError(f"finetune.base is not set: pass --base with {BASE_FORMS}")
        path = Path(spec).expanduser()
        if path.is_file():  # a peers' ckpt_*.pt: recognised by its keys now, converted when loaded
            try:
                pick_weights(read_checkpoint(path), "ema", path)
            except UserError as exc:
                raise UserError(f"base {path}: {exc}. --base takes {BASE_FORMS}") from None
            self.peer_checkpoint = path
            return
        try:
            self.base_folder = resolve_unet_folder(spec, self.cache_dir)
        except UserError as exc:
            raise UserError(f"{exc}. --base takes {BASE_FORMS}") from None

    def load_base(self) -> nn.Module:
        if self.base_folder is None and self.peer_checkpoint is None:
            self.locate()
        if self.peer_checkpoint is not None:
            try:
                unet, _, self.peer_layout = convert_peer_checkpoint(self.peer_checkpoint, "ema")
            except UserError as exc:
                raise UserError(f"base {self.peer_checkpoint}: {exc}. --base takes {BASE_FORMS}") from None
            return unet
        return load_unet(self.base_folder)

    def build(self, data, config) -> nn.Module:
        s = self.settings
        unet = self.load_base()
        where = str(self.peer_checkpoint or self.base_folder)
        check_base_fits(unet, data.image_size, data.channels, data.num_classes, where)
        if config is not None and self.base_folder is not None:
            check_base_schedule(self.base_folder, config.model)
        if s.context is not None and not needs_context(unet):
            raise ConfigError("finetune.context is set but the base has no cross-attention (it is a UNet2DModel)")
        peft_cfg = lora_config(s.rank, s.alpha, s.targets) if s.lora else None
        if peft_cfg is not None:  # adapters are only ever loaded back onto these weights
            self.base_fingerprint = weights_fingerprint(unet)
        self.added_class_embedding = ensure_class_embedding(unet, data.num_classes)
        if peft_cfg is not None:
            unet = attach_lora(unet, peft_cfg, self.base_name())  # checks every target before injecting
        else:
            unet.requires_grad_(True)
        if needs_context(unet):
            unet = wrap_with_context(unet, make_context(unet, s.context, s.context_length))
        return unet

    def scheduler(self, config):
        """The base's own DDPM scheduler when it ships one (checked against the run in `build`),
        else the run's: fine-tuning continues the forward process the base was trained on."""
        if self.peer_checkpoint is not None:  # the peers' schedule: T steps, linear betas 1e-4 .. 0.02
            return make_scheduler(self.peer_layout.num_timesteps)
        saved = base_scheduler_config(self.base_folder) if self.base_folder is not None else None
        if saved is None:
            return scheduler_for(config.model)
        from diffusers import DDPMScheduler

        return DDPMScheduler.from_config(saved)

    def base_name(self) -> str:
        """How adapter_config.json names the base: a hub ID as given, else the absolute path."""
        spec = self.settings.base
        local = self.peer_checkpoint or self.base_folder
        return spec if HUB_ID.match(spec) and not Path(spec).exists() else str(local.resolve())

    def meta(self, unet: nn.Module) -> dict:
        core = inner_unet(unet)
        return {
            "kind": "lora" if self.settings.lora else "full",
            "unet_class": type(core.get_base_model() if is_lora(core) else core).__name__,
            "base": str((self.peer_checkpoint or self.base_folder).resolve()),
            "base_spec": self.settings.base,
            "base_fingerprint": self.base_fingerprint,
            "added_class_embedding": self.added_class_embedding,
        }

    def save(self, unet: nn.Module, folder: Path, scheduler, info: ModelInfo) -> None:
        folder = Path(folder)
        core = inner_unet(unet)
        meta = self.meta(unet)
        info.extra = {**info.extra, "finetune": meta}
        if self.settings.lora:
            folder.mkdir(parents=True, exist_ok=True)
            core.save_config(folder)  # the architecture; the frozen base weights stay where they are
            core.save_pretrained(folder)  # peft's adapter_config.json + adapter_model.safetensors
            scheduler.save_pretrained(folder)
            write_info(folder, info)
        else:
            save_model(folder, core, scheduler, info)
        save_context(folder, unet)
        write_finetune_meta(folder, meta)
        write_model_card(folder, info)
        respect_umask(folder)  # adapter_model.safetensors, context.safetensors

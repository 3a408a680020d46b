"""LoRA adapters on a diffusers U-Net through peft, in peft's own format.

The U-Net is wrapped with `get_peft_model`: each targeted Linear/Conv2d layer W becomes
W + (alpha / r) * B A with B = 0 at the start (a fresh adapter leaves the base's predictions
unchanged), the rest of the base is frozen, and the class embedding (new or the base's) trains
in full as a `modules_to_save` module. The head lives outside the U-Net, in the Denoiser.

The saved folder is what `PeftModel.save_pretrained` writes (adapter_config.json with
`base_model_name_or_path`, adapter_model.safetensors with the class embedding in it), so

    base = UNet2DModel.from_pretrained(BASE)   # a base without classes: num_class_embeds=C + 1,
                                               #   low_cpu_mem_usage=False
    model = PeftModel.from_pretrained(base, RUN / "model")
    merged = model.merge_and_unload()          # what `coral-ft export --merge` writes

works without coral-ft. A fingerprint of the base's weights is kept beside the adapters, so
adapters are never silently put on another base.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.utils import load_peft_weights, set_peft_model_state_dict
from torch import nn

from coral_ft.errors import ConfigError, UserError

# Module-name suffixes (peft's list semantics: a name equal to the target or ending in
# ".target"): attention projections, ResNet convolutions and the time-embedding projections.
DEFAULT_TARGETS = (
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
    "conv1",
    "conv2",
    "time_emb_proj",
    "time_embedding.linear_1",
    "time_embedding.linear_2",
)
FULLY_TRAINED = ["class_embedding"]  # full-rank even under LoRA: it is new or label-specific


def _matches(name: str, target: str) -> bool:
    return name == target or name.endswith("." + target)


def check_targets(unet: nn.Module, targets: list[str]) -> None:
    """Every target must name at least one Linear or Conv2d layer (peft would skip it silently)."""
    layers = [n for n, m in unet.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    for target in targets:
        if not any(_matches(n, target) for n in layers):
            names = sorted({last for last in (n.rsplit(".", 1)[-1] for n in layers) if not last.isdigit()})
            examples = ", ".join(names[:8])
            raise ConfigError(
                f"LoRA target {target!r} matches no Linear/Conv2d layer of the base (targets are module-name suffixes, e.g. {examples})"
            )


def weights_fingerprint(module: nn.Module) -> str:
    """sha256 over parameter and buffer names and bytes: the identity of a set of weights."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def lora_config(rank: int, alpha: float, targets: list[str] | tuple[str, ...] = ()) -> LoraConfig:
    return LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(targets or DEFAULT_TARGETS), lora_dropout=0.0,
                      init_lora_weights=True, modules_to_save=list(FULLY_TRAINED))


def attach_lora(unet: nn.Module, config: LoraConfig, base_name: str) -> PeftModel:
    """Wrap `unet` with fresh adapters; afterwards only adapters and the class embedding train."""
    check_targets(unet, sorted(config.target_modules))
    model = get_peft_model(unet, config)
    model.peft_config["default"].base_model_name_or_path = base_name  # peft reads it from transformers' models
    return model


def is_lora(unet: nn.Module) -> bool:
    return isinstance(unet, PeftModel)


def load_lora(folder: Path, base: nn.Module) -> PeftModel:
    """The adapters saved in `folder` on a freshly loaded base (unmerged, in eval mode)."""
    try:
        config = LoraConfig.from_pretrained(folder)
        weights = load_peft_weights(str(folder), device="cpu")
    except Exception as exc:
        raise UserError(f"cannot read the LoRA adapter in {folder}: {str(exc).splitlines()[0]}") from None
    check_targets(base, sorted(config.target_modules))
    model = PeftModel(base, config)
    result = set_peft_model_state_dict(model, weights)
    unexpected = getattr(result, "unexpected_keys", None) or []
    if unexpected:  # peft itself only warns, and leaves the base unchanged
        raise UserError(f"the adapter in {folder} does not fit its base (unexpected {unexpected[:2]})")
    return model.eval()


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)

"""LoRA adapters on a diffusers U-Net through peft: attach, freeze, save, load, merge.

`UNet2DModel` lacks diffusers' adapter mixin, so adapters go in with peft's
`inject_adapter_in_model`, which works on any `nn.Module` and supports Linear and Conv2d
layers. Each targeted layer W gets W + (alpha / r) * B A with B = 0 at the start, so a fresh
adapter leaves the base's predictions unchanged. Only the adapters, the class embedding (new or
the base's) and the CORAL head train; the head lives outside the U-Net, in the Denoiser.
"""

from __future__ import annotations

from pathlib import Path

from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model, set_peft_model_state_dict
from peft.tuners.lora import LoraLayer
from safetensors.torch import load_file, save_file
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
ALWAYS_TRAINED = ("class_embedding",)  # full-rank even under LoRA: it is new or label-specific
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
TRAINED_WEIGHTS = "trained_modules.safetensors"  # ALWAYS_TRAINED modules, saved in full


def _matches(name: str, target: str) -> bool:
    return name == target or name.endswith("." + target)


def check_targets(unet: nn.Module, targets: list[str]) -> None:
    """Every target must name at least one Linear or Conv2d layer (peft would skip it silently)."""
    layers = [n for n, m in unet.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    for target in targets:
        if not any(_matches(n, target) for n in layers):
            examples = ", ".join(sorted({n.rsplit(".", 1)[-1] for n in layers})[:8])
            raise ConfigError(
                f"LoRA target {target!r} matches no Linear/Conv2d layer of the base (targets are module-name suffixes, e.g. {examples})"
            )


def lora_config(rank: int, alpha: float, targets: list[str] | tuple[str, ...] = ()) -> LoraConfig:
    return LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(targets or DEFAULT_TARGETS), lora_dropout=0.0, init_lora_weights=True)


def attach_lora(unet: nn.Module, config: LoraConfig) -> nn.Module:
    """Inject adapters in place; afterwards only adapters and ALWAYS_TRAINED modules train."""
    check_targets(unet, sorted(config.target_modules))
    unet = inject_adapter_in_model(config, unet)
    for name, p in unet.named_parameters():
        p.requires_grad_(".lora_" in name or any(name.startswith(m + ".") for m in ALWAYS_TRAINED))
    return unet


def has_lora(unet: nn.Module) -> bool:
    return any(isinstance(m, LoraLayer) for m in unet.modules())


def save_lora(folder: Path, unet: nn.Module) -> None:
    """adapter_config.json + adapter_model.safetensors (peft's names) + the full-rank modules."""
    folder.mkdir(parents=True, exist_ok=True)
    unet.peft_config["default"].save_pretrained(folder)
    save_file({k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(unet).items()}, folder / ADAPTER_WEIGHTS)
    extra = {n: p for n, p in unet.named_parameters() if any(n.startswith(m + ".") for m in ALWAYS_TRAINED)}
    save_file({k: v.detach().cpu().contiguous() for k, v in extra.items()}, folder / TRAINED_WEIGHTS)


def load_lora(folder: Path, unet: nn.Module) -> nn.Module:
    """Attach the adapters saved in `folder` to a freshly loaded base (unmerged)."""
    try:
        config = LoraConfig.from_pretrained(folder)
        adapter = load_file(folder / ADAPTER_WEIGHTS)
        extra = load_file(folder / TRAINED_WEIGHTS)
    except Exception as exc:
        raise UserError(f"cannot read the LoRA adapter in {folder}: {str(exc).splitlines()[0]}") from None
    unet = attach_lora(unet, config)
    result = set_peft_model_state_dict(unet, adapter)
    if getattr(result, "unexpected_keys", None):
        raise UserError(f"the adapter in {folder} does not fit its base (unexpected {result.unexpected_keys[:2]})")
    unexpected = unet.load_state_dict(extra, strict=False).unexpected_keys
    if unexpected:
        raise UserError(f"the adapter in {folder} does not fit its base (unexpected {unexpected[:2]})")
    return unet


def merge_lora(unet: nn.Module) -> nn.Module:
    """Fold every adapter into its base weight, W <- W + (alpha/r) B A, and drop the peft layers."""
    for name, module in list(unet.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent, _, child = name.rpartition(".")
            setattr(unet.get_submodule(parent) if parent else unet, child, module.get_base_layer())
    if hasattr(unet, "peft_config"):
        del unet.peft_config
    return unet


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)

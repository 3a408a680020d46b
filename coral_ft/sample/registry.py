"""The samplers by name: which diffusers scheduler each one is, its default step count and options.

Light on purpose (no torch, no diffusers): the CLI reads it for its help and completion. The
scheduler class is looked up in diffusers when a sampler is used (coral_ft.sample.samplers).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SamplerSpec:
    scheduler: str  # the diffusers scheduler class
    default_steps: int | None  # None: every training timestep
    options: dict = field(default_factory=dict)  # from_config keyword arguments
    description: str = ""

    @property
    def scheduler_cls(self) -> type:
        import diffusers

        return getattr(diffusers, self.scheduler)


SAMPLERS: dict[str, SamplerSpec] = {
    "ddpm": SamplerSpec("DDPMScheduler", None, description="ancestral, every training timestep (the peers' sampler)"),
    "ddim": SamplerSpec("DDIMScheduler", 100, {"set_alpha_to_one": False}, "DDIM, 100 steps (eta 0: deterministic)"),
    "dpm++": SamplerSpec("DPMSolverMultistepScheduler", 20, {"algorithm_type": "dpmsolver++", "solver_order": 2},
                         "DPM-Solver++(2M), 20 steps"),
    "unipc": SamplerSpec("UniPCMultistepScheduler", 20, description="UniPC, 20 steps"),
    "euler": SamplerSpec("EulerDiscreteScheduler", 50, description="Euler, 50 steps"),
}


def sampler_help() -> str:
    """One line for --help: every sampler with its default steps."""
    return "; ".join(f"{name}: {spec.description}" for name, spec in SAMPLERS.items())

"""coral-ft: CORAL (contrastive bottleneck regularisation) for long-tailed diffusion models.

The data path, one package each:
data -> models (denoiser) -> objectives -> train (+ checkpoint) -> sample -> metrics.
"""

__version__ = "0.1.0"

"""Latent-space analysis: bottleneck features of real images, entanglement scores, 2-D maps."""

from coral_ft.latents.analyse import analyse_latents
from coral_ft.latents.extract import extract_features, load_latent_model
from coral_ft.latents.scores import EntanglementScores, entanglement_scores, head_tail_classes

__all__ = [
    "analyse_latents",
    "extract_features",
    "load_latent_model",
    "EntanglementScores",
    "entanglement_scores",
    "head_tail_classes",
]

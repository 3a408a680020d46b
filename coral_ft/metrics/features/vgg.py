"""VGG16 fc2 features (4096-d), the network of the original improved precision/recall metric.

torchvision's ImageNet state dict is loaded into `torchvision.models.vgg16(weights=None)`, so
nothing is ever downloaded. fc2 is taken after its ReLU, as in the Keras VGG16 that the original
metric used. Images: PIL bicubic resize to 224 x 224, then ImageNet mean/std normalisation.
"""

from __future__ import annotations

import torch
import torchvision

from coral_ft.errors import UserError
from coral_ft.metrics.features.base import BatchedNetwork
from coral_ft.metrics.features.resize import pil_bicubic
from coral_ft.metrics.features.weights import WeightsFile, find_vgg16

VGG_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FC2_END = 5  # classifier = [fc1, ReLU, Dropout, fc2, ReLU, Dropout, fc3]: keep through fc2's ReLU


class VGG16Extractor(BatchedNetwork):
    name = "vgg16/fc2"
    has_logits = False
    logits_unavailable_reason = "VGG16 fc2 features are not Inception logits"

    def __init__(self, weights: WeightsFile, device="cpu", batch_size: int = 64):
        super().__init__(pil_bicubic(VGG_SIZE), device, batch_size)
        net = torchvision.models.vgg16(weights=None)
        try:
            net.load_state_dict(torch.load(weights.path, map_location="cpu", weights_only=True))
        except Exception as exc:
            raise UserError(f"cannot load VGG16 weights {weights.path}: {exc}") from None
        net.classifier = net.classifier[:FC2_END]
        self.net = net.eval().to(self.device)
        self.weights_sha1 = weights.sha1
        self.mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

    def prepare(self, batch: torch.Tensor) -> torch.Tensor:
        return (batch / 255.0 - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, 4096)


def load_vgg16(weights_dir=None, device="cpu", batch_size: int = 64) -> VGG16Extractor:
    return VGG16Extractor(find_vgg16(weights_dir), device, batch_size)

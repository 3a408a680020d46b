"""CoralPipeline: the diffusers pipeline with class labels and guidance, on a tiny saved model."""

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler
from PIL import Image

from coral_ft.config import SampleConfig
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
    with pytest.raises(ValueError, match=message):
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


def test_diffusion_pipeline_from_pretrained_finds_the_class(pipe, tmp_path):
    from diffusers import DiffusionPipeline

    pipe.save_pretrained(tmp_path / "pipe")
    assert (tmp_path / "pipe" / "pipeline.py").is_file()
    loaded = DiffusionPipeline.from_pretrained(tmp_path / "pipe", trust_remote_code=True)  # diffusers' rule for folder code
    assert type(loaded).__name__ == "CoralPipeline" and loaded.class_names == [f"class{i}" for i in range(10)]
    a = pipe(["class3"], guidance=0.5, num_inference_steps=3, seed=2, output_type="pt").images
    b = loaded(["class3"], guidance=0.5, num_inference_steps=3, seed=2, output_type="pt").images
    assert torch.allclose(a, b)


def test_guidance_scale_is_one_plus_w(pipe):
    a = pipe([1, 2], guidance=0.7, num_inference_steps=3, seed=4, output_type="pt").images
    b = pipe([1, 2], guidance_scale=1.7, num_inference_steps=3, seed=4, output_type="pt").images
    assert torch.allclose(a, b)
    with pytest.raises(ValueError, match="not both"):
        pipe([1], guidance=0.5, guidance_scale=1.5)
    with pytest.raises(ValueError, match="guidance_scale >= 1"):
        pipe([1], guidance_scale=0.5)


def test_callback_on_step_end_sees_and_can_replace_the_latents(pipe):
    seen = []

    def zero_at_the_end(p, i, t, tensors):
        seen.append((i, int(t), tensors["latents"].shape))
        return {"latents": torch.zeros_like(tensors["latents"])} if i == 2 else None

    out = pipe([0, 1], num_inference_steps=3, seed=0, output_type="pt", callback_on_step_end=zero_at_the_end).images
    assert [s[0] for s in seen] == [0, 1, 2] and seen[0][2] == (2, 1, 16, 16)
    assert torch.allclose(out, torch.full_like(out, 0.5))  # x = 0 in [-1, 1] is 0.5 in [0, 1]


def test_the_progress_bar_counts_the_steps(pipe, capsys):
    pipe.set_progress_bar_config(disable=False)
    pipe([0], num_inference_steps=3, seed=0, output_type="pt")
    assert "3/3" in capsys.readouterr().err


@pytest.mark.parametrize("family", ["DDPMScheduler", "DDIMScheduler", "DPMSolverMultistepScheduler",
                                    "UniPCMultistepScheduler", "EulerDiscreteScheduler"])
def test_every_scheduler_family_samples_like_the_cli(pipe, tiny_model_dir, tmp_path, family):
    import diffusers

    from coral_ft.config import SampleConfig
    from coral_ft.sample.samplers import SAMPLERS

    name = next(n for n, s in SAMPLERS.items() if s.scheduler_cls.__name__ == family)
    pipe.scheduler = getattr(diffusers, family).from_config(pipe.scheduler.config, **SAMPLERS[name].options)
    steps = None if name == "ddpm" else 4
    images = pipe([0, 1, 2], guidance=0.5, num_inference_steps=steps, seed=5, output_type="np").images
    settings = SampleConfig(guidance=0.5, sampler=name, steps=steps, labels="balanced", seed=5)
    npz = np.load(sample_to_npz(tiny_model_dir, tmp_path / "s.npz", 3, settings))
    assert np.abs(np.round(images * 255) - npz["images"]).max() <= 1


def test_export_as_pipeline_carries_a_model_card(tiny_model_dir, tmp_path):
    from diffusers import DiffusionPipeline

    from coral_ft.finetune.export import export_model

    export_model(tiny_model_dir, tmp_path / "pipe", pipeline=True)
    card = (tmp_path / "pipe" / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: diffusers") and "trust_remote_code=True" in card
    loaded = DiffusionPipeline.from_pretrained(tmp_path / "pipe", trust_remote_code=True)
    assert loaded([1], num_inference_steps=2, seed=0, output_type="pt").images.shape == (1, 1, 16, 16)


def test_push_to_hub_offline_is_a_clear_error(tiny_model_dir, tmp_path, monkeypatch):
    from coral_ft.finetune.export import export_model, push_folder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = export_model(tiny_model_dir, tmp_path / "m")
    with pytest.raises(ValueError, match="cannot upload .* the folder is written"):
        push_folder(folder, "someone/coral-test")


NO_CORAL_FT = """
import sys, importlib.abc

class Block(importlib.abc.MetaPathFinder):  # an environment where coral-ft is not installed
    def find_spec(self, name, path, target=None):
        if name == "coral_ft" or name.startswith("coral_ft."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, Block())
from diffusers import DiffusionPipeline
pipe = DiffusionPipeline.from_pretrained(sys.argv[1], trust_remote_code=True)
out = pipe(class_labels=[0, 3], guidance=1.0, num_inference_steps=3, seed=0, output_type="np").images
assert out.shape == (2, 16, 16, 1), out.shape
assert not any(m == "coral_ft" or m.startswith("coral_ft.") for m in sys.modules)
print("ok", type(pipe).__name__)
"""


def test_an_exported_pipeline_folder_loads_and_samples_without_coral_ft(tiny_model_dir, tmp_path, capsys):
    import subprocess
    import sys

    from coral_ft.finetune.export import export_model

    folder = export_model(tiny_model_dir, tmp_path / "pipe", pipeline=True)
    assert "coral_ft" not in "".join(line for line in (folder / "pipeline.py").read_text().splitlines()
                                     if line.startswith(("import", "from")))
    done = subprocess.run([sys.executable, "-c", NO_CORAL_FT, str(folder)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "ok CoralPipeline" in done.stdout, done.stderr[-2000:]
    assert "might require" not in done.stderr and "coral_ft" not in done.stderr  # diffusers' scan of pipeline.py's imports
    # coral-ft samples the folder too (this test model records no W: one is given)
    from tests.conftest import run_cli

    assert (folder / "unet" / "coral_ft.json").is_file()  # the run's class names and sampling settings
    code, out, err = run_cli(["sample", "--model", folder, "--num", "4", "--out", tmp_path / "s.npz", "--sampler", "ddim",
                              "--steps", "2", "--guidance", "0.5", "--no-progress"], capsys)
    assert code == 0, err
    with np.load(tmp_path / "s.npz") as f:
        assert f["images"].shape == (4, 16, 16, 1)


def test_batch_size_samples_the_classes_in_turn(pipe):
    out = pipe(batch_size=3, num_inference_steps=2, seed=0, output_type="pt").images
    assert out.shape == (3, 1, 16, 16)
    same = pipe(class_labels=[0, 1, 2], num_inference_steps=2, seed=0, output_type="pt").images
    assert torch.equal(out, same)


def test_pipeline_and_cli_derive_noise_seeds_alike():
    from coral_ft.data.batches import derived_seed
    from coral_ft.sample.pipeline import NOISE_STREAM

    assert sample_seeds(7, [0, 5, 99]) == [derived_seed(7, NOISE_STREAM, i) for i in (0, 5, 99)]


def test_an_unconditional_model_samples_batch_size_images_and_refuses_labels():
    from coral_ft.models.presets import build_unet

    torch.manual_seed(0)
    uncond = CoralPipeline(build_unet("tiny", 16, 1, None), DDIMScheduler(num_train_timesteps=50))
    out = uncond(batch_size=2, num_inference_steps=2, seed=0, output_type="pt").images
    assert out.shape == (2, 1, 16, 16) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="no class embedding"):
        uncond(class_labels=[0], num_inference_steps=2)


@pytest.mark.parametrize("pipeline", [True, False], ids=["pipeline-folder", "model-folder"])
@pytest.mark.parametrize("sampler, steps, family, taken", [
    ("dpm++", 10, "DPMSolverMultistepScheduler", 10),
    ("ddpm", None, "DDPMScheduler", 20),  # every timestep of the tiny model's 20
    ("ddim", None, "DDIMScheduler", None),  # the sampler's own default (100 steps): the table names it
])  # fmt: skip
def test_the_model_cards_snippet_runs_the_sampler_and_steps_its_table_names(tmp_path, sampler, steps, family, taken, pipeline):
    import re

    from coral_ft.checkpoint.model import ModelInfo, save_model
    from coral_ft.finetune.export import export_model
    from coral_ft.models.presets import build_unet
    from coral_ft.models.schedule import make_scheduler
    from coral_ft.sample.card import write_model_card
    from coral_ft.sample.registry import SAMPLERS

    torch.manual_seed(0)
    info = ModelInfo([f"class{i}" for i in range(10)], extra={"sample": {"sampler": sampler, "steps": steps, "guidance": 0.5}})
    model = save_model(tmp_path / "model", build_unet("tiny", 16, 1, 10), make_scheduler(20), info)
    if pipeline:
        folder = export_model(model, tmp_path / "pipe", pipeline=True)
    else:
        folder = model
        write_model_card(model, info)
    card = (folder / "README.md").read_text()
    stated = steps or SAMPLERS[sampler].default_steps or "every timestep"
    assert f"| sampler | {sampler} |" in card and f"| sampler steps | {stated} |" in card
    snippet = re.search(r"```python\n(.*?)```", card, re.S).group(1).replace("PATH", str(folder))
    if taken is None:  # more steps than this tiny model has timesteps: check what the snippet asks for
        assert f"{family}.from_config" in snippet and f"num_inference_steps={stated}" in snippet
        return
    scope = {}
    exec(compile(snippet, "README.md", "exec"), scope)  # noqa: S102 - the card's own code, as a reader runs it
    assert type(scope["pipe"].scheduler).__name__ == family and len(scope["pipe"].scheduler.timesteps) == taken
    assert len(scope["images"]) == 2

"""Samplers, guidance (paper eq. 4), per-sample seeds and label specs."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler
from torch import nn

from coral_ft.checkpoint.model import load_model
from coral_ft.config import SampleConfig
from coral_ft.errors import UserError
from coral_ft.models.schedule import make_scheduler
from coral_ft.sample.labels import make_labels, sample_seeds
from coral_ft.sample.pipeline import guided_eps
from coral_ft.sample.samplers import SAMPLERS, guided_eps_two_pass, sample

NAMES = [f"class{i}" for i in range(10)]
pytestmark = pytest.mark.usefixtures("one_thread")


def settings(sampler="ddim", steps=3, guidance=0.5, **kw) -> SampleConfig:
    return SampleConfig(sampler=sampler, steps=steps, guidance=guidance, **kw)


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    unet, scheduler, _ = load_model(tiny_model_dir)
    return unet, scheduler


def _plain_conditional(unet, x, t, labels, guidance, null):
    return unet(x, t, class_labels=labels).sample


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_same_seeds_same_samples_whatever_the_batch_split(model, sampler):
    unet, sched = model
    s = settings(sampler, steps=None if sampler == "ddpm" else 4)
    labels, seeds = torch.tensor([1, 2, 3]), sample_seeds(7, range(3))
    whole = sample(unet, sched, labels, seeds, s)
    again = sample(unet, sched, labels, seeds, s)
    split = torch.cat([sample(unet, sched, labels[:1], seeds[:1], s), sample(unet, sched, labels[1:], seeds[1:], s)])
    assert whole.shape == (3, 1, 16, 16) and whole.abs().max() <= 1
    assert torch.equal(whole, again)
    assert torch.allclose(whole, split, atol=1e-5)
    other = sample(unet, sched, labels, sample_seeds(8, range(3)), s)
    assert (whole - other).abs().max() > 0.1


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm++"])
def test_guidance_zero_is_the_plain_conditional_sampler(model, sampler):
    unet, sched = model
    labels, seeds = torch.tensor([0, 9]), [1, 2]
    guided = sample(unet, sched, labels, seeds, settings(sampler, guidance=0.0))
    plain = sample(unet, sched, labels, seeds, settings(sampler, guidance=0.0), eps_fn=_plain_conditional)
    assert torch.equal(guided, plain)
    assert (sample(unet, sched, labels, seeds, settings(sampler, guidance=2.0)) - plain).abs().max() > 1e-3


def test_doubled_batch_guidance_equals_two_separate_forwards(model):
    unet, sched = model
    torch.manual_seed(0)
    x, labels = torch.randn(4, 1, 16, 16), torch.tensor([0, 3, 3, 9])
    t = torch.tensor(500)
    for w in (0.0, 0.7, 3.0):
        assert torch.allclose(guided_eps(unet, x, t, labels, w, 10), guided_eps_two_pass(unet, x, t, labels, w, 10), atol=1e-5)
    # eq. 4 by hand
    cond, null = unet(x, t, class_labels=labels).sample, unet(x, t, class_labels=torch.full_like(labels, 10)).sample
    assert torch.allclose(guided_eps(unet, x, t, labels, 0.7, 10), 1.7 * cond - 0.7 * null, atol=1e-5)
    a = sample(unet, sched, labels, [0, 1, 2, 3], settings(guidance=0.7))
    b = sample(unet, sched, labels, [0, 1, 2, 3], settings(guidance=0.7), eps_fn=guided_eps_two_pass)
    assert torch.allclose(a, b, atol=1e-4)


def peers_ddpm_sampler(unet, betas: torch.Tensor, labels, seeds, guidance: float, null: int) -> torch.Tensor:
    """The peers' ancestral sampler, written from their description: the posterior mean from the
    UNCLIPPED x0 prediction, 'fixed large' variance [posterior_var[1], beta_1, ..., beta_{T-1}],
    no noise at the last step, the final image clamped. Float64 coefficients, as their code."""
    T = len(betas)
    betas = betas.double()
    abar = torch.cumprod(1 - betas, 0)
    abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    coef1 = betas * abar_prev.sqrt() / (1 - abar)  # posterior mean: coef1 * x0 + coef2 * x_t
    coef2 = (1 - abar_prev) * (1 - betas).sqrt() / (1 - abar)
    posterior_var = betas * (1 - abar_prev) / (1 - abar)
    var = torch.cat([posterior_var[1:2], betas[1:]])
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    x = torch.stack([torch.randn(1, 16, 16, generator=g) for g in gens])
    for t in reversed(range(T)):
        eps = guided_eps(unet, x.float(), torch.tensor(t), labels, guidance, null).double()
        x0 = (1 / abar[t]).sqrt() * x - (1 / abar[t] - 1).sqrt() * eps
        mean = coef1[t] * x0 + coef2[t] * x
        noise = torch.stack([torch.randn(1, 1, 16, 16, generator=g)[0] for g in gens]) if t > 0 else 0.0
        x = mean + var[t].sqrt() * noise
    return x.float().clamp(-1, 1)


def test_ddpm_sampler_is_the_peers_ancestral_sampler(model):
    unet, sched = model  # T = 20 keeps it cheap
    labels, seeds = torch.tensor([2, 7]), sample_seeds(3, range(2))
    ours = sample(unet, sched, labels, seeds, settings("ddpm", steps=None, guidance=1.5))
    theirs = peers_ddpm_sampler(unet, sched.betas, labels, seeds, 1.5, 10)
    assert torch.allclose(ours, theirs, atol=1e-4)


def test_clip_x0_is_diffusers_clip_sample_for_ddpm(model):
    unet, sched = model
    labels, seeds = torch.tensor([2, 7]), [5, 6]
    clipped = sample(unet, sched, labels, seeds, settings("ddpm", steps=None, guidance=3.0, clip_x0=True))
    unclipped = sample(unet, sched, labels, seeds, settings("ddpm", steps=None, guidance=3.0))
    # the same run with diffusers' own clipping
    ref = DDPMScheduler.from_config(sched.config, clip_sample=True)
    ref.set_timesteps(ref.config.num_train_timesteps)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    x = torch.stack([torch.randn(1, 16, 16, generator=g) for g in gens])
    with torch.no_grad():
        for t in ref.timesteps:
            x = ref.step(guided_eps(unet, x, t, labels, 3.0, 10), t, x, generator=gens).prev_sample
    assert torch.allclose(clipped, x.clamp(-1, 1), atol=1e-4)
    assert (clipped - unclipped).abs().max() > 1e-3  # the setting matters at a high guidance weight


class OracleUNet(nn.Module):
    """The exact noise predictor for data that is one image per class (x* = label / 10 everywhere):
    every correct sampler, whatever its family, must end on x*. Timesteps may be fractional
    (Euler): abar then follows the scheduler's interpolated sigmas."""

    def __init__(self, scheduler):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))  # samplers read the device and dtype from a parameter
        abar = scheduler.alphas_cumprod.double()
        self.sigmas = ((1 - abar) / abar).sqrt().numpy()
        self.config = SimpleNamespace(sample_size=4, in_channels=1, num_class_embeds=11)

    def forward(self, x, t, class_labels=None):
        t = np.broadcast_to(np.asarray(t.cpu(), dtype=np.float64), (len(x),))
        sigma = torch.as_tensor(np.interp(t, np.arange(len(self.sigmas)), self.sigmas), dtype=torch.float64)
        abar = (1 / (1 + sigma**2)).view(-1, 1, 1, 1)
        target = (class_labels.double() / 10).view(-1, 1, 1, 1).expand_as(x)
        eps = (x.double() - abar.sqrt() * target) / (1 - abar).sqrt()
        return SimpleNamespace(sample=eps.float())


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_every_sampler_family_is_right_with_the_exact_denoiser(sampler):
    sched = make_scheduler(1000)
    oracle = OracleUNet(sched)
    labels = torch.tensor([1, 5, 9])
    steps = None if sampler == "ddpm" else 30
    out = sample(oracle, sched, labels, [0, 1, 2], settings(sampler, steps=steps, guidance=0.0))
    expected = (labels.float() / 10).view(-1, 1, 1, 1).expand_as(out)
    # DDIM and DDPM stop at t = 0 (abar_0 = 1 - 1e-4), where noise of std 0.01 remains; a sampler
    # that skipped its input scaling (Euler) would be off by far more.
    assert torch.allclose(out, expected, atol=5e-2), (sampler, (out - expected).abs().max())


def test_sample_seeds_depend_on_run_seed_and_index_only():
    assert sample_seeds(3, [5, 6]) == sample_seeds(3, range(7))[5:]
    assert len(set(sample_seeds(3, range(1000)))) == 1000
    assert sample_seeds(3, [0]) != sample_seeds(4, [0])


def test_uniform_labels_are_a_function_of_the_seed_and_extend_with_n():
    a = make_labels("uniform", 5000, NAMES, seed=1)
    assert torch.equal(a[:300], make_labels("uniform", 300, NAMES, seed=1))
    assert not torch.equal(a[:300], make_labels("uniform", 300, NAMES, seed=2))
    counts = torch.bincount(a, minlength=10)
    assert counts.min() > 400 and counts.max() < 600  # uniform over the 10 classes


def test_balanced_and_listed_labels():
    assert torch.bincount(make_labels("balanced", 30, NAMES, 0)).tolist() == [3] * 10
    assert torch.bincount(make_labels("balanced", 12, NAMES, 0)).tolist() == [2, 2] + [1] * 8
    assert make_labels("class3, 7", 4, NAMES, 0).tolist() == [3, 7, 3, 7]


@pytest.mark.parametrize("spec,message", [
    ("0,,3", "bad label list"), ("", "bad label list"), ("10", "out of range"), ("-1", "out of range"),
    ("cat", "unknown class 'cat'"), ("1,1", "repeats"),
])  # fmt: skip
def test_bad_label_lists(spec, message):
    with pytest.raises(UserError, match=message):
        make_labels(spec, 4, NAMES, 0)

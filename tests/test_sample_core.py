"""Samplers, guidance (paper eq. 4), per-sample seeds and label specs."""

import pytest
import torch

from coral_ft.checkpoint.model import load_model
from coral_ft.errors import UserError
from coral_ft.sample.guidance import guided_eps, guided_eps_two_pass
from coral_ft.sample.labels import make_labels, sample_seeds
from coral_ft.sample.samplers import sample

NAMES = [f"class{i}" for i in range(10)]
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    unet, scheduler, _ = load_model(tiny_model_dir)
    return unet, scheduler


def _plain_conditional(unet, x, t, labels, guidance, null):
    return unet(x, t, class_labels=labels).sample


@pytest.mark.parametrize("sampler,steps", [("ddpm", None), ("ddim", 4)])
def test_same_seeds_same_samples_whatever_the_batch_split(model, sampler, steps):
    unet, sched = model
    labels, seeds = torch.tensor([1, 2, 3]), sample_seeds(7, range(3))
    whole = sample(unet, sched, labels, seeds, 0.5, sampler, steps or 1, eta=0.0)
    again = sample(unet, sched, labels, seeds, 0.5, sampler, steps or 1, eta=0.0)
    split = torch.cat([sample(unet, sched, labels[:1], seeds[:1], 0.5, sampler, steps or 1),
                       sample(unet, sched, labels[1:], seeds[1:], 0.5, sampler, steps or 1)])  # fmt: skip
    assert whole.shape == (3, 1, 16, 16) and whole.abs().max() <= 1
    assert torch.equal(whole, again)
    assert torch.allclose(whole, split, atol=1e-5)
    other = sample(unet, sched, labels, sample_seeds(8, range(3)), 0.5, sampler, steps or 1)
    assert (whole - other).abs().max() > 0.1


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_guidance_zero_is_the_plain_conditional_sampler(model, sampler):
    unet, sched = model
    labels, seeds = torch.tensor([0, 9]), [1, 2]
    guided = sample(unet, sched, labels, seeds, 0.0, sampler, 3)
    plain = sample(unet, sched, labels, seeds, 0.0, sampler, 3, eps_fn=_plain_conditional)
    assert torch.equal(guided, plain)
    assert (sample(unet, sched, labels, seeds, 2.0, sampler, 3) - plain).abs().max() > 1e-3


def test_doubled_batch_guidance_equals_two_separate_forwards(model):
    unet, _ = model
    torch.manual_seed(0)
    x, labels = torch.randn(4, 1, 16, 16), torch.tensor([0, 3, 3, 9])
    t = torch.tensor(500)
    for w in (0.0, 0.7, 3.0):
        assert torch.allclose(guided_eps(unet, x, t, labels, w, 10), guided_eps_two_pass(unet, x, t, labels, w, 10), atol=1e-5)
    # eq. 4 by hand
    cond, null = unet(x, t, class_labels=labels).sample, unet(x, t, class_labels=torch.full_like(labels, 10)).sample
    assert torch.allclose(guided_eps(unet, x, t, labels, 0.7, 10), 1.7 * cond - 0.7 * null, atol=1e-5)
    a = sample(unet, model[1], labels, [0, 1, 2, 3], 0.7, "ddim", 3)
    b = sample(unet, model[1], labels, [0, 1, 2, 3], 0.7, "ddim", 3, eps_fn=guided_eps_two_pass)
    assert torch.allclose(a, b, atol=1e-4)


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

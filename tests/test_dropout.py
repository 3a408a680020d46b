import pytest
import torch
from torch import nn

from coral_ft.models.denoiser import Denoiser, KeyedForward
from coral_ft.models.dropout import KeyedDropout, hash32, install_keyed_dropout, keep_mask, salted, sample_keys
from coral_ft.models.presets import build_unet


def test_hash_is_a_bijection_on_32_bits_of_a_sample():
    x = torch.arange(1 << 16, dtype=torch.int64) * 65521  # spread over the 32-bit range
    h = hash32(x)
    assert h.min() >= 0 and h.max() < 2**32
    assert h.unique().numel() == x.numel()


@pytest.mark.parametrize("p", [0.1, 0.3])
def test_masks_keep_one_minus_p_and_depend_only_on_the_keys(p):
    keys = sample_keys(7, 64)
    mask = keep_mask(keys, 0, torch.Size([8, 16, 16]), p)
    assert mask.float().mean().item() == pytest.approx(1 - p, abs=0.01)
    # a sample's mask is the same whatever batch it is computed in: rows of a split = the split's rows
    assert torch.equal(keep_mask(keys[10:20], 0, torch.Size([8, 16, 16]), p), mask[10:20])
    # other layers and other keys draw other masks
    assert not torch.equal(keep_mask(keys, 1, torch.Size([8, 16, 16]), p), mask)
    assert not torch.equal(keep_mask(salted(keys, 1), 0, torch.Size([8, 16, 16]), p), mask)
    # masks of different samples are not copies of each other
    assert (mask[0] != mask[1]).float().mean() > 0.5 * 2 * p * (1 - p)


def test_keys_are_distinct_per_sample_and_step():
    a, b = sample_keys(1, 128), sample_keys(2, 128)
    assert a.unique().numel() == 128 and not torch.equal(a, b)


def test_install_replaces_active_dropout_in_module_order():
    model = nn.Sequential(nn.Dropout(0.1), nn.Linear(3, 3), nn.Sequential(nn.Dropout(0.0), nn.Dropout(0.2)))
    source = install_keyed_dropout(model)
    keyed = [m for m in model.modules() if isinstance(m, KeyedDropout)]
    assert [(m.p, m.layer) for m in keyed] == [(0.1, 0), (0.2, 1)]
    assert isinstance(model[2][0], nn.Dropout)  # p = 0 stays as it is
    assert all(m.source is source for m in keyed)


def test_keyed_dropout_scales_and_falls_back_to_torch_without_keys():
    source = install_keyed_dropout(model := nn.Sequential(nn.Dropout(0.5)))
    x = torch.ones(4, 1000)
    source.keys = sample_keys(3, 4)
    y = model(x)
    assert set(y.unique().tolist()) == {0.0, 2.0}  # kept elements scaled by 1 / (1 - p)
    source.keys = None
    torch.manual_seed(0)
    assert set(model(x).unique().tolist()) == {0.0, 2.0}  # ordinary dropout
    model.eval()
    assert torch.equal(model(x), x)
    with pytest.raises(ValueError, match="keys for 3 samples"):
        model.train()
        source.keys = sample_keys(3, 3)
        model(x)


def test_denoiser_masks_follow_keys_and_passes():
    torch.manual_seed(0)
    denoiser = Denoiser(build_unet("tiny", 16, 1, 10, dropout=0.1)).train()
    x, t, y = torch.randn(4, 1, 16, 16), torch.tensor([1, 50, 500, 999]), torch.tensor([0, 3, 9, 10])
    keys = sample_keys(5, 4)
    forward = KeyedForward(denoiser, keys)
    first, second = forward(x, t, y).eps, forward(x, t, y).eps  # pass 0, pass 1: other masks
    assert not torch.allclose(first, second)
    assert torch.equal(KeyedForward(denoiser, keys)(x, t, y).eps, first)  # the same call again: the same masks
    # one sample alone gets the masks it had in the batch of four
    assert torch.allclose(KeyedForward(denoiser, keys[2:3])(x[2:3], t[2:3], y[2:3]).eps, first[2:3], atol=1e-5)
    assert denoiser._dropout.keys is None  # nothing is left behind for a later forward


def test_keyed_dropout_traces_into_one_graph():
    # torch.compile (the GPU recipes compile the denoiser) must not break its graph at the masks.
    torch.manual_seed(0)
    denoiser = Denoiser(build_unet("tiny", 16, 1, 10, dropout=0.1)).train()
    x, t, y = torch.randn(2, 1, 16, 16), torch.tensor([3, 700]), torch.tensor([1, 2])
    explained = torch._dynamo.explain(denoiser)(x, t, y, dropout_keys=sample_keys(1, 2))
    assert explained.graph_break_count == 0 and explained.graph_count == 1

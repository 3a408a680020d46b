import math

import pytest
import torch
from pytorch_metric_learning.losses import SupConLoss

from coral_ft.config import load_config
from coral_ft.models.denoiser import Denoiser, build_head
from coral_ft.models.schedule import ForwardProcess, make_scheduler
from coral_ft.objectives import ObjectiveContext, TrainBatch, build_objective, drop_labels
from coral_ft.objectives._supcon import supcon_per_anchor
from coral_ft.objectives.coral import time_weight


def test_time_weight_follows_eq7():
    t = torch.tensor([0, 499, 999])  # paper t = 1, 500, 1000
    lam = time_weight(t, 1000, weight=0.01, tau_r=0.8)
    expected = [0.01 * math.exp((1 - k / 1000) / 0.8) for k in (1, 500, 1000)]
    assert torch.allclose(lam, torch.tensor(expected), rtol=1e-6)
    assert lam[-1].item() == pytest.approx(0.01)  # at t = T the weight is w
    assert lam[0] > lam[1] > lam[2]  # emphasis on small t


@pytest.mark.parametrize("impl", ["fused", "pml"])
def test_per_anchor_supcon_with_equal_weights_equals_the_library_value(impl):
    torch.manual_seed(0)
    z = torch.randn(12, 8)  # unnormalised: both normalise (cosine similarity)
    y = torch.tensor([0, 0, 1, 1, 1, 2, 3, 3, 0, 2, 4, 1])  # class 4 has no positive
    per = supcon_per_anchor(z, y, 0.1, impl)
    valid = per != 0
    assert valid.sum() == 11
    reduced = SupConLoss(temperature=0.1)(z, y)
    assert torch.allclose(per[valid].mean(), reduced, atol=1e-5)


def test_fused_and_library_supcon_agree_per_anchor_and_in_gradient():
    torch.manual_seed(1)
    z1 = torch.randn(32, 16, requires_grad=True)
    z2 = z1.detach().clone().requires_grad_(True)
    y = torch.randint(0, 6, (32,))
    a, b = supcon_per_anchor(z1, y, 0.12, "fused"), supcon_per_anchor(z2, y, 0.12, "pml")
    assert torch.allclose(a, b, atol=1e-5)
    (a * torch.arange(32)).sum().backward()
    (b * torch.arange(32)).sum().backward()
    assert torch.allclose(z1.grad, z2.grad, atol=1e-5)


@pytest.mark.parametrize("impl", ["fused", "pml"])
def test_batch_without_positive_pairs_gives_zero_not_nan(impl):
    z = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    per = supcon_per_anchor(z, torch.arange(4), 0.1, impl)
    assert torch.equal(per, torch.zeros(4))


@pytest.mark.parametrize("mode", ["per-sample", "per-batch"])
def test_label_dropout_rate(mode):
    g = torch.Generator().manual_seed(0)
    labels = torch.zeros(256, dtype=torch.long)
    dropped = [(drop_labels(labels, 0.1, 10, mode, g) == 10).float() for _ in range(200)]
    rate = torch.stack(dropped).mean().item()
    assert rate == pytest.approx(0.1, abs=0.02)
    if mode == "per-batch":  # the whole batch goes at once
        assert all(d.min() == d.max() for d in dropped)
    else:
        assert any(0 < d.mean() < 1 for d in dropped)


def _coral_setup(lambda_mode="per-anchor", labels=None, regularise_dropped=True):
    cfg = load_config(None, {"objective.method": "coral", "objective.coral.lambda_mode": lambda_mode,
                             "objective.regularise_dropped": regularise_dropped})
    from coral_ft.models.presets import build_unet

    torch.manual_seed(0)
    unet = build_unet("tiny", 16, 1, 4)
    denoiser = Denoiser(unet, build_head(unet))
    schedule = ForwardProcess(make_scheduler())
    objective = build_objective(cfg.objective, ObjectiveContext(schedule, 4, 4, regularise_dropped=cfg.objective.regularise_dropped))
    g = torch.Generator().manual_seed(1)
    labels = torch.tensor([0, 0, 1, 1, 2, 3]) if labels is None else labels
    batch = TrainBatch(
        x0=torch.rand(len(labels), 1, 16, 16, generator=g) * 2 - 1,
        labels=labels,
        cond_labels=labels.clone(),
        t=torch.tensor([0, 100, 300, 500, 700, 999])[: len(labels)],
        noise=torch.randn(len(labels), 1, 16, 16, generator=g),
        generator=g,
    )
    return denoiser, objective, batch


def test_coral_loss_is_diffusion_plus_per_anchor_weighted_supcon():
    denoiser, objective, batch = _coral_setup()
    terms = objective.loss_terms(denoiser, batch)
    with torch.no_grad():
        out = denoiser(objective.noised(batch), batch.t, batch.cond_labels)
        per = supcon_per_anchor(out.embedding, batch.labels, 0.12)
        lam = time_weight(batch.t, 1000, 0.01, 0.8)
        expected = ((out.eps - batch.noise) ** 2).mean() + (lam * per).sum() / 4  # 4 anchors with positives
    assert torch.allclose(terms["loss"], expected, atol=1e-6)
    terms["loss"].backward()
    assert denoiser.head.proj.weight.grad.abs().sum() > 0  # the head trains
    assert denoiser.unet.mid_block.resnets[0].conv1.weight.grad.abs().sum() > 0


def test_coral_uses_true_labels_even_when_dropped():
    denoiser, objective, batch = _coral_setup()
    batch.cond_labels = torch.full_like(batch.labels, 4)  # every label dropped to null for guidance
    supcon = objective.loss_terms(denoiser, batch)["supcon"]
    with torch.no_grad():
        z = denoiser(objective.noised(batch), batch.t, batch.cond_labels).embedding
        with_true = supcon_per_anchor(z, batch.labels, 0.12).sum() / 4  # 4 anchors have a positive
        with_dropped = supcon_per_anchor(z, batch.cond_labels, 0.12).mean()  # all one "class"
    assert torch.allclose(supcon, with_true, atol=1e-6)
    assert not torch.allclose(supcon, with_dropped, atol=1e-3)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_supcon_stays_float32_under_autocast(dtype):
    _, objective, batch = _coral_setup()
    z = torch.nn.functional.normalize(torch.randn(6, 128, generator=torch.Generator().manual_seed(3)), dim=1)
    ref_in = z.clone().requires_grad_(True)
    ref, _ = objective.batch_term(ref_in, batch)
    ref.backward()
    amp_in = z.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=dtype):
        amp, terms = objective.batch_term(amp_in, batch)
    amp.backward()
    assert amp.dtype == torch.float32 and terms["supcon"].dtype == torch.float32
    assert torch.allclose(amp, ref, atol=1e-7) and torch.allclose(amp_in.grad, ref_in.grad, atol=1e-7)
    with torch.autocast("cpu", dtype=dtype):  # what the term would be if autocast reached it
        low = (z @ z.T)
    assert low.dtype == dtype


def test_batch_mean_mode_weights_as_the_official_code():
    denoiser, objective, batch = _coral_setup("batch-mean")
    terms = objective.loss_terms(denoiser, batch)
    lam = time_weight(batch.t, 1000, 0.01, 0.8)
    assert torch.allclose(terms["contrastive"], terms["supcon"] * lam.mean() * 0.12, atol=1e-7)
    batch.cond_labels = torch.full_like(batch.labels, 4)  # Algorithm 1: dropped labels still contrast
    assert objective.loss_terms(denoiser, batch)["contrastive"] > 0


@pytest.mark.parametrize("lambda_mode", ["per-anchor", "batch-mean"])
def test_supcon_sees_only_label_kept_samples_when_dropped_ones_are_not_regularised(lambda_mode):
    denoiser, objective, batch = _coral_setup(lambda_mode, regularise_dropped=False)
    batch.cond_labels = torch.tensor([0, 4, 1, 1, 4, 3])  # samples 1 and 4 dropped to the null label
    z = torch.nn.functional.normalize(torch.randn(6, 128, generator=torch.Generator().manual_seed(3)), dim=1)
    z.requires_grad_(True)
    contrastive, terms = objective.batch_term(z, batch)
    kept = torch.tensor([0, 2, 3, 5])
    per = supcon_per_anchor(z.detach()[kept], batch.labels[kept], 0.12)  # classes 0, 1, 1, 3: one positive pair
    assert terms["supcon"].item() == pytest.approx(per.sum().item() / 2, rel=1e-6)
    contrastive.backward()
    assert torch.all(z.grad[[1, 4]] == 0) and z.grad[[2, 3]].abs().sum() > 0
    batch.cond_labels = torch.full_like(batch.labels, 4)  # the official code's dropped batch: no term
    z.grad = None
    contrastive, _ = objective.batch_term(z, batch)
    assert contrastive.item() == 0


def test_official_code_bundle_per_batch_drop_skips_supcon_and_cbdm_on_dropped_batches(tmp_path, tiny_config):
    from coral_ft.config import OFFICIAL_CODE
    from coral_ft.train.trainer import Trainer

    for method, term in (("coral", "contrastive"), ("cbdm", "regulariser")):
        trainer = Trainer(tiny_config(**OFFICIAL_CODE, **{"objective.method": method, "model.p_uncond": 0.5}),
                          tmp_path / method, progress=False)
        seen = set()
        for _ in range(8):
            dropped = bool((trainer.batches.draw(trainer.step).cond_labels == trainer.null_label).all())
            value = trainer.train_step()[term].item()
            assert (value == 0) == dropped, (method, trainer.step, value)
            seen.add(dropped)
        assert seen == {True, False}  # both kinds of batch were seen


def test_no_positive_batch_gives_finite_coral_loss():
    denoiser, objective, batch = _coral_setup(labels=torch.tensor([0, 1, 2, 3]))
    terms = objective.loss_terms(denoiser, batch)
    assert torch.isfinite(terms["loss"]) and terms["contrastive"] == 0


def test_null_features_give_the_class_embedding_no_supcon_gradient():
    # coral-null: SupCon can be met only by what the bottleneck extracts from the image.
    cfg = load_config(None, {"objective.method": "coral", "objective.coral.features": "null"})
    from coral_ft.models.presets import build_unet

    torch.manual_seed(0)
    unet = build_unet("tiny", 16, 1, 4)
    denoiser = Denoiser(unet, build_head(unet))
    objective = build_objective(cfg.objective, ObjectiveContext(ForwardProcess(make_scheduler()), 4, 4))
    _, _, batch = _coral_setup()
    batch.cond_labels = torch.tensor([0, 4, 1, 1, 2, 3])
    out = denoiser(objective.noised(batch), batch.t, batch.cond_labels, null_features=True)
    contrastive, _ = objective.batch_term(out.embedding, batch)
    contrastive.backward()
    table = denoiser.unet.class_embedding.weight
    assert table.grad is None or torch.all(table.grad == 0), "a class-embedding row got SupCon gradient"
    assert denoiser.unet.mid_block.resnets[0].conv1.weight.grad.abs().sum() > 0  # the image path trains
    assert denoiser.head.proj.weight.grad.abs().sum() > 0
    # the conditioned variant, by contrast, reaches the label table through the bottleneck
    denoiser.zero_grad()
    out = denoiser(objective.noised(batch), batch.t, batch.cond_labels)
    objective.batch_term(out.embedding, batch)[0].backward()
    assert table.grad.abs().sum() > 0

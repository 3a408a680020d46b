"""Baselines (CBDM, T2H, ambient) against direct re-computations of their formulas."""

import pytest
import torch

from coral_ft.config import load_config
from coral_ft.errors import ConfigError, UserError
from coral_ft.models.denoiser import Denoiser
from coral_ft.models.presets import build_unet
from coral_ft.models.schedule import ForwardProcess, make_scheduler
from coral_ft.objectives import ObjectiveContext, TrainBatch, build_objective
from coral_ft.objectives.ambient import draw_negatives
from coral_ft.objectives.t2h import gate, transfer_indices, transfer_weights

C, B, T = 10, 8, 1000


def make_denoiser():
    torch.manual_seed(0)
    return Denoiser(build_unet("tiny", 16, 1, C))


def make_batch(seed=0, labels=None, t=None):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, C, (B,), generator=g) if labels is None else labels
    return TrainBatch(
        x0=torch.rand(B, 1, 16, 16, generator=g) * 2 - 1,
        labels=labels,
        cond_labels=labels.clone(),
        t=torch.randint(0, T, (B,), generator=g) if t is None else t,
        noise=torch.randn(B, 1, 16, 16, generator=g),
        generator=torch.Generator().manual_seed(seed + 100),
    )


def make_objective(method, counts=None, from_scratch=True, regularise_dropped=True, **settings):
    cfg = load_config(None, {"objective.method": method, **{f"objective.{method}.{k}": v for k, v in settings.items()}})
    ctx = ObjectiveContext(ForwardProcess(make_scheduler(T)), C, C, counts or [100 // (i + 1) for i in range(C)], from_scratch,
                           regularise_dropped=regularise_dropped)
    return build_objective(cfg.objective, ctx)


def grads(model, loss):
    model.zero_grad()
    loss.backward()
    return {n: (p.grad.clone() if p.grad is not None else torch.zeros_like(p)) for n, p in model.named_parameters()}


def grads_key(model):
    return next(n for n, _ in model.named_parameters() if "class_embedding" in n)


# CBDM ----------------------------------------------------------------------------------------
def test_cbdm_loss_and_gradient_equal_the_formula():
    den, batch = make_denoiser(), make_batch()
    obj = make_objective("cbdm", tau=2.0)
    terms = obj.loss_terms(den, batch)
    g_obj = grads(den, terms["loss"])

    y_prime = torch.multinomial(obj.target_probs(), B, replacement=True, generator=torch.Generator().manual_seed(100))
    x_t = obj.noised(batch)
    e1 = den(x_t, batch.t, batch.labels).eps
    e2 = den(x_t, batch.t, y_prime).eps
    w = 2.0 * (batch.t + 1).float() / T
    sq = lambda a, b: ((a - b) ** 2).flatten(1).mean(1)
    reg = (w * (sq(e1, e2.detach()) + 0.25 * sq(e1.detach(), e2))).mean()
    direct = ((e1 - batch.noise) ** 2).mean() + reg
    assert terms["loss"].item() == pytest.approx(direct.item(), rel=1e-5)
    assert terms["regulariser"].item() == pytest.approx(reg.item(), rel=1e-5)
    g_direct = grads(den, direct)
    for n in g_obj:
        assert torch.allclose(g_obj[n], g_direct[n], atol=1e-6, rtol=1e-4), n


def test_cbdm_stop_gradients_route_each_term_to_its_label():
    # Every sample has label 0 and the only class with training examples is 3, so y' == 3.
    counts = [0, 0, 0, 5] + [0] * (C - 4)
    batch = make_batch(labels=torch.zeros(B, dtype=torch.long))
    key = grads_key(make_denoiser())
    rows = {}
    for gamma in (0.0, 0.25):
        den = make_denoiser()
        obj = make_objective("cbdm", counts=counts, tau=5.0, gamma=gamma)
        g = grads(den, obj.loss_terms(den, batch)["loss"])[key]
        rows[gamma] = g
        assert g[0].abs().sum() > 0  # the pull term (and L_ddpm) train the true label's row
    # With gamma = 0 nothing reaches the target label's row: its prediction is behind sg().
    assert rows[0.0][3].abs().sum() == 0
    assert rows[0.25][3].abs().sum() > 0  # the commitment term trains y' alone
    assert torch.all(rows[0.25][[1, 2] + list(range(4, C + 1))] == 0)


def test_cbdm_regularises_only_label_kept_samples_when_asked():
    den, batch = make_denoiser(), make_batch()
    batch.cond_labels = batch.labels.clone()
    batch.cond_labels[:3] = C  # three labels dropped for guidance
    batch.extras = make_objective("cbdm").prepare(batch)  # the same y' for every call below
    full = make_objective("cbdm").loss_terms(den, batch)
    gated = make_objective("cbdm", regularise_dropped=False).loss_terms(den, batch)
    x_t = make_objective("cbdm").noised(batch)
    with torch.no_grad():
        e1, e2 = den(x_t, batch.t, batch.cond_labels).eps, den(x_t, batch.t, batch.extras["target_labels"]).eps
    sq = ((e1 - e2) ** 2).flatten(1).mean(1)
    w = (batch.t + 1).float() / T
    kept = (batch.cond_labels != C).float()
    assert gated["regulariser"].item() == pytest.approx((w * kept * 1.25 * sq).mean().item(), rel=1e-5)
    assert full["regulariser"].item() == pytest.approx((w * 1.25 * sq).mean().item(), rel=1e-5)
    batch.cond_labels[:] = C
    assert make_objective("cbdm", regularise_dropped=False).loss_terms(den, batch)["regulariser"].item() == 0


def test_cbdm_target_labels_follow_frequencies_from_scratch_and_uniform_when_finetuning():
    counts = [1000] + [1] * (C - 1)
    scratch = make_objective("cbdm", counts=counts, from_scratch=True)
    tuned = make_objective("cbdm", counts=counts, from_scratch=False)
    batch = make_batch()
    head_share = lambda obj: torch.cat([obj.prepare(batch)["target_labels"] for _ in range(50)]).eq(0).float().mean().item()
    assert head_share(scratch) > 0.95
    assert head_share(tuned) == pytest.approx(0.1, abs=0.05)


# T2H -----------------------------------------------------------------------------------------
def test_t2h_weights_are_the_forward_posterior_and_small_t_keeps_the_own_image():
    batch = make_batch(t=torch.zeros(B, dtype=torch.long))  # abar ~ 1: sigma tiny
    sched = ForwardProcess(make_scheduler(T))
    x_t = sched.add_noise(batch.x0, batch.noise, batch.t)
    abar = sched.abar(batch.t, batch.x0).flatten()
    w = transfer_weights(x_t, batch.x0, abar)
    assert torch.allclose(w.sum(1), torch.ones(B, dtype=torch.float64))
    assert torch.allclose(w.diag(), torch.ones(B, dtype=torch.float64))
    # Direct formula for one row at a large t.
    t = torch.full((B,), 900)
    x_t, abar = sched.add_noise(batch.x0, batch.noise, t), sched.abar(t, batch.x0).flatten()
    w = transfer_weights(x_t, batch.x0, abar)
    a = abar[2].double()
    logits = torch.stack([-((x_t[2].double() / a.sqrt() - batch.x0[j].double()) ** 2).sum() / (2 * (1 / a - 1)) for j in range(B)])
    assert torch.allclose(w[2], torch.softmax(logits, 0), atol=1e-9)


def test_t2h_gate_only_lets_targets_come_from_more_frequent_classes():
    counts = torch.tensor([100.0, 50, 10, 5] + [1] * (C - 4), dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    allowed = gate(labels, counts, "t2h")
    assert allowed[3, 0] and not allowed[0, 3] and allowed.diag().all()
    assert torch.equal(gate(labels, counts, "h2t"), allowed.T)
    # Large t: weights nearly uniform, so many transfers; check each kept one obeys the gate.
    batch = make_batch(labels=labels, t=torch.full((B,), 999))
    sched = ForwardProcess(make_scheduler(T))
    x_t, abar = sched.add_noise(batch.x0, batch.noise, batch.t), sched.abar(batch.t, batch.x0).flatten()
    moved = {"t2h": 0, "full": 0}
    violations = {"t2h": 0, "full": 0}
    for direction in moved:
        g = torch.Generator().manual_seed(0)
        for _ in range(30):
            j = transfer_indices(x_t, batch.x0, abar, labels, counts, direction, g)
            moved[direction] += int((j != torch.arange(B)).sum())
            violations[direction] += int((counts[labels[j]] < counts[labels]).sum())
    assert moved["t2h"] > 0 and violations["t2h"] == 0
    assert violations["full"] > 0


def test_t2h_loss_equals_mse_to_the_transferred_target():
    den, batch = make_denoiser(), make_batch(t=torch.full((B,), 990))
    obj = make_objective("t2h", direction="full")
    terms = obj.loss_terms(den, batch)
    x_t = obj.noised(batch)
    abar = obj.ctx.schedule.abar(batch.t, batch.x0).flatten()
    j = transfer_indices(x_t, batch.x0, abar, batch.labels, obj.counts, "full", torch.Generator().manual_seed(100))
    a = abar.view(-1, 1, 1, 1)
    target = (x_t - a.sqrt() * batch.x0[j]) / (1 - a).sqrt()
    kept = j == torch.arange(B)
    assert torch.allclose(target[kept], batch.noise[kept], atol=1e-4)  # j = i: the true noise
    eps = den(x_t, batch.t, batch.cond_labels).eps
    assert terms["loss"].item() == pytest.approx(((eps - target) ** 2).mean().item(), rel=1e-5)
    assert terms["transferred"].item() == pytest.approx((~kept).float().mean().item())


def test_t2h_gate_without_counts_is_a_config_error():
    cfg = load_config(None, {"objective.method": "t2h"})
    with pytest.raises(ConfigError, match="direction='full'"):
        build_objective(cfg.objective, ObjectiveContext(ForwardProcess(make_scheduler(T)), C, C, [], False))


# Ambient -------------------------------------------------------------------------------------
def test_ambient_hinge_equals_the_formula_with_gradient_through_both_forwards():
    den = make_denoiser()
    batch = make_batch()
    batch.cond_labels[0] = C  # a guidance-dropped sample: no penalty
    obj = make_objective("ambient", weight=1.0, margin=10.0)  # margin large: every hinge active
    terms = obj.loss_terms(den, batch)
    g_obj = grads(den, terms["loss"])
    neg = draw_negatives(batch.labels, C, torch.Generator().manual_seed(100))
    assert not torch.any(neg == batch.labels)
    x_t = obj.noised(batch)
    e1, e2 = den(x_t, batch.t, batch.cond_labels).eps, den(x_t, batch.t, neg).eps
    lam = torch.exp((1 - (batch.t + 1).float() / T) / 0.8)
    mask = torch.ones(B)
    mask[0] = 0
    pen = (lam * mask * torch.relu(10.0 - ((e1 - e2) ** 2).flatten(1).mean(1))).mean()
    direct = ((e1 - batch.noise) ** 2).mean() + pen
    assert terms["contrastive"].item() == pytest.approx(pen.item(), rel=1e-5)
    g_direct = grads(den, direct)
    for n in g_obj:
        assert torch.allclose(g_obj[n], g_direct[n], atol=1e-6, rtol=1e-4), n
    rows = g_obj[grads_key(den)]
    assert all(rows[int(c)].abs().sum() > 0 for c in neg[1:])  # the negative rows are trained


@pytest.mark.parametrize("key,value", [("cbdm.tau", -1), ("cbdm.target_dist", "zipf"), ("t2h.direction", "up"), ("ambient.margin", 0)])
def test_bad_settings_are_user_errors(key, value):
    with pytest.raises(UserError):
        load_config(None, {f"objective.{key}": value})


@pytest.mark.parametrize("method", ["cbdm", "t2h", "ambient"])
def test_each_baseline_trains_under_finetune_context(method):
    den, batch = make_denoiser(), make_batch()
    obj = make_objective(method, from_scratch=False)
    terms = obj.loss_terms(den, batch)
    terms["loss"].backward()
    assert torch.isfinite(terms["loss"]) and any(p.grad is not None for p in den.parameters())


# CCUA ----------------------------------------------------------------------------------------
def _ccua_by_hand(den, batch, alpha, gamma, tau, time_weighted=True):
    """L_ddpm + gamma * L_al + alpha * L_ucl written out from the paper and the authors' code."""
    x_t = make_objective("ccua").noised(batch)
    seen = []
    hook = den.unet.mid_block.register_forward_hook(lambda m, i, o: seen.append(o))
    e_c = den.unet(x_t, batch.t, class_labels=batch.cond_labels).sample
    e_u = den.unet(x_t, batch.t, class_labels=torch.full_like(batch.labels, C)).sample
    hook.remove()
    h_u = seen[1].flatten(1)  # the unconditional pass's bottleneck, (B, C*h*w)
    frac = (batch.t.float() + 1) / T
    kept = (batch.cond_labels != C).float()
    align = torch.stack([frac[i] * kept[i] * ((e_c[i] - e_u[i]) ** 2).mean() for i in range(B)]).mean()
    u = h_u / h_u.norm(dim=1, keepdim=True)
    ucl = []
    for i in range(B):
        sims = torch.stack([u[i] @ u[j] for j in range(B)]) / tau
        nce = -(sims[i] - torch.logsumexp(sims, 0))  # the sample itself is its only positive
        ucl.append(nce * (frac[i] if time_weighted else 1.0))
    ucl = torch.stack(ucl).mean()
    return ((e_c - batch.noise) ** 2).mean() + gamma * align + alpha * ucl, align, ucl


@pytest.mark.parametrize("time_weighted", [True, False])
def test_ccua_loss_equals_the_formula(time_weighted):
    den, batch = make_denoiser(), make_batch()
    batch.cond_labels[2] = C  # one label dropped: no alignment for it, still a UCL anchor
    obj = make_objective("ccua", ucl_weight=0.7, align_weight=1.3, temperature=0.2, time_weighted_ucl=time_weighted)
    terms = obj.loss_terms(den, batch)
    loss, align, ucl = _ccua_by_hand(den, batch, 0.7, 1.3, 0.2, time_weighted)
    assert terms["loss"].item() == pytest.approx(loss.item(), rel=1e-5)
    assert terms["align"].item() == pytest.approx(align.item(), rel=1e-5)
    assert terms["ucl"].item() == pytest.approx(ucl.item(), rel=1e-5)


def test_ccua_alignment_moves_both_predictions():
    # No stop-gradient (the authors' code): the label's row and the null row both get gradient.
    den, batch = make_denoiser(), make_batch(labels=torch.full((B,), 3))
    obj = make_objective("ccua", ucl_weight=0.0, align_weight=1.0)
    out = obj(den, batch)
    x_t = obj.noised(batch)
    diffusion = ((den(x_t, batch.t, batch.cond_labels).eps - batch.noise) ** 2).mean()
    g = grads(den, out.loss - diffusion)[grads_key(den)]  # the alignment term alone
    assert g[3].abs().sum() > 0 and g[C].abs().sum() > 0


# Dispersive ----------------------------------------------------------------------------------
def _dispersive_by_hand(z, variant, tau, margin):
    z = z.flatten(1).double()
    n, dim = z.shape
    d2 = torch.tensor([[((z[i] - z[j]) ** 2).sum().item() / dim for j in range(n)] for i in range(n)])
    if variant == "infonce-l2":
        return torch.log(torch.exp(-d2 / tau).mean())
    if variant == "infonce-cosine":
        cos = torch.tensor([[(z[i] @ z[j] / (z[i].norm() * z[j].norm())).item() for j in range(n)] for i in range(n)])
        return torch.log(torch.exp(cos / tau).mean())
    if variant == "hinge":
        return torch.stack([torch.relu(margin - d2[i, j]) ** 2 for i in range(n) for j in range(n) if i != j]).mean()
    zs = (z - z.mean(0)) / z.std(0)
    cov = zs.T @ zs / (n - 1)
    return sum(cov[a, b] ** 2 for a in range(dim) for b in range(dim) if a != b) / dim


@pytest.mark.parametrize("variant", ["infonce-l2", "infonce-cosine", "hinge", "covariance"])
def test_dispersive_variants_equal_their_formulas(variant):
    from coral_ft.objectives.dispersive import dispersive_loss

    z = torch.randn(6, 3, 2, 2, generator=torch.Generator().manual_seed(4))
    got = dispersive_loss(z, variant, temperature=0.5, margin=2.0)
    assert got.item() == pytest.approx(_dispersive_by_hand(z, variant, 0.5, 2.0).item(), rel=1e-5, abs=1e-6)


def test_dispersive_loss_is_the_diffusion_loss_plus_lambda_times_the_bottleneck_term():
    from coral_ft.objectives.dispersive import dispersive_loss

    den, batch = make_denoiser(), make_batch()
    obj = make_objective("dispersive", weight=0.3)
    terms = obj.loss_terms(den, batch)
    with torch.no_grad():
        out = den(obj.noised(batch), batch.t, batch.cond_labels)
        expected = ((out.eps - batch.noise) ** 2).mean() + 0.3 * dispersive_loss(out.bottleneck, "infonce-l2", 0.5)
    assert terms["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    # spreading the features apart lowers the term: identical features give its maximum, log 1 = 0
    same = torch.ones(4, 8)
    assert dispersive_loss(same, "infonce-l2").item() == pytest.approx(0.0, abs=1e-7)
    assert dispersive_loss(torch.randn(4, 8), "infonce-l2").item() < 0

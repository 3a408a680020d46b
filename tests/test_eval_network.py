"""`coral-ft eval --metric-network`: the bench's small classifier for small images (chosen by auto
under 32x32, said in one line), trained or loaded as the bench does, and a default metric set that
holds only metrics that run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from coral_ft.bench.eval_network import CLASSIFIER_NAME, choose_network, default_metrics
from coral_ft.config import EvalConfig
from coral_ft.metrics.reference import ReferenceImages
from tests._metrics_fakes import write_fake_inception
from tests.conftest import run_cli
from tests.test_cli_eval import no_weights, setup  # noqa: F401  (fixtures: an 8x8 image folder, no weights anywhere)


def _info(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("eval: ")]


def test_auto_measures_small_images_with_the_classifier_and_says_so_once(setup, no_weights, capsys):  # noqa: F811
    tmp, samples = setup
    code, out, err = run_cli(["eval", "--samples", samples, "--ref", tmp / "ref", "--json", "--no-progress"], capsys)
    assert code == 0, err
    (said,) = _info(err)
    assert "small classifier" in said and "8x8, under 32x32" in said and "trained" in said
    cached = tmp / "classifier-ref-8px.pt"  # beside the samples
    assert cached.is_file() and str(cached) in said
    result = json.loads(out)["metrics"]
    assert set(result) == {"fid", "is"}  # none named: those that run, IS from the classifier's logits
    assert result["fid"]["network"] == CLASSIFIER_NAME and result["is"]["available"]
    code, out2, err = run_cli(["eval", "--samples", samples, "--ref", tmp / "ref", "--json", "--no-progress"], capsys)
    (said,) = _info(err)
    assert code == 0 and "from" in said and "trained" not in said  # loaded, not trained again
    assert json.loads(out2)["metrics"]["fid"]["value"] == result["fid"]["value"]


def test_a_named_classifier_file_and_a_reference_made_with_it(setup, no_weights, capsys):  # noqa: F811
    tmp, samples = setup
    mine = tmp / "nets" / "digits-classifier.pt"
    code, out, err = run_cli(["eval", "--samples", samples, "--ref", tmp / "ref", "--metric-network", "classifier",
                              "--classifier", mine, "--metrics", "fid,kid", "--json", "--no-progress"], capsys)
    assert code == 0, err
    assert mine.is_file() and json.loads(out)["metrics"]["kid"]["network"] == CLASSIFIER_NAME
    direct = json.loads(out)["metrics"]["fid"]["value"]
    stats = tmp / "refs" / "ref.npz"
    code, out, err = run_cli(["eval", "make-ref", tmp / "ref", "--out", stats, "--no-progress"], capsys)
    assert code == 0, err
    assert (tmp / "refs" / "ref.classifier.pt").is_file()  # beside the statistics file
    # a statistics file made with the classifier: auto takes it, with the classifier beside it
    code, out, err = run_cli(["eval", "--samples", samples, "--ref", stats, "--metrics", "fid", "--json", "--no-progress"], capsys)
    assert code == 0, err
    assert "holds the classifier's statistics" in _info(err)[0]
    assert json.loads(out)["metrics"]["fid"]["value"] == pytest.approx(direct, rel=1e-5)  # the same training, the same net


def test_auto_keeps_tf_inception_from_32x32_and_its_default_set_runs():
    settings = EvalConfig()
    images = ReferenceImages("r", np.zeros((4, 32, 32, 3), np.uint8), np.arange(4), list("abcd"))
    assert choose_network(settings, 32, images) == ("inception", None)
    assert choose_network(settings, 16, images)[0] == "classifier"
    assert choose_network(EvalConfig(metric_network="inception"), 8, images) == ("inception", None)
    assert settings.metrics == ["fid"]  # the library default: IS only where it runs


def test_is_joins_the_default_set_only_with_logits(tmp_path, no_weights):  # noqa: F811
    assert default_metrics("inception", EvalConfig()) == ["fid"]  # no weights: evaluate() says where to get them
    write_fake_inception(tmp_path / "helper", "fid-helper")  # pool3 only: IS would print "unavailable"
    assert default_metrics("inception", EvalConfig(weights_dir=str(tmp_path / "helper"))) == ["fid"]
    write_fake_inception(tmp_path / "clean", "clean-fid")
    assert default_metrics("inception", EvalConfig(weights_dir=str(tmp_path / "clean"))) == ["fid", "is"]
    assert default_metrics("classifier", EvalConfig()) == ["fid", "is"]


def test_eval_on_the_digits_trains_the_benchs_classifier(tmp_path, capsys):
    # The bench's metric network for digits-lt (bench.context) and eval's, from the same reference
    # images: the same weights, so their FIDs are of one scale.
    import torch

    from coral_ft.bench.classifier import load_classifier
    from coral_ft.bench.context import metric_network, reference_images
    from coral_ft.bench.plan import make_plan
    from coral_ft.config import load_config

    config = load_config("digits-lt")
    plan = make_plan("digits-lt", config, tmp_path / "bench")
    real = reference_images(plan)
    threads = torch.get_num_threads()
    torch.set_num_threads(config.runtime.threads)  # as `coral-ft bench digits-lt` runs (use_runtime): 1 thread
    try:
        bench_net = metric_network(plan, real)
    finally:
        torch.set_num_threads(threads)
    samples = tmp_path / "s.npz"
    np.savez(samples, images=real.images[:200], labels=real.labels[:200])
    code, out, err = run_cli(["eval", "--samples", samples, "--ref", "digits-lt:train-full", "--json", "--no-progress"], capsys)
    assert code == 0, err
    assert json.loads(out)["metrics"]["fid"]["network"] == CLASSIFIER_NAME
    (cached,) = tmp_path.glob("classifier-*.pt")  # beside the samples; its file's bytes name it, so compare weights
    eval_net = load_classifier(cached, 1, 10)
    bench_weights, eval_weights = bench_net.network.state_dict(), eval_net.network.state_dict()
    assert all(torch.equal(bench_weights[k], eval_weights[k]) for k in bench_weights)  # trained on the recipe's 1 thread
    assert torch.get_num_threads() == threads  # eval's own work keeps its threads

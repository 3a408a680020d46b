"""`coral-ft eval` and `coral-ft eval make-ref` through the real entry point, with a fake
TF-Inception TorchScript file in --weights-dir and an image-folder reference made here."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from coral_ft.metrics.features import InceptionExtractor
from coral_ft.metrics.features import weights as w
from tests._metrics_fakes import write_fake_inception
from tests.conftest import one_error_line, run_cli

CLASSES = ("ant", "bee", "cat")
PER_CLASS = 12




FAKE_DIM = 64  # instead of 2048: FID's matrix square root stays cheap


@pytest.fixture
def setup(tmp_path, monkeypatch):
    """An image folder of 3 x 12 colour images (8 x 8), samples drawn alike, and fake weights."""
    rng = np.random.default_rng(0)
    base = {c: rng.integers(0, 256, size=3) for c in CLASSES}  # one colour per class

    def images(n, c):
        return np.clip(base[c] + rng.normal(0, 30, size=(n, 8, 8, 3)), 0, 255).astype(np.uint8)

    for c in CLASSES:
        (tmp_path / "ref" / c).mkdir(parents=True)
        for i, img in enumerate(images(PER_CLASS, c)):
            Image.fromarray(img).save(tmp_path / "ref" / c / f"{i}.png")
    samples = tmp_path / "samples.npz"
    np.savez(samples, images=np.concatenate([images(PER_CLASS, c) for c in CLASSES]),
             labels=np.repeat(np.arange(3), PER_CLASS))
    write_fake_inception(tmp_path / "weights", "clean-fid", dim=FAKE_DIM)
    monkeypatch.setattr(InceptionExtractor, "feature_dim", FAKE_DIM)
    return tmp_path, samples


def test_eval_json_and_make_ref(setup, capsys):
    tmp, samples = setup
    common = ["--weights-dir", tmp / "weights", "--feature-batch-size", 16, "--no-progress", "--metric-network", "inception"]
    code, out, err = run_cli(["eval", "--samples", samples, "--ref", tmp / "ref", "--metrics",
                              "fid,is,kid,per-class-fid,recall", "--recall-network", "inception", "--json", *common], capsys)
    assert code == 0, err
    result = json.loads(out)
    m = result["metrics"]
    assert result["reference"]["count"] == 36 and result["reference"]["classes"] == 3
    assert m["fid"]["network"] == "inception-2015-12-05/pool3" and m["fid"]["value"] >= 0
    assert m["is"]["available"] and m["is"]["splits"] == 10
    assert set(m["per-class-fid"]["values"]) == set(CLASSES)
    assert m["recall"]["network"] == "inception-2015-12-05/pool3" and m["recall"]["k"] == 3

    stats = tmp / "ref-stats.npz"
    code, out, err = run_cli(["eval", "make-ref", tmp / "ref", "--out", stats, "--metrics", "fid,per-class-fid", *common], capsys)
    assert code == 0, err
    assert stats.is_file()
    code, out, err = run_cli(["eval", "--samples", samples, "--ref", stats, "--metrics", "fid,per-class-fid", "--json", *common], capsys)
    assert code == 0, err
    cached = json.loads(out)["metrics"]
    assert cached["fid"]["value"] == pytest.approx(m["fid"]["value"], rel=1e-6)
    assert cached["per-class-fid"]["values"] == pytest.approx(m["per-class-fid"]["values"], rel=1e-6)


def test_eval_text_output_names_metrics_and_network(setup, capsys):
    tmp, samples = setup
    code, out, err = run_cli(["eval", "--samples", samples, "--ref", tmp / "ref", "--metrics", "fid,is",
                              "--weights-dir", tmp / "weights", "--metric-network", "inception"], capsys)
    assert code == 0, err
    assert "FID " in out and "IS " in out and "inception-2015-12-05/pool3, clean resize" in out


def test_eval_records_the_resize_and_refuses_to_mix_references(setup, capsys):
    tmp, samples = setup
    common = ["--weights-dir", tmp / "weights", "--no-progress", "--metric-network", "inception"]
    stats = tmp / "legacy.npz"
    code, _, err = run_cli(["eval", "make-ref", tmp / "ref", "--out", stats, "--metrics", "fid", "--resize", "legacy-pytorch", *common], capsys)
    assert code == 0, err
    code, out, err = run_cli(["eval", "--samples", samples, "--ref", stats, "--metrics", "fid", "--resize", "legacy-pytorch",
                              "--json", *common], capsys)
    assert code == 0, err
    assert json.loads(out)["metrics"]["fid"]["resize"] == "legacy-pytorch"
    code, _, err = run_cli(["eval", "--samples", samples, "--ref", stats, "--metrics", "fid", *common], capsys)
    assert code == 2 and "legacy-pytorch resize" in err and "--resize legacy-pytorch" in err


@pytest.fixture
def no_weights(monkeypatch, tmp_path):
    monkeypatch.delenv(w.ENV_VAR, raising=False)
    monkeypatch.setattr(w, "clean_fid_cache", lambda: tmp_path / "empty")
    monkeypatch.setattr(w, "torchvision_cache", lambda: tmp_path / "empty")
    monkeypatch.setattr(w, "fid_helper_file", lambda: None)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["eval", "--metrics", "fid"], "needs --samples"),
        (["eval", "--samples", "{samples}", "--ref", "{ref}", "--metrics", "fid", "--metric-network", "inception"], "no Inception weights found"),
        (["eval", "--samples", "{samples}", "--ref", "{ref}", "--metrics", "recall", "--metric-network", "inception"], "no VGG16 weights found"),
        (["eval", "--samples", "{samples}", "--ref", "{ref}", "--metric-network", "vgg"], "eval.metric_network must be one of"),
        (["eval", "--samples", "{samples}", "--ref", "{tmp}/stats.npz", "--metric-network", "classifier"], "not found"),
        (["eval", "--samples", "{samples}", "--ref", "{ref}", "--classifier", "{samples}"], "is not a classifier for 3-channel images of 3 classes"),
        (["eval", "--samples", "{samples}", "--ref", "{ref}", "--metrics", "psnr"], "eval.metrics: unknown psnr"),
        (["eval", "--samples", "{tmp}/none.npz", "--ref", "{ref}"], "samples file not found"),
        (["eval", "make-ref", "{ref}", "--out", "{tmp}/x.txt"], "must end in .npz"),
        (["eval", "make-ref", "cifar10:train", "--out", "{tmp}/x.npz", "--image-size", "64"], "keeps its own size"),
    ],
)
def test_bad_input_is_one_line_exit_2(setup, no_weights, capsys, args, fragment):
    tmp, samples = setup
    args = [a.format(samples=samples, ref=tmp / "ref", tmp=tmp) for a in args]
    code, out, err = run_cli(args, capsys)
    assert code == 2
    assert fragment in err and one_error_line(err) and "Traceback" not in err


def test_eval_takes_an_image_folder_of_samples_as_its_npz(setup, capsys):
    from coral_ft.sample.run import write_pngs

    tmp, samples = setup
    with np.load(samples) as f:
        write_pngs(tmp / "png", f["images"], f["labels"], list(CLASSES))  # as `coral-ft sample --png-dir` writes them
    common = ["--ref", tmp / "ref", "--metrics", "fid,per-class-fid", "--json", "--weights-dir", tmp / "weights",
              "--no-progress", "--metric-network", "inception"]
    results = []
    for given in (samples, tmp / "png"):
        code, out, err = run_cli(["eval", "--samples", given, *common], capsys)
        assert code == 0, err
        results.append(json.loads(out)["metrics"])
    assert results[1]["fid"]["value"] == pytest.approx(results[0]["fid"]["value"], rel=1e-4)
    assert results[1]["per-class-fid"]["values"] == pytest.approx(results[0]["per-class-fid"]["values"], rel=1e-4)

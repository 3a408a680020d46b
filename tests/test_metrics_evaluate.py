"""`evaluate` and `make_reference` with an injected toy feature network on the bundled digits."""

from __future__ import annotations

import numpy as np
import pytest

from coral_ft.data.registry import load_dataset
from coral_ft.errors import UserError
from coral_ft.metrics import evaluate, make_reference
from coral_ft.metrics.reference import load_reference_images, load_reference_stats
from tests._metrics_fakes import ToyExtractor, ev

REF = "digits-lt:train-full"  # balanced, 1,438 images of 1 x 16 x 16, offline


@pytest.fixture(scope="module")
def digits_test():
    data = load_dataset("digits-lt", None, "test")
    return {"images": data.images.numpy().transpose(0, 2, 3, 1).copy(), "labels": data.labels.numpy()}


@pytest.fixture
def toy():
    return ToyExtractor(pixels=16 * 16, dim=16, classes=10)


def test_all_metrics_record_network_hash_and_counts(digits_test, toy):
    result = evaluate(digits_test, REF, ev("fid,is,prd,recall,kid,per-class-fid", prd_runs=1), extractor=toy)
    m = result["metrics"]
    assert set(m) == {"fid", "is", "prd", "recall", "kid", "per-class-fid"}
    for r in m.values():
        assert r["network"] == "toy/projection" and r["weights_sha1"] == toy.weights_sha1
        assert (r["samples"], r["reference"]) == (359, 1438)
    assert 0 < m["fid"]["value"] < 1.0  # held-out digits against training digits: close
    assert m["is"]["available"] and m["is"]["splits"] == 10 and m["is"]["mean"] > 1
    assert m["prd"]["clusters"] == 200 and m["prd"]["angles"] == 1001 and m["prd"]["samples_used"] == 359
    assert m["prd"]["balancing"] == "reference subsampled from 1438 to 359"
    assert m["prd"]["f8_recall"] > 0.5 and m["prd"]["f1_8_precision"] > 0.5
    assert m["recall"]["k"] == 3 and m["recall"]["precision"] > 0.8
    assert m["kid"]["subset_size"] == 359
    assert list(m["per-class-fid"]["values"]) == [str(i) for i in range(10)]
    assert m["per-class-fid"]["samples_per_class"]["3"] == 37
    assert result["samples"]["image_shape"] == [16, 16, 1] and result["reference"]["classes"] == 10
    assert toy.calls == 2  # samples once, reference once: recall reuses the same network's features


def test_samples_equal_to_the_reference_score_perfectly(digits_test, toy):
    m = evaluate(digits_test, "digits-lt:test", ev("fid,prd,recall,per-class-fid", prd_runs=1), extractor=toy)["metrics"]
    assert abs(m["fid"]["value"]) < 1e-6
    assert m["prd"]["f8_recall"] > 0.99 and m["prd"]["f1_8_precision"] > 0.99 and m["prd"]["balancing"] is None
    assert m["recall"]["precision"] == 1.0 and m["recall"]["recall"] == 1.0
    assert max(m["per-class-fid"]["values"].values()) < 1e-6


def test_a_resizing_data_set_is_read_at_the_samples_size(toy, tmp_path):
    # 8x8 samples (the digits-lt recipe) meet the digits reference at 8x8, not the default 16x16.
    data = load_dataset("digits-lt", None, "test", image_size=8)
    samples = {"images": data.images.numpy().transpose(0, 2, 3, 1).copy(), "labels": data.labels.numpy()}
    small = ToyExtractor(pixels=8 * 8, dim=16, classes=10)
    assert abs(evaluate(samples, "digits-lt:test", ev("fid"), extractor=small)["metrics"]["fid"]["value"]) < 1e-6
    path = make_reference(load_reference_images("digits-lt:test", image_size=8), tmp_path / "ref8.npz", ev("fid"),
                          extractor=small)
    assert load_reference_stats(path).image_shape == (8, 8, 1)


def test_stats_file_gives_the_same_results_as_images(digits_test, toy, tmp_path):
    metrics = "fid,kid,recall,per-class-fid"
    direct = evaluate(digits_test, REF, ev(metrics, prd_runs=1), extractor=toy)["metrics"]
    path = make_reference(REF, tmp_path / "ref.npz", ev(metrics), extractor=toy)
    stats = load_reference_stats(path)
    assert stats.count == 1438 and stats.image_shape == (16, 16, 1)
    toy.calls = 0
    cached = evaluate(digits_test, str(path), ev(metrics, prd_runs=1), extractor=toy)["metrics"]
    assert toy.calls == 1  # only the samples went through the network
    assert cached["fid"]["value"] == pytest.approx(direct["fid"]["value"], rel=1e-9)
    assert cached["kid"]["value"] == pytest.approx(direct["kid"]["value"], rel=1e-9)
    assert cached["per-class-fid"]["values"] == pytest.approx(direct["per-class-fid"]["values"], rel=1e-9)
    # precision/recall reads the reference's k-NN radii from the file instead of recomputing them
    assert stats.networks["toy/projection"].radii[3].shape == (1438,)
    assert (cached["recall"]["precision"], cached["recall"]["recall"]) == (direct["recall"]["precision"], direct["recall"]["recall"])


def test_stats_from_other_weights_or_without_features_are_refused(digits_test, toy, tmp_path):
    path = make_reference(REF, tmp_path / "ref.npz", ev("fid"), extractor=toy, keep_features=False)
    other = ToyExtractor(pixels=256, dim=16, classes=10, seed=1)  # same name, other weights
    with pytest.raises(UserError, match="rebuild it"):
        evaluate(digits_test, str(path), ev("fid"), extractor=other)
    with pytest.raises(UserError, match="no features"):
        evaluate(digits_test, str(path), ev("kid"), extractor=toy)
    with pytest.raises(UserError, match="no features"):
        evaluate(digits_test, str(path), ev("per-class-fid"), extractor=toy)
    with pytest.raises(UserError, match="need the reference features"):
        make_reference(REF, tmp_path / "x.npz", ev("prd"), extractor=toy, keep_features=False)


def test_inception_score_without_logits_is_reported_unavailable(digits_test):
    class NoLogits(ToyExtractor):
        logits_from_features = None
        logits_unavailable_reason = "this network has no classifier"

    r = evaluate(digits_test, REF, ev("is"), extractor=NoLogits(pixels=256))["metrics"]["is"]
    assert r == {"available": False, "reason": "this network has no classifier", "network": "toy/projection",
                 "weights_sha1": r["weights_sha1"], "resize": None, "samples": 359, "reference": 1438}


def test_samples_npz_file(digits_test, toy, tmp_path):
    path = tmp_path / "samples.npz"
    np.savez(path, **digits_test)
    result = evaluate(path, REF, ev(["fid"]), extractor=toy)
    assert result["samples"]["source"] == str(path) and result["samples"]["count"] == 359


@pytest.mark.parametrize(
    "change, ref, metrics, fragment",
    [
        (lambda s: {**s, "images": s["images"][:, :8]}, REF, "fid", "samples are 8x16 with 1 channel"),
        (lambda s: {**s, "images": np.repeat(s["images"], 3, -1)}, REF, "fid", "with 3 channel.*convert\\('L'\\)"),
        (lambda s: {k: v[:100] for k, v in s.items()}, REF, "prd", "prd needs at least 200"),
        (lambda s: {k: v[:5] for k, v in s.items()}, REF, "is", "is needs at least 10"),
        (lambda s: {"images": s["images"]}, REF, "per-class-fid", "needs sample labels"),
        (lambda s: {**s, "labels": s["labels"] + 5}, REF, "fid", r"labels must lie in \[0, 10\)"),
        (lambda s: s, REF, "fid,bogus", "unknown bogus"),
        (lambda s: s, "digits-lt", "fid", "neither DATASET:SPLIT"),
        (lambda s: s, "nope:train", "fid", "unknown data set"),
        (lambda s: s, "missing.npz", "fid", "statistics file not found"),
        (lambda s: {**s, "images": s["images"].astype(np.float32)}, REF, "fid", "uint8"),
    ],
)
def test_bad_input_is_a_clear_user_error(digits_test, toy, change, ref, metrics, fragment):
    with pytest.raises(UserError, match=fragment):
        evaluate(change(digits_test), ref, ev(metrics), extractor=toy)
    assert toy.calls == 0  # checked before any feature extraction


def test_missing_samples_file(toy, tmp_path):
    with pytest.raises(UserError, match="samples file not found"):
        evaluate(tmp_path / "none.npz", REF, ev("fid"), extractor=toy)


@pytest.mark.parametrize("mismatch, fragment", [("size", "samples are 8x8"), ("resize", "resize")])
def test_mismatches_are_found_before_any_feature_is_computed(digits_test, toy, tmp_path, mismatch, fragment):
    path = make_reference(REF, tmp_path / "ref.npz", ev("fid"), extractor=toy)  # 16x16 digits, toy's resize
    toy.calls = 0
    samples = digits_test
    if mismatch == "size":
        samples = {"images": np.zeros((50, 8, 8, 1), dtype=np.uint8), "labels": np.zeros(50, dtype=np.int64)}
    else:
        toy.resize = "legacy-pytorch"  # the reference was made with the other resize
    with pytest.raises(UserError, match=fragment):
        evaluate(samples, str(path), ev("fid,kid"), extractor=toy)
    assert toy.calls == 0  # the error came before the network saw an image


def test_groups_add_only_what_the_requested_networks_give(digits_test, toy):
    # fid asks for the main network: its groups get FID and KID (same features), never a recall
    # that would load VGG16 nobody asked for
    result = evaluate(digits_test, REF, ev("fid"), extractor=toy, groups={"low": [0, 1, 2, 3, 4], "high": [5, 6, 7, 8, 9]})
    for group in result["groups"].values():
        assert group["fid"] is not None and group["kid"] is not None and "recall" not in group


def test_an_image_folder_of_samples_reads_as_its_npz_does(digits_test, toy, tmp_path):
    from coral_ft.metrics.evaluation import load_samples
    from coral_ft.sample.run import write_pngs

    keep = digits_test["labels"] != 3  # class 3 drawn no sample: folders 000-0 .. 009-9 without 003-3
    samples = {k: v[keep] for k, v in digits_test.items()}
    write_pngs(tmp_path / "png", samples["images"], samples["labels"], [str(c) for c in range(10)])
    loaded = load_samples(tmp_path / "png")
    assert loaded.images.shape == samples["images"].shape and sorted(loaded.labels) == sorted(samples["labels"])
    for c in range(10):  # each class's images, in sample order, under its own label
        assert np.array_equal(loaded.images[loaded.labels == c], samples["images"][samples["labels"] == c])
    from_folder = evaluate(tmp_path / "png", REF, ev("fid"), extractor=toy)["metrics"]["fid"]["value"]
    assert from_folder == pytest.approx(evaluate(samples, REF, ev("fid"), extractor=toy)["metrics"]["fid"]["value"])


def test_a_flat_folder_of_samples_has_no_labels_and_an_empty_one_is_a_clear_error(digits_test, tmp_path):
    from PIL import Image

    from coral_ft.metrics.evaluation import load_samples

    (tmp_path / "flat").mkdir()
    for i, img in enumerate(digits_test["images"][:4]):
        Image.fromarray(img[..., 0]).save(tmp_path / "flat" / f"{i}.png")
    loaded = load_samples(tmp_path / "flat")
    assert loaded.labels is None and np.array_equal(loaded.images, digits_test["images"][:4])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images in .*--samples takes a .npz"):
        load_samples(tmp_path / "empty")

import numpy as np
import pytest
import torch

from coral_ft.data.batches import global_batch_indices, to_model_range, to_uint8
from coral_ft.data.longtail import longtail_counts, select_longtail
from coral_ft.data.registry import load_dataset
from coral_ft.errors import ConfigError, DataError


@pytest.mark.parametrize(
    "head, classes, rho, expected_first, expected_last, total",
    [
        (5000, 10, 0.01, [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50], None, 12406),
        (5000, 10, 0.001, [5000, 2320, 1077, 500, 232, 107, 50, 23, 10, 5], None, 9324),
        (500, 100, 0.01, [500], 5, 10847),
    ],
)
def test_longtail_counts_match_the_paper(head, classes, rho, expected_first, expected_last, total):
    counts = longtail_counts(head, classes, rho)
    assert counts[: len(expected_first)] == expected_first
    if expected_last is not None:
        assert counts[-1] == expected_last
    assert sum(counts) == total


def test_selection_follows_the_peers_legacy_rng_recipe():
    labels = np.repeat(np.arange(3), 20)
    np.random.shuffle(labels)
    counts = [20, 7, 2]
    chosen = select_longtail(labels, counts, seed=0)
    # The peers' recipe written out: seed the legacy global RNG, shuffle each class's indices.
    np.random.seed(0)
    expected = []
    for cls, n in enumerate(counts):
        idx = np.where(labels == cls)[0]
        np.random.shuffle(idx)
        expected.append(idx[:n])
    np.testing.assert_array_equal(chosen, np.concatenate(expected))
    assert np.bincount(labels[chosen]).tolist() == counts


def test_selection_restores_the_global_rng():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    select_longtail(np.repeat(np.arange(2), 5), [5, 2])
    assert (np.random.get_state()[1] == before).all()


def test_cifar10_reader_on_the_shared_files(cifar10_root):
    train = load_dataset("cifar10", str(cifar10_root), "train")
    assert train.images.shape == (50000, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.counts() == [5000] * 10
    assert load_dataset("cifar10", str(cifar10_root), "test").counts() == [1000] * 10
    lt = load_dataset("cifar10-lt", str(cifar10_root), "train", imbalance=0.01)
    assert lt.counts() == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert len(load_dataset("cifar10-lt", str(cifar10_root), "train-full")) == 50000
    assert lt.class_names[0] == "airplane"


def test_digits_are_embedded_and_long_tailed():
    data = load_dataset("digits-lt", None, "train", imbalance=0.1)
    assert data.images.shape[1:] == (1, 16, 16)
    counts = data.counts()
    assert counts == longtail_counts(counts[0], 10, 0.1)
    assert counts[0] > 10 * counts[-1] - 10
    full = load_dataset("digits-lt", None, "train-full")
    test = load_dataset("digits-lt", None, "test")
    assert len(full) + len(test) == 1797


def test_digits_at_native_8x8_are_the_bundled_pixels():
    from sklearn.datasets import load_digits

    native = load_dataset("digits-lt", None, "train-full", image_size=8)
    assert native.images.shape[1:] == (1, 8, 8)
    # scikit-learn's 0..16 grey levels scaled to 0..255, no interpolation
    bundled = {(np.rint(img * 255 / 16).astype(np.uint8)).tobytes() for img in load_digits().images}
    assert all(img[0].numpy().tobytes() in bundled for img in native.images[:50])
    assert load_dataset("digits-lt", None, "train", imbalance=0.1, image_size=8).counts() == \
        load_dataset("digits-lt", None, "train", imbalance=0.1).counts()


@pytest.mark.parametrize(
    "name, root, error, fragment",
    [
        ("cifar10-lt", None, DataError, "--data-root"),
        ("cifar10-lt", "/nonexistent", DataError, "cifar-10-batches-py"),
        ("cifar100-lt", "/tmp", DataError, "cifar-100-python"),
        ("imagefolder", "/nonexistent", DataError, "image folder"),
        ("mnist", None, ConfigError, "unknown data set"),
    ],
)
def test_bad_data_roots_name_the_expected_layout(name, root, error, fragment):
    with pytest.raises(error, match=fragment):
        load_dataset(name, root, "train")


def test_an_image_size_for_a_fixed_size_data_set_is_an_error():
    with pytest.raises(ConfigError, match="cifar10 has a fixed image size"):
        load_dataset("cifar10", "/nonexistent", "train", image_size=64)


def test_malformed_cifar_file_is_a_clear_error(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "data_batch_1").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="cannot read"):
        load_dataset("cifar10", str(tmp_path), "train")


def test_imagefolder_reader(tmp_path):
    from PIL import Image

    for cls, n in (("cat", 3), ("dog", 1)):
        (tmp_path / cls).mkdir()
        for i in range(n):
            Image.new("RGB", (20, 20), (i * 40, 0, 0)).save(tmp_path / cls / f"{i}.png")
    data = load_dataset("imagefolder", str(tmp_path), "train", image_size=16)
    assert data.class_names == ["cat", "dog"] and data.counts() == [3, 1]
    assert data.images.shape == (4, 3, 16, 16)


def test_an_imagefolder_of_grey_images_has_one_channel_and_a_mixed_one_three(tmp_path):
    from PIL import Image

    for cls in ("a", "b"):
        (tmp_path / "grey" / cls).mkdir(parents=True)
        Image.new("L", (8, 8), 200).save(tmp_path / "grey" / cls / "0.png")
    data = load_dataset("imagefolder", str(tmp_path / "grey"), "train")
    assert data.images.shape == (2, 1, 8, 8) and int(data.images.max()) == 200
    Image.new("RGB", (8, 8), (10, 20, 30)).save(tmp_path / "grey" / "b" / "1.png")  # one colour image: RGB for all
    data = load_dataset("imagefolder", str(tmp_path / "grey"), "train")
    assert data.images.shape == (3, 3, 8, 8)
    assert data.images[0].tolist() == [[[200] * 8] * 8] * 3 and data.images[2, :, 0, 0].tolist() == [10, 20, 30]


def test_batches_cover_each_epoch_once_and_are_seeded():
    n, b = 10, 4
    seen = torch.cat([global_batch_indices(n, b, seed=1, step=s) for s in range(5)])  # 2 epochs
    assert sorted(seen[:10].tolist()) == list(range(10)) and sorted(seen[10:20].tolist()) == list(range(10))
    assert torch.equal(global_batch_indices(n, b, 1, 3), global_batch_indices(n, b, 1, 3))
    assert not torch.equal(global_batch_indices(n, b, 1, 0), global_batch_indices(n, b, 2, 0))


def test_pixel_range_round_trip():
    x = torch.arange(256, dtype=torch.uint8)
    y = to_model_range(x)
    assert y.min() == -1 and y.max() == 1
    assert torch.equal(to_uint8(y), x)


def test_batch_resampling_draws_classes_by_a_power_of_their_counts():
    from coral_ft.data.batches import resampled_batch_indices

    labels = torch.tensor([0] * 900 + [1] * 90 + [2] * 9)
    for power in (1.0, 0.5, 0.0):
        idx = resampled_batch_indices(labels, power, 60_000, seed=0, step=7)
        share = torch.bincount(labels[idx], minlength=3).double() / len(idx)
        expected = torch.tensor([900.0, 90.0, 9.0], dtype=torch.float64) ** power
        assert torch.allclose(share, expected / expected.sum(), atol=0.01), power
    # a pure function of (seed, step): resume and several processes see the same batch
    assert torch.equal(resampled_batch_indices(labels, 0.5, 64, 1, 3), resampled_batch_indices(labels, 0.5, 64, 1, 3))
    assert not torch.equal(resampled_batch_indices(labels, 0.5, 64, 1, 3), resampled_batch_indices(labels, 0.5, 64, 1, 4))
    tail = torch.nonzero(labels == 2).flatten()
    drawn = resampled_batch_indices(labels, 0.0, 3000, 0, 0)
    assert set(drawn[labels[drawn] == 2].tolist()) == set(tail.tolist())  # every tail image, uniformly


def test_the_trainer_takes_resampled_batches(tmp_path, tiny_config):
    from coral_ft.train.trainer import Trainer

    trainer = Trainer(tiny_config(**{"data.resample_power": 0.0, "train.batch_size": 64}), tmp_path, progress=False)
    labels = []
    for step in range(30):
        trainer.step = step
        labels.append(trainer.batches.draw(trainer.step).labels)
    counts = torch.bincount(torch.cat(labels), minlength=10)
    assert counts.min() > 0.5 * counts.float().mean()  # class-balanced, though digits-LT runs 139 .. 13

"""CelebA-5 / ImageNet-LT packing on tiny image trees and lists made in the real formats."""

import numpy as np
import pytest
from PIL import Image

from coral_ft.cli.app import main
from coral_ft.data.prepare import CELEBA_ATTRIBUTES, prepare_celeba5, prepare_imagenet_lt
from coral_ft.data.registry import load_dataset
from coral_ft.errors import DataError

ALL_ATTRS = ["5_o_Clock_Shadow", "Bald", "Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair", "Male"]


def write_image(path, value, size=(40, 48)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path)


def make_celeba(tmp_path, per_class=(3, 5, 4, 2, 2), extra_ambiguous=2):
    src = tmp_path / "celeba"
    lines, k = [], 0
    for c, n in enumerate(per_class):
        for _ in range(n):
            k += 1
            name = f"{k:06d}.jpg"
            write_image(src / "img_align_celeba" / name, 10 * c)
            flags = ["1" if a == CELEBA_ATTRIBUTES[c] else "-1" for a in ALL_ATTRS]
            lines.append(f"{name} " + " ".join(flags))
    for _ in range(extra_ambiguous):  # two hair attributes: excluded
        k += 1
        name = f"{k:06d}.jpg"
        write_image(src / "img_align_celeba" / name, 200)
        lines.append(f"{name} " + " ".join("1" if a in ("Black_Hair", "Gray_Hair") else "-1" for a in ALL_ATTRS))
    (src / "list_attr_celeba.txt").write_text(f"{k}\n" + " ".join(ALL_ATTRS) + "\n" + "\n".join(lines) + "\n")
    return src


def test_celeba5_keeps_exactly_one_hair_attribute_and_packs_64px(tmp_path):
    src, root = make_celeba(tmp_path), tmp_path / "root"
    written = prepare_celeba5(src, root)
    assert [p.name for p in written] == ["train.npz", "test.npz"]
    train, test = load_dataset("celeba-5", str(root), "train"), load_dataset("celeba-5", str(root), "test")
    assert len(train) + len(test) == 16  # the 2 ambiguous images are dropped
    assert train.images.shape[1:] == (3, 64, 64) and str(train.images.dtype) == "torch.uint8"
    assert train.class_names == ["black", "brown", "blond", "gray", "bald"]
    assert sorted(set(test.labels.tolist())) == [0, 1, 2, 3, 4]  # every class in the held-out split
    # Pixel value encodes the class: the labels match the attribute columns.
    assert all(int(img[0, 0, 0]) == 10 * int(y) for img, y in zip(train.images, train.labels))
    assert prepare_celeba5(src, root) == []  # once: nothing rewritten


def test_celeba5_uses_split_lists_when_given(tmp_path):
    src = make_celeba(tmp_path)
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "train.txt").write_text("000001.jpg 0\n000004.jpg 1\n")
    (lists / "test.txt").write_text("000008.jpg 2\n")
    prepare_celeba5(src, tmp_path / "root", lists)
    train = load_dataset("celeba-5", str(tmp_path / "root"), "train")
    assert train.labels.tolist() == [0, 1]


def make_imagenet(tmp_path):
    src, lists = tmp_path / "ilsvrc", tmp_path / "lists"
    lists.mkdir()
    wnids = ["n01440764", "n01443537", "n01484850"]
    rows = {"train": [(0, 4), (1, 2), (2, 1)], "val": [(0, 2), (1, 2), (2, 2)], "test": [(0, 1), (1, 1), (2, 1)]}
    names = {"train": "ImageNet_LT_train.txt", "val": "ImageNet_LT_val.txt", "test": "ImageNet_LT_test.txt"}
    for split, spec in rows.items():
        folder = "train" if split != "test" else "val"
        lines = []
        for label, n in spec:
            for i in range(n):
                rel = f"{folder}/{wnids[label]}/{split}_{i}.JPEG"
                write_image(src / rel, 50 * label, size=(80, 60))
                lines.append(f"{rel} {label}")
        (lists / names[split]).write_text("\n".join(lines) + "\n")
    return src, lists


def test_imagenet_lt_packs_the_lists_and_tests_against_the_balanced_val(tmp_path):
    src, lists = make_imagenet(tmp_path)
    prepare_imagenet_lt(src, lists, tmp_path / "root")
    train = load_dataset("imagenet-lt", str(tmp_path / "root"), "train")
    ref = load_dataset("imagenet-lt", str(tmp_path / "root"), "test")
    assert train.counts() == [4, 2, 1] and ref.counts() == [2, 2, 2]  # "test" = balanced val list
    assert train.class_names == ["n01440764", "n01443537", "n01484850"]
    assert train.images.shape[1:] == (3, 64, 64)


def test_unprepared_data_names_the_prepare_command(tmp_path):
    with pytest.raises(DataError, match="coral-ft data prepare imagenet-lt"):
        load_dataset("imagenet-lt", str(tmp_path), "train")
    with pytest.raises(DataError, match="coral-ft data prepare celeba-5"):
        load_dataset("celeba-5", None, "train")


def test_missing_sources_say_what_to_download(tmp_path):
    with pytest.raises(DataError, match="list_attr_celeba.txt"):
        prepare_celeba5(tmp_path, tmp_path / "root")
    src, lists = make_imagenet(tmp_path)
    (lists / "ImageNet_LT_train.txt").unlink()
    with pytest.raises(DataError, match="OLTR"):
        prepare_imagenet_lt(src, lists, tmp_path / "root")


def test_cli_prepare_and_bad_input(tmp_path, capsys):
    src, root = make_celeba(tmp_path), tmp_path / "root"
    main(["data", "prepare", "celeba-5", "--source", str(src), "--data-root", str(root)])
    assert "train.npz" in capsys.readouterr().out
    main(["data", "stats", "celeba-5", "--data-root", str(root), "--json"])
    assert "\"total\": 7" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["data", "prepare", "imagenet-lt", "--source", str(src), "--data-root", str(root)])
    assert exc.value.code == 2
    assert "needs --lists" in capsys.readouterr().err

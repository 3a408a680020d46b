"""`coral-ft latents` end to end on tiny models and the embedded digits, and its bad input."""

import json

import numpy as np
import pytest
import torch

from coral_ft.checkpoint.model import ModelInfo, save_head, save_model
from coral_ft.models.denoiser import build_head
from coral_ft.models.presets import build_unet
from coral_ft.models.schedule import make_scheduler
from tests.conftest import one_error_line, run_cli  # run_cli: the real entry point, in-process

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def two_runs(tmp_path):
    """ddpm/ (no head) and coral/ (with head): run directories holding tiny digits models."""
    runs = []
    for seed, name, head in [(0, "ddpm", False), (1, "coral", True)]:
        torch.manual_seed(seed)
        unet = build_unet("tiny", 16, 1, 10)
        info = ModelInfo([str(i) for i in range(10)], "digits-lt")
        save_model(tmp_path / name / "model", unet, make_scheduler(), info)
        if head:
            save_head(tmp_path / name / "head", build_head(unet))
        runs.append(tmp_path / name)
    return runs


def test_latents_writes_pictures_json_and_table(tmp_path, two_runs, capsys):
    out = tmp_path / "latents"
    args = ["latents", "--model", str(two_runs[0]), "--model", str(two_runs[1]), "--out", str(out),
            "--per-class", "4", "--timesteps", "50", "--k", "3", "--plot", "tsne"]  # fmt: skip
    code, stdout, err = run_cli(args, capsys)
    assert code == 0, err
    assert "purity" in stdout and "(chance)" in stdout and "tail>head" in stdout

    report = json.loads((out / "latents.json").read_text())
    assert report["dataset"] == "digits-lt"  # read from the models' coral_ft.json
    assert report["split"] == "test" and report["condition"] == "true"
    assert len(report["train_counts"]) == 10 and report["train_counts"][0] > report["train_counts"][9]
    assert report["head_classes"] == [0, 1, 2] and report["tail_classes"] == [7, 8, 9]
    kinds = {(r["model"], r["features"]) for r in report["scores"]}
    assert kinds == {("ddpm", "bottleneck"), ("coral", "bottleneck"), ("coral", "embedding")}
    for r in report["scores"]:
        assert r["samples_per_class"] == [4] * 10
        assert 0.0 <= r["overall"]["knn_purity"] <= 1.0
        assert len(r["per_class"]["silhouette"]) == 10
        assert r["per_class"]["tail_into_head"][0] is None  # head classes have no overlap score
    assert sorted(report["figures"]) == ["bottleneck-t50-tsne.png", "embedding-t50-tsne.png"]
    for name in report["figures"]:
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    assert (out / "latents.txt").read_text().startswith("digits-lt")
    with np.load(out / "features.npz") as npz:
        assert npz["ddpm/t50/bottleneck"].shape == (40, 64) and npz["coral/t50/embedding"].shape == (40, 128)

    # --json prints the same report; a second run with the same seed gives the same numbers.
    code, stdout, err = run_cli([*args[:-2], "--plot", "none", "--json", "--out", str(tmp_path / "again")], capsys)
    assert code == 0, err
    again = json.loads(stdout)
    assert again["scores"] == report["scores"] and again["figures"] == []


def test_a_run_trained_on_8x8_digits_is_shown_8x8_digits(tmp_path, capsys):
    # The run's config.toml records data.image_size = 8; the digits must be read at that size.
    unet = build_unet("micro", 8, 1, 10)
    save_model(tmp_path / "run" / "model", unet, make_scheduler(), ModelInfo([str(i) for i in range(10)], "digits-lt"))
    (tmp_path / "run" / "config.toml").write_text('[data]\ndataset = "digits-lt"\nimbalance = 0.1\nimage_size = 8\n')
    args = ["latents", "--model", str(tmp_path / "run"), "--out", str(tmp_path / "out"), "--per-class", "3",
            "--timesteps", "50", "--k", "2", "--plot", "none", "--json"]  # fmt: skip
    code, stdout, err = run_cli(args, capsys)
    assert code == 0, err
    report = json.loads(stdout)
    assert report["imbalance"] == 0.1 and report["train_counts"][0] == 139


def test_missing_umap_is_one_clear_line(tmp_path, two_runs, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "umap" else real(name, *a))
    code, _, err = run_cli(["latents", "--model", str(two_runs[0]), "--out", str(tmp_path / "o"), "--plot", "umap"], capsys)
    assert code == 2
    assert "pip install coral-ft[umap]" in err and one_error_line(err)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--timesteps", "1000"], "outside 0..999"),
        (["--timesteps", "a,b"], "latents.timesteps[0] must be an integer; got 'a'"),
        (["--set", "latents.per_class=1"], "latents.per_class must be at least 2"),
        (["--split", "train"], "latents.split must be one of test, train-full"),
        (["--plot", "pca"], "latents.plots must be one of tsne, umap"),
        (["--condition", "maybe"], "latents.condition"),
        (["--name", "a", "--name", "b"], "--name"),
    ],
)
def test_bad_input_is_one_line_before_any_work(tmp_path, two_runs, capsys, args, fragment):
    code, _, err = run_cli(["latents", "--model", str(two_runs[0]), "--out", str(tmp_path / "o"), *args], capsys)
    assert code == 2, err
    assert fragment in err and "Traceback" not in err and one_error_line(err)
    assert not (tmp_path / "o").exists()


def test_images_of_another_size_than_the_model_are_refused(tmp_path, two_runs, capsys, cifar10_root):
    args = ["--dataset", "cifar10", "--data-root", str(cifar10_root), "--per-class", "2"]
    code, _, err = run_cli(["latents", "--model", str(two_runs[0]), "--out", str(tmp_path / "o"), *args], capsys)
    assert code == 2 and "takes 1x16x16 images" in err and "3x32x32" in err
    assert not (tmp_path / "o").exists()


def test_missing_model_is_a_user_error(tmp_path, capsys):
    code, _, err = run_cli(["latents", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "does not exist" in err

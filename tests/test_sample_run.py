"""sample_to_npz: output format, determinism, shards, resume, refusal, bad input, 2 processes."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import coral_ft.sample.run as run_mod
from coral_ft.config import SampleConfig
from coral_ft.errors import UserError
from coral_ft.sample.run import sample_to_npz, shards_dir_for
from tests.conftest import save_tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")
ARGS = dict(guidance=0.5, sampler="ddim", steps=3, labels="balanced", seed=4)


def S(**changes) -> SampleConfig:
    """The sampling settings of these tests, with changes."""
    return SampleConfig(**{**ARGS, **changes})


def _load(path):
    data = np.load(path)
    return data["images"], data["labels"]


def test_output_format_and_same_seed_same_samples_whatever_the_batch_size(tiny_model_dir, tmp_path):
    a = sample_to_npz(tiny_model_dir, tmp_path / "a.npz", 5, S(batch_size=2), png_dir=tmp_path / "png")
    b = sample_to_npz(tiny_model_dir, tmp_path / "b.npz", 5, S(batch_size=5))
    (ia, la), (ib, lb) = _load(a), _load(b)
    assert ia.shape == (5, 16, 16, 1) and ia.dtype == np.uint8 and ia.std() > 0
    assert la.tolist() == [0, 1, 2, 3, 4] and la.dtype == np.int64
    assert np.array_equal(ia, ib) and np.array_equal(la, lb)
    assert len(list(shards_dir_for(a).glob("shard-*.npz"))) == 3  # batches of 2, 2, 1
    assert sorted(p.name for p in (tmp_path / "png").iterdir())[:2] == ["000-class0", "001-class1"]
    assert (tmp_path / "png" / "004-class4" / "000004.png").is_file()
    c = sample_to_npz(tiny_model_dir, tmp_path / "c.npz", 5, S(batch_size=5, seed=5))
    assert not np.array_equal(_load(c)[0], ia)


def test_an_interrupted_run_resumes_where_it_stopped(tiny_model_dir, tmp_path, monkeypatch):
    full = _load(sample_to_npz(tiny_model_dir, tmp_path / "ref.npz", 6, S(batch_size=2)))
    real, calls = run_mod.sample, []

    def dies_on_the_second_batch(*args, **kwargs):
        calls.append(len(args[2]))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(run_mod, "sample", dies_on_the_second_batch)
    out = tmp_path / "run.npz"
    with pytest.raises(KeyboardInterrupt):
        sample_to_npz(tiny_model_dir, out, 6, S(batch_size=2))
    assert not out.exists() and len(list(shards_dir_for(out).glob("shard-*.npz"))) == 1
    (shards_dir_for(out) / ".shard-0000002.npz.999.tmp").write_bytes(b"half a shard")  # killed mid-write
    calls.clear()
    monkeypatch.setattr(run_mod, "sample", lambda *a, **k: (calls.append(len(a[2])), real(*a, **k))[1])
    resumed = _load(sample_to_npz(tiny_model_dir, out, 6, S(batch_size=2)))
    assert calls == [2, 2]  # only the 4 missing samples were generated
    assert all(np.array_equal(x, y) for x, y in zip(full, resumed))
    # a larger N reuses all 6 and adds 2; a smaller N needs no sampling at all
    calls.clear()
    more = _load(sample_to_npz(tiny_model_dir, out, 8, S(batch_size=4)))
    assert calls == [2] and np.array_equal(more[0][:6], full[0])
    calls.clear()
    fewer = _load(sample_to_npz(tiny_model_dir, out, 3, S(batch_size=4)))
    assert calls == [] and np.array_equal(fewer[0], full[0][:3])


def test_other_arguments_are_refused_unless_restarting(tiny_model_dir, tmp_path):
    out = tmp_path / "s.npz"
    sample_to_npz(tiny_model_dir, out, 2, S(batch_size=2))
    with pytest.raises(UserError, match=r"other arguments \(guidance differ\).*--restart"):
        sample_to_npz(tiny_model_dir, out, 2, S(batch_size=2, guidance=1.0))
    other_model = save_tiny_model(tmp_path / "other", seed=1)
    with pytest.raises(UserError, match="model differ"):
        sample_to_npz(other_model, out, 2, S(batch_size=2))
    again = sample_to_npz(tiny_model_dir, out, 2, S(batch_size=2, guidance=1.0), restart=True)
    assert _load(again)[0].shape == (2, 16, 16, 1)


@pytest.mark.parametrize("change,message", [
    ({"num": 0}, "--num must be positive"), ({"sampler": "plms"}, "sample.sampler must be one of"),
    ({"steps": 0}, "sample.steps must be positive"), ({"batch_size": -1}, "sample.batch_size"),
    ({"guidance": -1.0}, "sample.guidance must be >= 0"), ({"labels": "3,x"}, "unknown class 'x'"),
    ({"labels": "12"}, "out of range"), ({"out": "s.png"}, "must name a .npz"),
])  # fmt: skip
def test_bad_input_fails_before_any_work(tiny_model_dir, tmp_path, change, message):
    num = change.pop("num", 2)
    out = tmp_path / change.pop("out", "s.npz")
    with pytest.raises(UserError, match=message):
        sample_to_npz(tiny_model_dir, out, num, S(**{"batch_size": 2, **change}))
    assert not shards_dir_for(out).exists()


def test_the_resolved_settings_are_recorded_with_the_samples(tiny_model_dir, tmp_path):
    from coral_ft.sample.run import read_settings

    path = sample_to_npz(tiny_model_dir, tmp_path / "s.npz", 2, S(clip_x0=True))
    recorded = read_settings(path)
    assert recorded["sampler"] == "ddim" and recorded["steps"] == 3 and recorded["clip_x0"] is True
    assert recorded["guidance"] == 0.5 and recorded["seed"] == 4 and recorded["num"] == 2


def test_a_model_without_class_embedding_is_refused(tmp_path):
    uncond = save_tiny_model(tmp_path / "uncond", num_classes=None)
    with pytest.raises(UserError, match="no class embedding"):
        sample_to_npz(uncond, tmp_path / "s.npz", 2, S())
    with pytest.raises(UserError, match="no model at"):
        sample_to_npz(tmp_path / "missing", tmp_path / "s.npz", 2, S())


TWO_PROCESS_SCRIPT = textwrap.dedent(
    """
    import sys
    import torch
    from accelerate import Accelerator, debug_launcher

    def run():
        from coral_ft.sample.run import sample_to_npz
        torch.set_num_threads(1)
        from coral_ft.config import SampleConfig
        sample_to_npz(sys.argv[1], sys.argv[2], 7, SampleConfig(batch_size=2, **{args!r}), accelerator=Accelerator(cpu=True))

    debug_launcher(run, num_processes=2)
    """
)


@pytest.mark.slow
def test_two_processes_give_the_output_of_one(tiny_model_dir, tmp_path):
    one = _load(sample_to_npz(tiny_model_dir, tmp_path / "one.npz", 7, S(batch_size=3, labels="uniform")))
    script = tmp_path / "two.py"
    script.write_text(TWO_PROCESS_SCRIPT.format(args={**ARGS, "labels": "uniform"}))
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, str(script), str(tiny_model_dir), str(tmp_path / "two.npz")],
        cwd=root, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = _load(tmp_path / "two.npz")
    assert np.array_equal(one[1], two[1])
    assert np.abs(one[0].astype(int) - two[0].astype(int)).max() <= 1  # uint8 rounding at most
    assert len(list(shards_dir_for(tmp_path / "two.npz").glob("shard-*.npz"))) == 4  # batches of 2 over 2 ranks
    with np.load(tmp_path / "two.npz") as f:
        settings = json.loads(str(f["settings"]))
    assert settings["processes"] == 2 and settings["drawn_per_process"] == [4, 3]  # both ranks drew their share


def test_tf32_is_set_for_sampling_only_and_compile_takes_the_mode(tiny_model_dir, tmp_path, monkeypatch):
    from coral_ft.sample import run as run_module

    torch.backends.cuda.matmul.allow_tf32 = False
    with run_module.tf32(True):
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    assert torch.backends.cuda.matmul.allow_tf32 is False  # put back as it was
    modes = []
    monkeypatch.setattr(torch, "compile", lambda model, mode=None: modes.append(mode) or model)
    settings = SampleConfig(guidance=0.0, sampler="ddim", steps=2, compile=True, compile_mode="reduce-overhead")
    sample_to_npz(tiny_model_dir, tmp_path / "s.npz", 2, settings)
    assert modes == ["reduce-overhead"]

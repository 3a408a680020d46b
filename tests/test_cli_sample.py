"""`coral-ft sample` through the real entry point."""

import numpy as np
import pytest

from tests.conftest import one_error_line, run_cli  # run_cli: the real entry point, in-process

pytestmark = pytest.mark.usefixtures("one_thread")


def test_sample_command_writes_npz_and_pngs(tiny_model_dir, tmp_path, capsys):
    args = ["sample", "--model", str(tiny_model_dir), "--num", "4", "--guidance", "0.5", "--sampler", "ddim",
            "--steps", "2", "--labels", "class1,class3", "--sample-batch-size", "3", "--out", str(tmp_path / "s.npz"),
            "--png-dir", str(tmp_path / "png"), "--no-progress"]  # fmt: skip
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    assert "4 samples written to" in out
    data = np.load(tmp_path / "s.npz")
    assert data["images"].shape == (4, 16, 16, 1) and data["labels"].tolist() == [1, 3, 1, 3]
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == ["001-class1", "003-class3"]
    code, _, err = run_cli([*args[:6], "1.0", *args[7:]], capsys)  # other guidance, same --out
    assert code == 2 and "--restart" in err and one_error_line(err)


@pytest.mark.parametrize("extra,message", [
    (["--sampler", "plms"], "sample.sampler must be one of ddpm, ddim, dpm++, unipc, euler; got 'plms'"),
    (["--labels", "1,,2"], "bad label list"), (["--eta", "0.5"], "ddim sampler only"),
    (["--out", "s.png"], "--out must name a .npz file"),
])  # fmt: skip
def test_sample_command_bad_input_is_one_line(tiny_model_dir, tmp_path, capsys, extra, message):
    args = ["sample", "--model", str(tiny_model_dir), "--num", "2", "--guidance", "0", "--out", str(tmp_path / "s.npz")]
    code, _, err = run_cli([*args, *extra], capsys)
    assert code == 2 and message in err and one_error_line(err), err


def test_sample_command_usage_errors_are_typer_blocks_without_traceback(tiny_model_dir, tmp_path, capsys):
    args = ["sample", "--model", str(tiny_model_dir), "--num", "0", "--guidance", "0", "--out", str(tmp_path / "s.npz")]
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "Invalid value for '--num'" in err and "Traceback" not in err


def test_sample_command_without_guidance_uses_or_asks_for_it(tiny_model_dir, tmp_path, capsys):
    code, _, err = run_cli(["sample", "--model", str(tiny_model_dir), "--num", "2", "--out", str(tmp_path / "s.npz")], capsys)
    assert code == 2 and "pass --guidance" in err

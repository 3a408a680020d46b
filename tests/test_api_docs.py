"""docs/api.md's examples run as written, each from an empty folder; the API imports lazily."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def python_blocks() -> list[str]:
    blocks = re.findall(r"^```python\n(.*?)^```", DOC.read_text(), flags=re.S | re.M)
    return [b for b in blocks if "import" in b]  # the complete programs (the first block is a fragment)


def test_the_doc_has_its_examples():
    blocks = python_blocks()
    assert len(blocks) >= 5
    assert any("get_peft_model" in b for b in blocks) and any("UNet2DConditionModel" in b for b in blocks)


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_each_example_runs_from_an_empty_folder(tmp_path, index):
    (tmp_path / "example.py").write_text(python_blocks()[index])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(DOC.parents[1])}
    proc = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_import_coral_ft_loads_no_torch_and_the_api_names_resolve():
    probe = (
        "import sys, coral_ft\n"
        "assert not {'torch', 'diffusers'} & set(sys.modules), 'import coral_ft loaded torch'\n"
        "for name in coral_ft.__all__:\n"
        "    assert getattr(coral_ft, name) is not None, name\n"
        "from coral_ft import CoralRegularizer, resolve_config\n"
        "from coral_ft.api import bench, evaluate, finetune, sample, train\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300,
                          cwd=DOC.parents[1])
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


def test_the_api_trains_as_the_command_does(tmp_path):
    # coral_ft.api.train is what `coral-ft train --from-scratch` runs: the same config gives the same weights
    from safetensors.torch import load_file

    from coral_ft.api import resolve_config, train
    from coral_ft.cli.app import main

    sets = ["train.max_steps=2", "train.batch_size=8", "model.preset=micro", "train.sample_every=1000",
            "train.sample_grid=0", "runtime.device=cpu"]
    model = train(resolve_config(recipe="digits-lt", sets=sets), tmp_path / "api", progress=False)
    main(["train", "--from-scratch", "--recipe", "digits-lt", *[a for s in sets for a in ("--set", s)],
          "--out", str(tmp_path / "cli"), "--no-progress"])
    a = load_file(model / "diffusion_pytorch_model.safetensors")
    b = load_file(tmp_path / "cli" / "model" / "diffusion_pytorch_model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
